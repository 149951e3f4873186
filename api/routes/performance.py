"""GET /v1/performance: a baseline's actual against expected (ISO 50006 EnPI) over any period and resolution:
energy and CO2e, deviation, EnPI ratio and the CUSUM series, with units and the baseline's id and version."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.baselines import in_force
from api.deps import NowDep, SettingsDep, SiteQuery, StoreDep, Viewer, site_of
from api.performance import PerformanceOut, performance
from api.routes.balance import FromQuery, PeriodQuery, ToQuery, period_of
from api.routes.baselines import BaselineBookDep
from calc.baseline import Resolution
from records.baselines import NAME

router = APIRouter(prefix="/v1", tags=["baselines"])


@router.get("/performance", responses={404: {"description": "no such baseline (or version), or it is retired"},
                                       422: {"description": "a period not on the resolution's edges, too long, or "
                                             "that cannot be understood"}})
def get_performance(settings: SettingsDep, store: StoreDep, book: BaselineBookDep, now: NowDep, key: Viewer,
                    baseline: Annotated[str, Query(pattern=NAME, max_length=64, description="baseline id")],
                    version: Annotated[int | None, Query(ge=1, description="a version (default: the one in "
                                                         "force)")] = None,
                    resolution: Annotated[Resolution | None, Query(description="default: the model's")] = None,
                    site: SiteQuery = None, period: PeriodQuery = None, start: FromQuery = None,
                    end: ToQuery = None) -> PerformanceOut:
    """Per period of `resolution` over today, this month, this year or [from, to): actual energy and kg CO2e,
    expected (the model given the actual drivers), deviation (absolute and %), EnPI and CUSUM."""
    site = site_of(key, settings, site)
    b = in_force(book, site, baseline, version)
    bounds = period_of(settings, now, period, start, end)
    return performance(store, settings.plant, site, b, resolution or b.model.resolution, bounds.start,
                       bounds.end, now)
