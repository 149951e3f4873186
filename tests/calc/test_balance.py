"""Balances, offsets, allowance check, intensity, and scope 2 dual reporting with green certificates:
worked cases computed by hand here."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from calc.balance import Boundary, EmissionRow, OffsetEntry, OffsetKind, TimeRange, allowance_check, balance, intensity
from calc.factors import default_factor_set
from calc.market import Instrument, electricity_dual

FS = default_factor_set()
JAN = TimeRange(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 2, 1, tzinfo=UTC))
ROWS = [
    EmissionRow("s", "press", "p1", "electricity", "scope2_location", 1000.0),
    EmissionRow("s", "press", "p1", "electricity", "scope2_market", 600.0),
    EmissionRow("s", "paint", "oven", "natural_gas", "scope1", 400.0),
    EmissionRow("s", "paint", "steam", "steam", "scope2_location", 250.0),
    EmissionRow("other", "x", "y", "electricity", "scope2_location", 9999.0),
]


def _offset(oid: str, day: int, qty: float, kind: OffsetKind = OffsetKind.CCER, **kw: str) -> OffsetEntry:
    return OffsetEntry(id=oid, date=datetime(2026, 1, day, tzinfo=UTC), kind=kind, quantity=qty,
                       evidence=f"registry serial {oid}", site="s", vintage=2024, **kw)


def test_site_balance_by_scope_carrier_and_net() -> None:
    offsets = [_offset("c1", 10, 0.3), _offset("k1", 20, 200, OffsetKind.SINK, unit="kg"),
               _offset("late", 1, 5.0).model_copy(update={"date": datetime(2026, 2, 1, tzinfo=UTC)})]
    b = balance(ROWS, offsets, Boundary("s"), JAN)
    assert b.by_scope_kg == {"scope1": 400.0, "scope2_location": 1250.0, "scope2_market": 600.0}
    assert b.emissions_location_kg == 400 + 1000 + 250
    assert b.emissions_market_kg == 400 + 600 + 250   # steam has no market figure: its location one counts
    assert b.offsets_kg == 300 + 200 and b.offset_ids == ("c1", "k1")
    assert b.offsets_by_kind_kg == {"ccer": 300.0, "sink": 200.0}
    assert b.net_location_kg == 1650 - 500 and b.net_market_kg == 1250 - 500
    assert b.by_carrier_kg["electricity"]["scope2_market"] == 600.0


def test_area_and_meter_boundaries() -> None:
    offsets = [_offset("site-wide", 5, 1.0), _offset("paint-only", 5, 0.1, area="paint")]
    paint = balance(ROWS, offsets, Boundary("s", area="paint"), JAN)
    assert paint.emissions_location_kg == 650 and paint.offsets_kg == 100 and paint.offset_ids == ("paint-only",)
    meter = balance(ROWS, offsets, Boundary("s", "press", "p1"), JAN)
    assert meter.emissions_location_kg == 1000 and meter.offsets_kg == 0


def test_intensity_per_unit_of_production() -> None:
    b = balance(ROWS, [], Boundary("s"), JAN, production=(1650.0 / 3, "count"))
    assert b.intensity is not None and b.intensity.value == pytest.approx(3.0)
    assert intensity(500.0, 2.0, "t").unit == "kg / t"
    with pytest.raises(ValueError, match="production must be positive"):
        intensity(1.0, 0.0, "t")


def test_offset_entries_need_evidence_and_a_positive_quantity() -> None:
    with pytest.raises(ValidationError):
        OffsetEntry(id="x", date=datetime(2026, 1, 1, tzinfo=UTC), kind="ccer", quantity=1, evidence="", site="s")
    with pytest.raises(ValidationError):
        OffsetEntry(id="x", date=datetime(2026, 1, 1, tzinfo=UTC), kind="ccer", quantity=-1, evidence="e", site="s")


def test_allowance_check_projection_runout_and_ccer_cap() -> None:
    # 10 days into a 31-day month, 2 400 kg used, the last 7 days at 10 kg/h; allowance 8 000 kg
    now = datetime(2026, 1, 11, tzinfo=UTC)
    series = [(now - timedelta(hours=h), 10.0) for h in range(0, 7 * 24)]
    check = allowance_check(2400.0, 8000.0, series, now, JAN, window=timedelta(days=7), ccer_kg=1000.0)
    p = check.projection
    assert p.rate_kg_per_h == pytest.approx(10.0)
    assert p.projected_kg == pytest.approx(2400 + 10 * 21 * 24)
    assert p.remaining_kg == 5600
    assert p.runs_out_at is None                              # 5 600 kg at 10 kg/h lasts beyond month end
    assert check.ccer_usable_kg == pytest.approx(0.05 * 8000)  # capped at 5 % of the allowance
    tight = allowance_check(2400.0, 4000.0, series, now, JAN, window=timedelta(days=7))
    assert tight.projection.runs_out_at == now + timedelta(hours=160)
    assert tight.projected_over_kg == pytest.approx(2400 + 5040 - 4000)


def test_dual_reporting_with_green_certificates() -> None:
    # 250 MWh in March 2023; 120 GECs (1 MWh each) cover 120 MWh at 0; the rest at the 2023 residual factor
    gec = Instrument(id="GEC-2023-A", kind="gec", quantity=120, valid_from=date(2023, 1, 1),
                     valid_to=date(2023, 12, 31), region="CN", evidence="GEC serials 0001-0120")
    r = electricity_dual(250.0, "MWh", FS, region="CN", start=date(2023, 3, 1), end=date(2023, 3, 31),
                         instruments=[gec])
    assert r.location.co2e_kg == pytest.approx(250_000 * 0.5306)
    assert r.market.co2e_kg == pytest.approx(130_000 * 0.6096)
    assert (r.covered_kwh, r.residual_kwh) == (pytest.approx(120_000), pytest.approx(130_000))
    assert r.market.scope == "scope2_market" and r.location.scope == "scope2_location"
    assert "cn_gec_unit" in r.market.factor_ids and r.used_kwh == {"GEC-2023-A": pytest.approx(120_000)}


def test_certificates_are_never_used_twice() -> None:
    gec = Instrument(id="G", kind="gec", quantity=100, valid_from=date(2023, 1, 1), valid_to=date(2023, 12, 31),
                     evidence="serials")
    first = electricity_dual(80.0, "MWh", FS, region="CN", start=date(2023, 1, 1), end=date(2023, 1, 31),
                             instruments=[gec])
    second = electricity_dual(80.0, "MWh", FS, region="CN", start=date(2023, 2, 1), end=date(2023, 2, 28),
                              instruments=[gec], already_used_kwh=first.used_kwh)
    assert first.covered_kwh == pytest.approx(80_000) and second.covered_kwh == pytest.approx(20_000)
    assert second.market.co2e_kg == pytest.approx(60_000 * 0.6096)


def test_supplier_contract_at_its_own_rate_and_out_of_period_instruments_ignored() -> None:
    ppa = Instrument(id="PPA", kind="ppa", quantity=50, unit="MWh", factor_kg_per_kwh=0.1,
                     valid_from=date(2023, 1, 1), valid_to=date(2023, 6, 30), evidence="contract 7")
    old = Instrument(id="OLD", kind="gec", quantity=500, valid_from=date(2021, 1, 1), valid_to=date(2021, 12, 31),
                     evidence="serials")
    r = electricity_dual(100.0, "MWh", FS, region="CN", start=date(2023, 5, 1), end=date(2023, 5, 31),
                         instruments=[old, ppa])
    assert r.market.co2e_kg == pytest.approx(50_000 * 0.1 + 50_000 * 0.6096)
    assert r.used_kwh == {"PPA": pytest.approx(50_000)}
