"""The live CO2e rate's inputs from the store, and each meter's rate now (calc.rate): the same reads for
/v1/balance, /v1/meters, the live engine and SCADA; the meter's current factor stands in until its energy is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api.live.live_sums import LiveState
from api.settings import Settings
from api.standard_coal import factor_bases
from calc.periods import resolve
from calc.rate import MeterRate, meter_rates
from ingest.store.base import LatestValue, MeterTotal, StoreReader


@dataclass(frozen=True, slots=True)
class RateInputs:
    """What calc.rate needs from the store: latest samples, today's and this month's totals."""

    latest: list[LatestValue]
    today: list[MeterTotal]
    month: list[MeterTotal]


def rate_inputs(store: StoreReader, site: str, tz: str, now: datetime) -> RateInputs:
    """The store reads behind the live rate (the same for /v1/balance, /v1/meters, the live engine and SCADA)."""
    today, month = resolve("today", None, None, tz, now), resolve("month", None, None, tz, now)
    return RateInputs(store.latest_values(site), store.totals(site, today.start, today.end),
                      store.totals(site, month.start, month.end))


def live_rates(settings: Settings, store: StoreReader, site: str, now: datetime) -> dict[str, MeterRate]:
    """Each meter's live CO2e rate (calc.rate) from the store: latest flow samples, today's and this month's
    totals (the same reads SCADA makes, so both report the same rate)."""
    inputs = rate_inputs(store, site, settings.plant.site.timezone, now)
    return meter_rates(inputs.latest, inputs.today, inputs.month, factor_bases(settings, now))


def seed_factor_fallback(live: LiveState, settings: Settings, now: datetime) -> None:
    """Give each live meter its current factor as the rate's basis until the store holds its energy, so the live
    rate shows as soon as a flow arrives (the same fallback live_rates uses)."""
    for basis in factor_bases(settings, now):
        meter = live.meters.get(basis.meter)
        if meter is not None:
            meter.fallback = basis
            meter.update_rate()
