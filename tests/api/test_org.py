"""One API serving two sites, each with its own store filled through ingest's converter (SQLite; InfluxDB shared by
both sites in one test): the organisation roll-up equals the sum of its sites, keys see only their sites, and a
serial counted at one site is refused at the other."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing, write_key
from api.main import create_app
from api.settings import Settings, SettingsError, load_settings, load_sites
from calc.plant import parse_plant
from deploy.check_config import check_file
from ingest.config import InfluxStoreSettings
from ingest.store.base import Store
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import Env, Server, fill_store, hourly, plant_data
from tests.api.test_ledger import APRIL, MARCH, credit, grid_factor

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
S2_TZ = "Asia/Shanghai"          # UTC+8: s2's March starts at 2026-02-28 16:00 UTC
S2_M1_START = datetime(2026, 2, 28, 20, tzinfo=UTC)
GEC = {"kind": "gec", "serial_first": "GEC-000001", "serial_last": "GEC-000010", "valid_from": "2026-01-01",
       "valid_to": "2026-12-31", "evidence": "transfer record 1"}


def s2_data() -> dict[str, Any]:
    data = plant_data("s2")
    data["site"]["timezone"] = S2_TZ
    return data


@dataclass
class Org:
    env: Env
    both: dict[str, str]       # headers of a viewer of s1 and s2
    both_admin: dict[str, str]


def fill(s1: Store, s2: Store) -> None:
    # s1 (UTC): m1 1 kWh/h 1 March 00:00 .. 10 March 11:00 (228 h), m3 2 kWh/h on 1 March
    fill_store(s1, plant_data("s1"), {"m1": hourly(MARCH, 228, 1.0), "m3": hourly(MARCH, 24, 2.0)})  # type: ignore[arg-type]
    # s2 (UTC+8): m2 3 kWh/h for 100 h from 1 March 00:00 UTC; its own m1 (another meter) 0.5 kWh/h for 50 h
    # from 28 Feb 20:00 UTC, which is already March in Shanghai
    fill_store(s2, s2_data(), {"m2": hourly(MARCH, 100, 3.0), "m1": hourly(S2_M1_START, 50, 0.5)})  # type: ignore[arg-type]


def org_app(env: Env, s1: Store, s2: Store) -> TestClient:
    data = s2_data()
    settings = Settings(plant=parse_plant(data), plant_data=data, base_dir=env.tmp, api=env.settings().api)
    return TestClient(create_app(env.settings(), s1, KeyRing.load(env.keys_file), clock=env.clock,
                                 sites=[(settings, s2)]))


@pytest.fixture
def org(env: Env) -> Org:
    env.clock.now = NOW
    both = write_key(env.keys_file, "org-viewer", "viewer", ("s1", "s2"))
    both_admin = write_key(env.keys_file, "org-admin", "admin", ("s1", "s2"))
    return Org(env, {"Authorization": f"Bearer {both}"}, {"Authorization": f"Bearer {both_admin}"})


@pytest.fixture
def client(org: Org) -> Iterator[TestClient]:
    s1, s2 = SqliteStore(org.env.tmp / "store.sqlite"), SqliteStore(org.env.tmp / "store-s2.sqlite")
    fill(s1, s2)
    with org_app(org.env, s1, s2) as c:
        yield c


FIGURES = ("co2e_kg", "offsets_kg", "net_co2e_kg", "estimated_co2e_kg", "held_co2e_kg", "energy_kgce",
           "manual_co2e_kg")


def assert_sum_of_sites(c: TestClient, h: dict[str, str], params: dict[str, str]) -> dict[str, Any]:
    rolled = c.get("/v1/org/balance", params=params, headers=h)
    assert rolled.status_code == 200, rolled.text
    org = rolled.json()
    sites = [c.get("/v1/balance", params={**params, "site": s}, headers=h).json() for s in org["sites"]]
    assert [b["site"] for b in org["by_site"]] == org["sites"]
    for name in FIGURES:
        assert org["total"][name] == math.fsum(b[name] for b in sites), name
    assert org["total"]["market_co2e_kg"] == math.fsum(b["market_based"]["co2e_kg"] for b in sites)
    for carrier in org["total"]["carriers"]:
        assert carrier["energy"] == math.fsum(c["energy"] for b in sites for c in b["carriers"]
                                              if (c["carrier"], c["energy_unit"]) ==
                                              (carrier["carrier"], carrier["energy_unit"]))
    assert org["total"]["factor_versions"] == sorted({v for b in sites for v in b["factor_versions"]})
    assert [(p["site"], p["start"], p["end"]) for p in org["periods"]] == [
        (b["site"], b["period"]["start"], b["period"]["end"]) for b in sites]
    return org


def test_the_roll_up_equals_the_sum_of_its_sites(org: Org, client: TestClient) -> None:
    f = grid_factor()
    admin = org.both_admin
    assert client.post("/v1/offsets", json=credit("C-s1", tonnes=1.0), headers=admin).status_code == 201
    assert client.post("/v1/offsets", params={"site": "s2"}, json=credit("C-s2", tonnes=0.5),
                       headers=admin).status_code == 201
    month = assert_sum_of_sites(client, org.both, {"period": "month"})
    # each site's month in its own zone: s2's began 8 h before s1's and holds all of its m1 (25 kWh)
    assert [p["start"] for p in month["periods"]] == ["2026-03-01T00:00:00Z", "2026-02-28T16:00:00Z"]
    assert month["total"]["co2e_kg"] == pytest.approx((276 + 300 + 25) * f)
    assert month["total"]["offsets_kg"] == pytest.approx(1500.0)
    assert month["total"]["net_co2e_kg"] == pytest.approx((276 + 300 + 25) * f - 1500.0)
    day = assert_sum_of_sites(client, org.both, {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"})
    assert [c["energy"] for c in day["total"]["carriers"]] == [pytest.approx(24 + 48 + 72 + 12)]
    assert_sum_of_sites(client, org.both, {"period": "today"})


def test_a_manual_entry_at_one_site_is_in_the_roll_up_once(org: Org, client: TestClient) -> None:
    delivery = {"kind": "fuel", "start": "2026-03-01", "quantity": 1, "unit": "t", "carrier": "diesel",
                "evidence": "delivery note 7"}
    before = assert_sum_of_sites(client, org.both, {"period": "month"})
    made = client.post("/v1/activity", params={"site": "s2"}, json=delivery, headers=org.both_admin)
    assert made.status_code == 201, made.text
    after = assert_sum_of_sites(client, org.both, {"period": "month"})
    s2 = next(b for b in after["by_site"] if b["site"] == "s2")
    assert s2["manual_co2e_kg"] > 0
    assert after["total"]["manual_co2e_kg"] == s2["manual_co2e_kg"]
    assert after["total"]["co2e_kg"] == pytest.approx(before["total"]["co2e_kg"] + s2["manual_co2e_kg"])


def test_history_and_report_roll_up(org: Org, client: TestClient) -> None:
    h = org.both
    window = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z", "step": "1h"}
    rolled = client.get("/v1/org/history", params=window, headers=h).json()
    per_site: dict[str, list[float]] = {}
    for site in ("s1", "s2"):
        for b in client.get("/v1/history", params={**window, "site": site}, headers=h).json()["buckets"]:
            per_site.setdefault(b["start"], []).append(b["co2e_kg"])
    assert {b["start"]: b["co2e_kg"] for b in rolled["buckets"]} == {k: math.fsum(v) for k, v in per_site.items()}
    assert rolled["buckets"][0]["energy"] == pytest.approx(1 + 2 + 3 + 0.5)
    assert math.fsum(b["energy"] for b in rolled["buckets"]) == pytest.approx(24 + 48 + 72 + 12)
    # day buckets start at each site's own midnight: never merged across zones, nothing lost
    days = client.get("/v1/org/history", params={"period": "month", "step": "1d"}, headers=h).json()
    assert all(len(b["sites"]) == 1 for b in days["buckets"])
    month = client.get("/v1/org/balance", params={"period": "month"}, headers=h).json()
    assert math.fsum(b["co2e_kg"] for b in days["buckets"]) == pytest.approx(month["total"]["co2e_kg"])
    report = client.get("/v1/org/reports/period", params={"period": "month"}, headers=h).json()
    assert report["total"] == month["total"]
    assert [r["site"] for r in report["by_site"]] == ["s1", "s2"]


def test_allowances_and_instruments_roll_up(org: Org, client: TestClient) -> None:
    admin = org.both_admin
    allowance = {"start": MARCH.isoformat(), "end": APRIL.isoformat(), "amount": 1, "unit": "t"}
    assert client.post("/v1/allowances", json=allowance, headers=admin).status_code == 201
    assert client.post("/v1/allowances", params={"site": "s2"}, json={**allowance, "amount": 2},
                       headers=admin).status_code == 201
    assert client.post("/v1/instruments", params={"site": "s2"}, json=GEC, headers=admin).status_code == 201
    rolled = client.get("/v1/org/allowances", headers=org.both).json()
    assert rolled["allowance_kg"] == pytest.approx(3000.0)
    sites = {s["site"]: s["status"] for s in rolled["sites"]}
    assert rolled["used_kg"] == math.fsum(s["used_kg"] for s in sites.values())
    assert sites["s1"]["used_kg"] == pytest.approx(
        client.get("/v1/balance", params={"from": MARCH.isoformat(), "to": NOW.isoformat()},
                   headers=org.both).json()["co2e_kg"])
    instruments = client.get("/v1/org/instruments", headers=org.both).json()
    assert [(i["site"], i["serial_first"]) for i in instruments["instruments"]] == [("s2", "GEC-000001")]
    own = client.get("/v1/instruments", params={"site": "s2"}, headers=org.both).json()
    assert instruments["quantity_mwh"] == own[0]["quantity_mwh"] == pytest.approx(10.0)   # 10 certificates of 1 MWh


def test_a_serial_used_at_one_site_is_refused_at_another(org: Org, client: TestClient) -> None:
    admin = org.both_admin
    first = client.post("/v1/instruments", json=GEC, headers=admin)
    assert first.status_code == 201
    overlap = {**GEC, "serial_first": "GEC-000005", "serial_last": "GEC-000015"}
    refused = client.post("/v1/instruments", params={"site": "s2"}, json=overlap, headers=admin)
    assert refused.status_code == 409 and "another site's entry" in refused.text
    assert client.post("/v1/offsets", json=credit("CCER-7"), headers=admin).status_code == 201
    dup = client.post("/v1/offsets", params={"site": "s2"}, json=credit("CCER-7"), headers=admin)
    assert dup.status_code == 409 and "another site's entry" in dup.text
    assert client.get("/v1/instruments", params={"site": "s2"}, headers=admin).json() == []
    # voided at s1, the range may count at s2
    assert client.post(f"/v1/instruments/{first.json()['id']}/void", json={"reason": "moved to s2"},
                       headers=admin).status_code == 200
    assert client.post("/v1/instruments", params={"site": "s2"}, json=overlap, headers=admin).status_code == 201


def test_a_key_sees_only_its_sites(org: Org, client: TestClient) -> None:
    env = org.env
    s2_admin = env.h("other")            # admin of s2 only
    assert client.post("/v1/offsets", params={"site": "s2"}, json=credit("C-2"), headers=s2_admin).status_code == 201
    s1_viewer = env.h("viewer")          # viewer of s1 only
    for path in ("/v1/balance", "/v1/offsets", "/v1/history", "/v1/reports/period", "/v1/meters", "/v1/stream",
                 "/v1/held", "/v1/instruments", "/v1/status", "/metrics"):
        assert client.get(path, params={"site": "s2"}, headers=s1_viewer).status_code == 404, path
    assert client.get("/v1/balance", headers=s2_admin).status_code == 404   # the default site is s1's
    mine = client.get("/v1/org/balance", params={"period": "month"}, headers=s1_viewer).json()
    assert mine["sites"] == ["s1"]
    s1 = client.get("/v1/balance", params={"period": "month"}, headers=s1_viewer).json()
    assert mine["total"]["co2e_kg"] == s1["co2e_kg"] and mine["total"]["offsets_kg"] == 0.0
    theirs = client.get("/v1/org/balance", params={"period": "month"}, headers=s2_admin).json()
    assert theirs["sites"] == ["s2"] and theirs["total"]["offsets_kg"] == pytest.approx(1000.0)
    both = client.get("/v1/org/balance", params={"period": "month"}, headers=org.both).json()
    assert both["sites"] == ["s1", "s2"]
    assert [(s["id"], s["timezone"], s["default"]) for s in client.get("/v1/org/sites", headers=org.both).json()] == [
        ("s1", "UTC", True), ("s2", S2_TZ, False)]
    assert [s["id"] for s in client.get("/v1/org/sites", headers=s2_admin).json()] == ["s2"]
    # each site's own meters, from its own store
    assert [m["meter"] for m in client.get("/v1/balance", params={"site": "s2", "period": "month"},
                                          headers=org.both).json()["meters"]] == ["m1", "m2"]
    s3 = write_key(env.keys_file, "s3-viewer", "viewer", ("s3",))
    for path in ("/v1/org/sites", "/v1/org/balance", "/v1/org/history", "/v1/org/allowances", "/v1/org/instruments",
                 "/v1/org/reports/period"):
        assert client.get(path, headers={"Authorization": f"Bearer {s3}"}).status_code == 404, path


def test_a_reading_reaches_its_own_sites_engine(org: Org, client: TestClient) -> None:
    orgs = client.app.state.org  # type: ignore[attr-defined]
    assert orgs.engine_for("carbonwatch/v1/s2/a/m1/reading") is orgs.get("s2").engine
    assert orgs.engine_for("carbonwatch/v1/s1/a/m1/co2e") is orgs.get("s1").engine
    assert orgs.engine_for("carbonwatch/v1/elsewhere/a/m1/reading") is orgs.primary.engine   # counted there
    assert orgs.get("s2").engine.live.tz != orgs.get("s1").engine.live.tz


def test_the_roll_up_over_one_shared_influxdb(org: Org, influx_url: str) -> None:
    """Both sites in one InfluxDB database (points tagged by site): each sees its own, the roll-up their sum."""
    database = f"org{uuid.uuid4().hex[:12]}"
    stores = [InfluxStore(InfluxStoreSettings(kind="influxdb", url=influx_url, database=database)) for _ in (1, 2)]
    fill(stores[0], stores[1])
    with org_app(org.env, stores[0], stores[1]) as c:
        month = assert_sum_of_sites(c, org.both, {"period": "month"})
        assert month["total"]["co2e_kg"] == pytest.approx((276 + 300 + 25) * grid_factor())
        assert [m["meter"] for m in month["by_site"][0]["meters"]] == ["m1", "m3"]
        assert_sum_of_sites(c, org.both, {"from": (MARCH - timedelta(days=1)).isoformat(),
                                          "to": "2026-03-02T00:00:00Z"})


def test_the_example_organisation_loads_and_a_bad_sites_list_is_named(tmp_path: Path) -> None:
    east = REPO / "deploy" / "examples" / "org" / "plant-east.toml"
    primary = load_settings(east, tmp_path)
    (west,) = load_sites(primary, east)
    assert (primary.plant.site.id, west.plant.site.id) == ("east", "west")
    assert west.db_path == primary.db_path and west.keys_path == primary.keys_path   # one API database, one key file
    assert west.plant_data["store"]["path"] != primary.plant_data["store"]["path"]   # each site its own store
    twice = tmp_path / "twice.toml"
    twice.write_text(east.read_text().replace('"plant-west.toml"', f'"{east}"'))
    results = {r.part: r for r in check_file(twice)}
    assert not results["api"].ok and "site 'east' is served twice" in " ".join(results["api"].problems)
    with pytest.raises(SettingsError, match="served twice"):
        load_sites(load_settings(twice, tmp_path), twice)


def test_a_serial_raced_from_both_sites_counts_once(org: Org, env: Env) -> None:
    """Eight admins post the same credit serial at once, half at each site, to a real server: one is counted."""
    s1, s2 = SqliteStore(env.tmp / "store.sqlite"), SqliteStore(env.tmp / "store-s2.sqlite")
    client = org_app(env, s1, s2)
    with Server(client.app) as server, httpx.Client(base_url=server.url, headers=org.both_admin, timeout=60) as http:  # type: ignore[arg-type]
        def post(i: int) -> int:
            return http.post("/v1/offsets", params={"site": ("s1", "s2")[i % 2]},
                             json=credit("CCER-RACE")).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(post, range(8)))
        assert codes == [201] + [409] * 7
        counted = [http.get("/v1/offsets", params={"site": s}).json() for s in ("s1", "s2")]
        assert sum(len(c) for c in counted) == 1
