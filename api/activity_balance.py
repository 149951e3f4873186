"""The balance with manual activity entries added (source `manual`, their share of the total shown) and the
reconciliations of bills for live meters (shown, never added): the hook api.accounting.build_balance calls."""

from __future__ import annotations

from collections import defaultdict

from api.accounting import AreaBalance, BalanceOut, CarrierBalance, MeterBalance, ScopeBalance
from api.activity_counts import MANUAL, manual_rows, reconciliations
from calc.periods import AccountingPeriod
from ingest.store.base import StoreReader
from records.base import Reader


def with_manual(out: BalanceOut, db: Reader, store: StoreReader, site: str, bounds: AccountingPeriod,
                area: str | None, meter: str | None) -> BalanceOut:
    """`out` plus the counted entries' share of the period (none for a single meter's balance)."""
    recs = reconciliations(db, store, site, bounds.start, bounds.end, meter)
    rows = [] if meter is not None else manual_rows(db, site, bounds.start, bounds.end, area)
    if not rows:
        return out.model_copy(update={"reconciliations": recs}) if recs else out
    manual = sum(r.co2e_kg for r in rows)
    market = sum(r.market_co2e_kg for r in rows)
    areas = {a.area: a for a in out.areas}
    scopes: dict[str, float] = defaultdict(float, {s.scope: s.co2e_kg for s in out.scopes})
    carriers = {(c.carrier, c.energy_unit): c for c in out.carriers}
    meters = list(out.meters)
    for r in rows:
        a = areas.get(r.area)
        areas[r.area] = AreaBalance(area=r.area, co2e_kg=(a.co2e_kg if a else 0.0) + r.co2e_kg,
                                    energy_kgce=a.energy_kgce if a else 0.0)
        scopes[r.scope] += r.co2e_kg
        c = carriers.get((r.carrier, r.energy_unit))
        carriers[(r.carrier, r.energy_unit)] = (
            c.model_copy(update={"energy": c.energy + r.energy, "co2e_kg": c.co2e_kg + r.co2e_kg,
                                 "factor_energy": c.factor_energy + r.energy}) if c is not None else
            CarrierBalance(carrier=r.carrier, energy=r.energy, energy_unit=r.energy_unit, co2e_kg=r.co2e_kg,
                           factor_energy=r.energy, factor_energy_unit=r.energy_unit))
        meters.append(MeterBalance(meter=f"{MANUAL}:{r.carrier}", area=r.area, carrier=r.carrier, scope=r.scope,
                                   energy=r.energy, energy_unit=r.energy_unit, co2e_kg=r.co2e_kg,
                                   market_co2e_kg=r.market_co2e_kg, points=r.entries, factor_ids=r.factor_ids,
                                   factor_versions=r.factor_versions, factor_energy=r.energy,
                                   factor_energy_unit=r.energy_unit, source=MANUAL))
    total = out.co2e_kg + manual
    mb = out.market_based
    return out.model_copy(update={
        "co2e_kg": total, "net_co2e_kg": total - out.offsets_kg,
        "market_based": mb.model_copy(update={"co2e_kg": mb.co2e_kg + market, "net_co2e_kg": mb.net_co2e_kg + market}),
        "areas": [areas[k] for k in sorted(areas)],
        "scopes": [ScopeBalance(scope=s, co2e_kg=v) for s, v in sorted(scopes.items())],
        "carriers": [carriers[k] for k in sorted(carriers)],
        "meters": sorted(meters, key=lambda m: m.meter),
        "factor_ids": sorted(set(out.factor_ids) | {f for r in rows for f in r.factor_ids}),
        "factor_versions": sorted(set(out.factor_versions) | {f for r in rows for f in r.factor_versions}),
        "manual_co2e_kg": manual, "manual_share": manual / total if total else None,
        "reconciliations": recs,
    })
