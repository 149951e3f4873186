"""records.baselines on a real API database: versions are appended, never overwritten; `latest_active` (the read
the deviation rule uses) gives the newest version in force and None once it is retired; ids are per site."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from calc.baseline import fit_baseline
from records.baselines import Baselines, BaselineSpec, StoredBaseline
from records.db import ApiDb

SPEC = BaselineSpec(scope="meter", target="m1", resolution="daily", period_start=datetime(2026, 1, 1, tzinfo=UTC),
                    period_end=datetime(2026, 3, 1, tzinfo=UTC), drivers=({"name": "pieces", "variable": "out"},))


def _model(slope: float) -> StoredBaseline:
    rng = np.random.default_rng(1)
    pieces = rng.uniform(100, 200, 40)
    energy = 100 + slope * pieces + rng.normal(0, 2, 40)
    model = fit_baseline(energy, {"pieces": pieces}, energy_unit="kWh", driver_units={"pieces": "count"},
                         resolution="daily", subject="s1/meter/m1")
    return StoredBaseline("b1", 1, "s1", SPEC, model, model.version, 24.0, True, "2026-03-01T00:00:00+00:00", "me")


def test_versions_and_the_one_in_force(tmp_path: Path) -> None:
    db = ApiDb(tmp_path / "api.sqlite")
    repo = Baselines(db)
    assert repo.latest_active("s1", "b1") is None
    first, second = _model(2.0), _model(3.0)
    with db.tx() as conn:
        assert Baselines.latest(conn, "b1") == (None, None)
        Baselines.add(conn, first)
        Baselines.add(conn, StoredBaseline("b1", 2, "s1", SPEC, second.model, second.model_hash, 24.0, True, "t",
                                           "me"))
        assert Baselines.latest(conn, "b1") == ("s1", 2)
    active = repo.latest_active("s1", "b1")
    assert active is not None and active.version == 2
    assert active.model == second.model and active.spec == SPEC and active.model.term("pieces").value > 2.5
    assert repo.latest_active("s2", "b1") is None
    with db.tx() as conn:
        Baselines.add(conn, StoredBaseline("b1", 3, "s1", SPEC, second.model, second.model_hash, 24.0, False, "t",
                                           "me"))
    assert repo.latest_active("s1", "b1") is None
    assert [(b.version, b.active) for b in repo.versions("s1", "b1")] == [(1, True), (2, True), (3, False)]
    assert [b.version for b in repo.current("s1")] == [3]
    db.close()
