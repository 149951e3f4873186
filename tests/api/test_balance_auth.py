"""The balance and meters endpoints: sums per area and meter, and who may see them (unit tests, fake store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing, write_key
from api.main import create_app
from api.settings import ApiSection, Settings
from calc.plant import parse_plant
from ingest.store.base import (
    DeadLetterRecord,
    EnergyFlow,
    FactorUse,
    HeldError,
    HeldRecord,
    HeldStatus,
    HeldTotal,
    LatestValue,
    MeterSummary,
    MeterTotal,
    SeriesPoint,
)

PLANT = {
    "site": {"id": "s1", "region": "CN", "start": datetime(2026, 1, 1, tzinfo=UTC)},
    "meters": [
        {"id": "m1", "area": "a", "carrier": "electricity"},
        {"id": "m2", "area": "a", "carrier": "electricity"},
        {"id": "m3", "area": "b", "carrier": "electricity"},
    ],
}


class FakeStore:
    """Returns fixed totals and records the window it was asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, datetime, datetime]] = []
        self.recent = datetime.now(UTC) - timedelta(seconds=5)

    def meter_summaries(self, site: str) -> list[MeterSummary]:
        return [MeterSummary("m1", site, "a", "electricity", self.recent, "good", 7),
                MeterSummary("m3", site, "b", "electricity", self.recent - timedelta(hours=1), "bad", 2)]

    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
        self.asked.append((site, start, end))
        return [MeterTotal("m1", site, "a", "electricity", "scope2_location", 10.0, "kWh", 5.0, 3, ("f1",), ("v1",)),
                MeterTotal("m2", site, "a", "electricity", "scope2_location", 4.0, "kWh", 2.5, 2, ("f1",), ("v1",)),
                MeterTotal("m3", site, "b", "electricity", "scope2_location", 1.0, "kWh", 0.25, 1, ("f2",), ("v2",))]

    # the rest of the store contract (ingest.store.base.Store): no live samples, series or dead letters
    def latest_values(self, site: str) -> list[LatestValue]:
        return []

    def dead_letters(self, site: str, limit: int = 100) -> list[DeadLetterRecord]:
        return []

    def series(self, site: str, start: datetime, end: datetime, step: str, tz: str) -> list[SeriesPoint]:
        return []

    def factor_usage(self, site: str, start: datetime, end: datetime) -> list[FactorUse]:
        return []

    def energy_flows(self, site: str, start: datetime, end: datetime) -> list[EnergyFlow]:
        return []   # no export or generation counters

    # the held-energy side (ingest.store.base.HeldReader): nothing held
    def held(self, site: str, status: HeldStatus | None = None, meter: str | None = None,
             limit: int = 1000) -> list[HeldRecord]:
        return []

    def held_record(self, site: str, held_id: int) -> HeldRecord | None:
        return None

    def held_totals(self, site: str, start: datetime | None = None, end: datetime | None = None) -> list[HeldTotal]:
        return []

    def decide_held(self, site: str, held_id: int, status: HeldStatus, actor: str, note: str | None = None,
                    counted_ts: datetime | None = None, co2e_kg: float | None = None, factor_id: str | None = None,
                    factor_version: str | None = None) -> HeldRecord:
        raise HeldError(f"no held record {held_id}")

    def close(self) -> None:
        pass


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, FakeStore, dict[str, str]]:
    keys = tmp_path / "keys.toml"
    secrets = {"viewer": write_key(keys, "v", "viewer"), "other": write_key(keys, "o", "viewer", ("s2",)),
               "admin": write_key(keys, "a", "admin")}
    settings = Settings(plant=parse_plant(PLANT), plant_data=PLANT, base_dir=tmp_path, api=ApiSection())
    store = FakeStore()
    return TestClient(create_app(settings, store, KeyRing.load(keys))), store, secrets


def test_balance_sums_per_area_and_total(setup: tuple[TestClient, FakeStore, dict[str, str]]) -> None:
    client, store, keys = setup
    resp = client.get("/v1/balance", params={"period": "month"}, headers={"Authorization": f"Bearer {keys['viewer']}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["co2e_kg"] == pytest.approx(7.75)
    assert {a["area"]: a["co2e_kg"] for a in body["areas"]} == pytest.approx({"a": 7.5, "b": 0.25})
    assert body["factor_ids"] == ["f1", "f2"]
    assert [m["meter"] for m in body["meters"]] == ["m1", "m2", "m3"]
    assert store.asked[-1][0] == "s1"


def test_meters_status(setup: tuple[TestClient, FakeStore, dict[str, str]]) -> None:
    client, _, keys = setup
    body = client.get("/v1/meters", headers={"X-API-Key": keys["viewer"]}).json()
    status = {m["meter"]: (m["status"], m["samples"]) for m in body["meters"]}
    assert status == {"m1": ("ok", 7), "m2": ("never_seen", 0), "m3": ("stale", 2)}


@pytest.mark.parametrize("path", ["/v1/balance", "/v1/meters"])
def test_keys_are_required_and_checked(setup: tuple[TestClient, FakeStore, dict[str, str]], path: str) -> None:
    client, _, keys = setup
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer cw_not-a-key"}).status_code == 401
    assert client.get(path, headers={"Authorization": f"Bearer {keys['other']}"}).status_code == 404  # other site
    assert client.get(path, params={"site": "s2"},
                      headers={"Authorization": f"Bearer {keys['admin']}"}).status_code == 404  # not served here
    assert client.get(path, headers={"Authorization": f"Bearer {keys['admin']}"}).status_code == 200


def test_bad_period_is_a_clear_422(setup: tuple[TestClient, FakeStore, dict[str, str]]) -> None:
    client, _, keys = setup
    resp = client.get("/v1/balance", params={"period": "fortnight"}, headers={"X-API-Key": keys["viewer"]})
    assert resp.status_code == 422
    assert "fortnight" in resp.json()["detail"][0]["msg"]
    assert resp.json()["detail"][0]["loc"] == ["query", "period"]


def test_healthz_needs_no_key(setup: tuple[TestClient, FakeStore, dict[str, str]]) -> None:
    client, _, _ = setup
    assert client.get("/healthz").json() == {"ok": True, "site": "s1"}
