"""Energy baselines (ISO 50006), versioned like rules: fit one on stored data (calc.baseline.fit_baseline), refuse
it with every limit missed, store an accepted one with its audit row, refit (a new version) and retire."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from api.baseline_inputs import read_inputs
from api.errors import ApiError, Invalid, NotFound
from api.versions import next_version
from calc.baseline import Baseline, BaselineError, BaselineRefused, FitStats, fit_baseline
from calc.plant import Plant
from calc.units import UnitError
from ingest.store.base import StoreReader
from records.baselines import Baselines, BaselineSpec, StoredBaseline
from records.db import ApiDb


class Refused(ApiError):
    """A baseline that misses its acceptance limits: nothing is stored; `misses` lists each limit with the value."""

    status_code = 422

    def __init__(self, misses: list[str], stats: FitStats | None) -> None:
        super().__init__("baseline refused: " + "; ".join(misses))
        self.misses = misses
        self.stats = stats


def subject(site: str, spec: BaselineSpec) -> str:
    return site if spec.scope == "site" else f"{site}/{spec.scope}/{spec.target}"


def fit(store: StoreReader, plant: Plant, site: str, spec: BaselineSpec,
        now: datetime | None = None) -> tuple[Baseline, float]:
    """The fitted model of `spec` on the stored data of its period, and the mean length (h) of its periods.
    Raises Refused (the limits missed) or Invalid (data that cannot be fitted)."""
    if now is not None and spec.period_end > now:
        raise Invalid(("body", "period_end"), f"{spec.period_end.isoformat()} is in the future: a baseline is fitted "
                      "on periods that are over")
    data = read_inputs(store, plant, site, spec, spec.resolution, spec.period_start, spec.period_end)
    try:
        model = fit_baseline(data.energy, data.drivers, energy_unit=data.energy_unit,
                             driver_units=data.driver_units, resolution=spec.resolution, subject=subject(site, spec),
                             carrier=data.carrier, limits=spec.limits,
                             period=(spec.period_start.isoformat(), spec.period_end.isoformat()))
    except BaselineRefused as exc:
        raise Refused(exc.misses, exc.stats) from exc
    except (BaselineError, UnitError) as exc:   # UnitError: an energy unit that is not energy (gas in m³)
        raise Invalid(("body",), str(exc)) from exc
    undefined = [f"{name} is undefined ({value})" for name, value in _figures(model) if not math.isfinite(value)]
    if undefined:   # e.g. energy that never varies: R² is 0/0, which no limit catches
        raise Refused(undefined, model.stats)
    return model, float(np.mean(data.hours))


def _figures(model: Baseline) -> list[tuple[str, float]]:
    stats = [("R²", model.stats.r2), ("CV(RMSE)", model.stats.cv_rmse), ("NMBE", model.stats.nmbe)]
    return stats + [(f"{t.name} {what}", v) for t in model.terms
                    for what, v in (("value", t.value), ("standard error", t.std_error), ("p-value", t.p_value))]


class BaselineBook:
    """The site's baselines over the records.baselines repository; each change with its audit row."""

    def __init__(self, db: ApiDb) -> None:
        self.db = db
        self.repo = Baselines(db)

    def current(self, site: str, include_retired: bool = False) -> list[StoredBaseline]:
        return [b for b in self.repo.current(site) if include_retired or b.active]

    def versions(self, site: str, baseline_id: str) -> list[StoredBaseline]:
        found = self.repo.versions(site, baseline_id)
        if not found:
            raise NotFound(f"no baseline {baseline_id!r}")
        return found

    def get(self, site: str, baseline_id: str, version: int | None = None) -> StoredBaseline:
        found = self.versions(site, baseline_id)
        if version is None:
            return found[-1]
        for b in found:
            if b.version == version:
                return b
        raise NotFound(f"baseline {baseline_id!r} has no version {version}")

    def save(self, site: str, baseline_id: str, spec: BaselineSpec, model: Baseline, period_hours: float,
             actor: str, create: bool, active: bool = True) -> StoredBaseline:
        """A new version (1 when new); earlier versions stay as they were."""
        with self.db.tx() as conn:
            owner, last = Baselines.latest(conn, baseline_id)
            version = next_version("baseline", baseline_id, site, owner, last, create, "refits it")
            stored = StoredBaseline(baseline_id, version, site, spec, model, model.version, period_hours, active,
                                    self.db.now(), actor)
            Baselines.add(conn, stored)
            action = "create" if version == 1 else ("retire" if not active else "update")
            self.db.audit(conn, site, actor, action, "baseline", baseline_id,
                          {"version": version, "active": active, "model_version": model.version,
                           "spec": spec.model_dump(mode="json"), "stats": model.stats.model_dump(mode="json"),
                           "terms": [t.model_dump(mode="json") for t in model.terms]})
        return stored

    def retire(self, site: str, baseline_id: str, actor: str) -> StoredBaseline:
        last = self.get(site, baseline_id)
        if not last.active:
            raise NotFound(f"baseline {baseline_id!r} is retired")
        return self.save(site, baseline_id, last.spec, last.model, last.period_hours, actor, create=False,
                         active=False)


def in_force(book: BaselineBook, site: str, baseline_id: str, version: int | None) -> StoredBaseline:
    """The version asked for (any, retired included, for looking back), else the newest one in force."""
    if version is not None:
        return book.get(site, baseline_id, version)
    found = book.repo.latest_active(site, baseline_id)
    if found is None:
        book.get(site, baseline_id)   # 404 when there is no such baseline at all
        raise NotFound(f"baseline {baseline_id!r} is retired; ask for a version")
    return found
