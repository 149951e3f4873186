"""Pure parts of scada/: the register map, the figures, periods, the config, live rates, Sparkplug payloads,
and the ledger read against a database written by the API's own code."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from tahutils.tahu import sparkplug_b_pb2 as pb

from calc.plant import parse_plant
from calc.schema import Quality
from ingest.store.base import MeterTotal
from scada.config import ConfigError, config_from_data
from scada.figures import AlertState, Inputs, MeterLive, compute, period_bounds
from scada.ledger import Allowance, ApiRecords, OpenAlert
from scada.live import Co2eMessage, LiveTimes
from scada.registers import BLOCK, FIRST_BLOCK, NAN_WORDS, counter, float_words, render, uint32_words, words_to_float
from scada.spb_payloads import nbirth, ndeath, rebirth_requested

PLANT = {
    "site": {"id": "s1", "region": "CN", "timezone": "Asia/Shanghai", "start": "2026-01-01T00:00:00Z"},
    "meters": [{"id": "m1", "area": "a1", "carrier": "electricity"},
               {"id": "m2", "area": "a1", "carrier": "electricity"},
               {"id": "m3", "area": "a2", "carrier": "natural_gas"}],
}
NOW = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)    # 01:00 on the 30th in Shanghai


def total(meter: str, area: str, kg: float) -> MeterTotal:
    return MeterTotal(meter=meter, site="s1", area=area, carrier="electricity", scope="scope2_location",
                      energy=kg * 2, energy_unit="kWh", co2e_kg=kg, points=3)


def inputs(**kw: object) -> Inputs:
    base: dict[str, object] = dict(
        now=NOW, today=[total("m1", "a1", 10.0), total("m2", "a1", 5.0), total("m3", "a2", 1.0)],
        month=[total("m1", "a1", 100.0), total("m2", "a1", 50.0), total("m3", "a2", 7.0)],
        offsets_today_kg=2.0, offsets_month_kg=20.0, allowances={}, alerts=[], live={},
        stored_last_ts={"m1": NOW - timedelta(seconds=5)})
    base.update(kw)
    return Inputs(**base)  # type: ignore[arg-type]


# ---- periods and figures -------------------------------------------------------------------------------------

def test_periods_are_cut_at_local_midnight() -> None:
    t0, t1, m0, m1 = period_bounds("Asia/Shanghai", NOW)
    assert (t0, t1) == (datetime(2026, 11, 29, 16, tzinfo=UTC), datetime(2026, 11, 30, 16, tzinfo=UTC))
    assert (m0, m1) == (datetime(2026, 10, 31, 16, tzinfo=UTC), datetime(2026, 11, 30, 16, tzinfo=UTC))


def test_figures_sum_by_boundary_and_take_offsets_at_site_only() -> None:
    snap = compute(parse_plant(PLANT), inputs(), stale_after_s=60)
    assert list(snap.items) == ["site:s1", "area:a1", "area:a2", "meter:m1", "meter:m2", "meter:m3"]
    site, a1, m2 = snap.items["site:s1"].figures, snap.items["area:a1"].figures, snap.items["meter:m2"].figures
    assert (site["TodayCO2e"].value, site["MonthCO2e"].value) == (16.0, 157.0)
    assert (site["TodayNetBalance"].value, site["MonthNetBalance"].value) == (14.0, 137.0)
    assert (a1["TodayCO2e"].value, a1["TodayNetBalance"].value, a1["MonthNetBalance"].value) == (15.0, 15.0, 150.0)
    assert m2["MonthCO2e"].value == 50.0
    assert site["AllowanceRemaining"].quality is Quality.BAD and site["AllowanceRemaining"].value is None
    assert site["CO2eRate"].quality is Quality.BAD     # nothing streamed yet
    assert site["TodayCO2e"].ts == NOW - timedelta(seconds=5)


def test_allowance_alerts_and_rates() -> None:
    held = Allowance(1, "area", "a1", NOW - timedelta(days=1), NOW + timedelta(days=1), 500.0)
    alerts = [OpenAlert(1, "r1", "area", "a1", "warning", "acknowledged", "2026-11-29T16:30:00+00:00"),
              OpenAlert(2, "r2", "area", "a1", "critical", "firing", "2026-11-29T16:40:00+00:00"),
              OpenAlert(3, "r3", "site", "s1", "info", "acknowledged", "2026-11-29T16:50:00+00:00")]
    live = {"m1": MeterLive(NOW - timedelta(seconds=2)), "m2": MeterLive(NOW - timedelta(seconds=300))}
    snap = compute(parse_plant(PLANT), inputs(allowances={"area:a1": (held, 120.0)}, alerts=alerts, live=live,
                                              stored_last_ts={}, rates={"m1": 30.0, "m2": 6.0}), 60)
    a1, site = snap.items["area:a1"], snap.items["site:s1"]
    assert a1.figures["AllowanceRemaining"].value == 380.0
    assert (a1.alert_state, a1.active_alerts) == (AlertState.FIRING, 2)
    assert (site.alert_state, site.active_alerts) == (AlertState.ACKNOWLEDGED, 1)
    assert snap.items["area:a2"].alert_state is AlertState.NONE
    assert a1.figures["CO2eRate"].value == 36.0 and a1.figures["CO2eRate"].quality is Quality.GOOD
    stale = snap.items["meter:m2"].figures["CO2eRate"]
    assert stale.value == 6.0 and stale.quality is Quality.UNCERTAIN


def test_live_times_from_the_co2e_stream() -> None:
    """ingest's derived-stream payload parses; the latest stored point's time never moves back."""
    times = LiveTimes()

    def msg(first: str, last: str) -> Co2eMessage:
        return Co2eMessage.model_validate_json(json.dumps({
            "v": 1, "site": "s1", "area": "a1", "meter": "m1", "from": first, "to": last, "points": 2,
            "co2e_kg": 0.5, "by_factor": [{"energy": 1.0, "energy_unit": "kWh", "co2e_kg": 0.5, "points": 2,
                                           "scope": "scope2_location", "factor_id": "f", "factor_version": "v"}]}))

    times.apply(msg("2026-11-29T10:00:00Z", "2026-11-29T10:00:30Z"))
    assert times.snapshot()["m1"].last_ts == datetime(2026, 11, 29, 10, 0, 30, tzinfo=UTC)
    times.apply(msg("2026-11-29T09:00:00Z", "2026-11-29T09:01:00Z"))     # a late batch (spool replay)
    assert times.snapshot()["m1"].last_ts == datetime(2026, 11, 29, 10, 0, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="to"):
        Co2eMessage.model_validate({"site": "s1", "area": "a1", "meter": "m1", "co2e_kg": 0.0, "points": 1,
                                    "from": "2026-11-29T10:00:00Z"})


# ---- register map ---------------------------------------------------------------------------------------------

def test_word_order_is_high_word_first() -> None:
    assert float_words(1234.5) == (0x449A, 0x5000)             # IEEE 754: 0x449A5000
    assert words_to_float(0x449A, 0x5000) == 1234.5
    assert float_words(None) == NAN_WORDS and math.isnan(words_to_float(*NAN_WORDS))
    assert uint32_words(0x12345678) == (0x1234, 0x5678)
    assert counter(12.34) == 123 and counter(-5.0) == 0 and counter(429_496_729.65) == 0   # wraps at 2**32 steps


def test_render_places_each_boundary_in_its_block() -> None:
    snap = compute(parse_plant(PLANT), inputs(), stale_after_s=60, version=70000)
    regs = render(snap)
    assert regs[:4] == [1, 6, 32, 100] and regs[8:10] == [2, 3]
    assert (regs[4] << 16 | regs[5]) == 70000
    a1 = FIRST_BLOCK + 32                                        # block 1: the first area
    off = BLOCK["MonthCO2e"][0]
    assert words_to_float(regs[a1 + off], regs[a1 + off + 1]) == 150.0
    off = BLOCK["MonthCO2eCounter"][0]
    assert (regs[a1 + off] << 16 | regs[a1 + off + 1]) == 1500
    # rate and allowance unknown; kgce too (these inputs carry none), and both intensities (no production counter)
    assert regs[FIRST_BLOCK + BLOCK["QualityBits"][0]] == 0b1111100001
    off = BLOCK["AllowanceRemaining"][0]
    assert (regs[FIRST_BLOCK + off], regs[FIRST_BLOCK + off + 1]) == NAN_WORDS


def test_kgce_is_good_only_when_every_meter_with_energy_has_it() -> None:
    plant = parse_plant(PLANT)
    full = compute(plant, inputs(kgce_today={"m1": 1.0, "m2": 2.0, "m3": 4.0}), stale_after_s=60)
    part = compute(plant, inputs(kgce_today={"m1": 1.0, "m2": 2.0}), stale_after_s=60)   # m3: no coefficient
    site = full.items["site:s1"].figures["TodayKgce"]
    assert (site.value, site.quality) == (7.0, Quality.GOOD)
    assert part.items["site:s1"].figures["TodayKgce"].quality is Quality.UNCERTAIN
    assert part.items["site:s1"].figures["TodayKgce"].value == 3.0
    assert part.items["area:a2"].figures["TodayKgce"].value is None
    assert part.items["area:a2"].figures["TodayKgce"].quality is Quality.BAD
    assert part.items["area:a1"].figures["TodayKgce"].quality is Quality.GOOD


# ---- config -----------------------------------------------------------------------------------------------------

def test_config_defaults_are_loopback_and_secure() -> None:
    cfg = config_from_data({**PLANT, "scada": {"opcua": {"enabled": True, "users": [
        {"username": "op", "password": "longenough"}]}}}, Path("/tmp"))
    assert cfg.scada.opcua.host == cfg.scada.modbus.host == "127.0.0.1"
    assert "None" not in cfg.scada.opcua.security and not cfg.scada.opcua.allow_anonymous
    assert not cfg.scada.modbus.enabled and not cfg.scada.sparkplug.enabled
    assert cfg.api_db_path == Path("/tmp/var/api.sqlite")


@pytest.mark.parametrize(("section", "expected"), [
    ({"opcua": {"enabled": True}}, "scada.opcua: Value error, no way to log in"),
    ({"modbus": {"port": 70000}}, "scada.modbus.port"),
    ({"opcua": {"security": ["Basic128"]}}, "scada.opcua.security.0"),
    ({"sparkplug": {"group_id": "a/b"}}, "scada.sparkplug.group_id"),
    ({"bogus": 1}, "scada.bogus"),
])
def test_bad_config_names_the_key(section: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_data({**PLANT, "scada": section}, Path("/tmp"), "plant.toml")
    assert f"plant.toml: {expected}" in str(err.value)


# ---- Sparkplug payloads -----------------------------------------------------------------------------------------

def test_nbirth_and_ndeath_payloads() -> None:
    snap = compute(parse_plant(PLANT), inputs(), stale_after_s=60)
    birth = pb.Payload()
    birth.ParseFromString(nbirth(snap, 0, 7, 1_000))
    assert birth.seq == 0 and birth.timestamp == 1_000
    by_name = {m.name: m for m in birth.metrics}
    assert by_name["bdSeq"].long_value == 7 and by_name["bdSeq"].datatype == pb.UInt64
    assert by_name["Node Control/Rebirth"].datatype == pb.Boolean and not by_name["Node Control/Rebirth"].boolean_value
    assert by_name["TodayCO2e"].double_value == 16.0
    assert list(by_name["TodayCO2e"].properties.keys) == ["engUnit"]
    assert by_name["AllowanceRemaining"].is_null
    death = pb.Payload()
    death.ParseFromString(ndeath(7, 2_000))
    assert not death.HasField("seq") and [m.long_value for m in death.metrics] == [7]
    cmd = pb.Payload()
    m = cmd.metrics.add()
    m.name, m.datatype, m.boolean_value = "Node Control/Rebirth", pb.Boolean, True
    assert rebirth_requested(cmd.SerializeToString())
    m.boolean_value = False
    assert not rebirth_requested(cmd.SerializeToString())


# ---- the ledger reads what the API's own code wrote ------------------------------------------------------------

def test_ledger_selects_the_entries_the_api_counts(tmp_path: Path) -> None:
    from api.ledger import AllowanceIn, LedgerDesk, OffsetIn
    from records.db import ApiDb
    from records.ledger import Ledger

    db = ApiDb(tmp_path / "api.sqlite")
    book = LedgerDesk(db)
    book.add_offset("s1", OffsetIn(kind="sink", quantity=1.5, unit="t", applies_on=date(2026, 11, 30),
                                   evidence="survey"), "t")
    voided = book.add_offset("s1", OffsetIn(kind="other", quantity=9.0, unit="t", applies_on=date(2026, 11, 30),
                                            evidence="x"), "t")
    book.void("offset", "s1", voided, "entered twice", "t")
    book.add_offset("s1", OffsetIn(kind="sink", quantity=4.0, unit="t", applies_on=date(2026, 10, 1),
                                   evidence="older"), "t")
    first = book.add_allowance("s1", AllowanceIn(start=NOW - timedelta(days=30), end=NOW + timedelta(days=30),
                                                 amount=10.0), "t")
    book.add_allowance("s1", AllowanceIn(start=NOW - timedelta(days=30), end=NOW + timedelta(days=30),
                                         amount=12.0), "t")
    mine = ApiRecords(tmp_path / "api.sqlite")
    t0, t1, m0, m1 = period_bounds("Asia/Shanghai", NOW)
    for start, end in ((t0, t1), (m0, m1), (datetime(2026, 1, 1, tzinfo=UTC), NOW)):
        # the API's balance reads its offsets through its own read-write connection (api.accounting)
        assert mine.offsets_kg("s1", start, end) == Ledger(db).offsets_kg("s1", start, end)
    assert mine.offsets_kg("s1", t0, t1) == 1500.0
    held = mine.allowance("s1", "site", None, NOW)
    assert held is not None and held.amount_kg == 12_000.0 and held.id != first
    assert mine.allowance("s1", "area", "a1", NOW) is None
    assert mine.allowance("s1", "site", None, NOW) == Ledger(db).allowance_at("s1", "site", None, NOW)
    assert ApiRecords(tmp_path / "missing.sqlite").offsets_kg("s1", t0, t1) == 0.0
    mine.close()
    db.close()


def test_open_alerts_are_the_ones_the_api_keeps_open(tmp_path: Path) -> None:
    from api.rulebook import RuleBook
    from calc.rules import RuleSpec
    from records.db import ApiDb

    db = ApiDb(tmp_path / "api.sqlite")
    book = RuleBook(db)
    area = book.save("s1", "r1", RuleSpec.model_validate({"name": "peak", "metric": "power", "threshold": 400.0,
                                                          "scope": "area", "target": "a1"}), "t", create=True)
    site = book.save("s1", "r2", RuleSpec.model_validate({"name": "all", "metric": "power", "threshold": 900.0}),
                     "t", create=True)
    first = book.fire("s1", area, 500.0, "2026-11-29T16:30:00+00:00")["id"]
    book.fire("s1", site, 950.0, "2026-11-29T16:40:00+00:00")
    book.acknowledge("s1", first, "t", "looking")
    gone = book.fire("s1", site, 990.0, "2026-11-29T16:50:00+00:00")["id"]
    book.resolve("s1", gone, 100.0, "2026-11-29T17:00:00+00:00")
    mine = ApiRecords(tmp_path / "api.sqlite")
    seen = mine.open_alerts("s1")
    assert seen == book.open_alerts("s1")   # the API's rule runner starts from the same list
    assert [(a.rule, a.scope, a.target, a.state) for a in seen] == [("r1", "area", "a1", "acknowledged"),
                                                                    ("r2", "site", "s1", "firing")]
    assert mine.open_alerts("s2") == [] and ApiRecords(tmp_path / "missing.sqlite").open_alerts("s1") == []
    mine.close()
    db.close()
