"""A virtual meter over a store's series (SQLite and a real InfluxDB): a day of minute samples of a main meter and
two submeters through the converter, read back per minute, and the rest equals main − Σ submeters of the samples
sent to 1e-9 in every bucket, with completeness from the store's point counts."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from calc import topics
from calc.plant import parse_plant
from calc.virtual_series import evaluate, from_rows, reconcile_virtual
from ingest.config import InfluxStoreSettings
from ingest.convert import Converter
from ingest.points import ts_to_us
from ingest.store.base import Store
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import T0, counter_sample

SITE = "demo"
PLANT = parse_plant({
    "site": {"id": SITE, "region": "CN", "start": "2026-01-01T00:00:00Z"},
    "meters": [{"id": m, "area": "a1", "carrier": "electricity"} for m in ("main", "press-1", "press-2")],
    "virtual_meters": [{"id": "rest", "area": "a1", "expression": "main - press-1 - press-2"}],
})
NOW_US = ts_to_us(T0 + timedelta(days=10))
CONV = Converter(PLANT, clock=lambda: NOW_US / 1e6)
DAY_MIN = 1440


@pytest.fixture(params=["sqlite", "influxdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "store.sqlite")
    else:
        url = request.getfixturevalue("influx_url")
        s = InfluxStore(InfluxStoreSettings(kind="influxdb", url=url, database=f"t{uuid.uuid4().hex[:12]}"))
    try:
        yield s
    finally:
        s.close()


def test_a_virtual_meter_equals_main_minus_submeters_over_a_day(store: Store) -> None:
    rng = random.Random(17)
    sent = {m: np.zeros(DAY_MIN) for m in ("main", "press-1", "press-2")}
    items = []
    for meter in sent:
        counter = 1000.0
        samples = []
        for minute in range(DAY_MIN):
            if meter == "press-2" and 600 <= minute < 660:
                continue  # an hour without press-2: those buckets are 0 % complete through it
            delta = round(rng.uniform(0.0, 3.0), 6) if meter != "main" else round(rng.uniform(4.0, 9.0), 6)
            counter += delta
            sent[meter][minute] = delta
            samples.append(counter_sample(T0 + timedelta(minutes=minute, seconds=30), delta, counter))
        for seq, lo in enumerate(range(0, len(samples), 500)):
            body = json.dumps({"v": 1, "meter": meter, "seq": seq, "samples": samples[lo:lo + 500]}).encode()
            items.append((topics.reading(SITE, "a1", meter), body, NOW_US))
    outs, batch = CONV.convert_to_batch(items)
    assert [d.reason for o in outs for d in o.dead] == []
    store.write(batch)
    rows = store.series(SITE, T0, T0 + timedelta(days=1), "1m", "UTC")
    inputs = from_rows(rows, {"main": 1, "press-1": 1, "press-2": 1})
    rest = evaluate(PLANT.virtual()["rest"], inputs)
    want = sent["main"] - sent["press-1"] - sent["press-2"]
    assert len(rest.energy) == DAY_MIN
    assert float(np.max(np.abs(rest.energy - want))) <= 1e-9
    assert rest.completeness[600:660].tolist() == [0.0] * 60 and rest.completeness[:600].min() == 1.0
    rec = reconcile_virtual(PLANT.virtual()["rest"], inputs)
    assert rec.difference_total == pytest.approx(float(want.sum()), abs=1e-6)
    assert rec.difference_pct_total == pytest.approx(float(want.sum() / sent["main"].sum() * 100), abs=1e-9)
