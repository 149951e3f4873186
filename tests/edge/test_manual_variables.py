"""A `[[variables]]` entry without device keys is entered by hand (calc.entries): the edge and the simulators read
the demo plant's devices as before and have nothing to read for it, and the plant model still knows it."""

from __future__ import annotations

import tomllib

from calc.plant import parse_plant
from edge.config import parse_config as edge_config
from simulators.config import parse_config as sim_config
from tests.conftest import DEMO_PLANT

MANUAL = {"id": "line-9-output", "area": "pressing", "kind": "production", "quantity": "production", "unit": "count"}


def test_a_variable_without_a_gateway_is_left_to_manual_entry() -> None:
    data = tomllib.loads(DEMO_PLANT.read_text())
    before = (edge_config(data).variables, sim_config(data).variables)
    data["variables"] = [*data["variables"], MANUAL]
    assert "line-9-output" in parse_plant(data).variables_by_id
    assert edge_config(data).variables == before[0] and sim_config(data).variables == before[1]
    assert [v.id for v in before[0]] == ["press-1-output", "outdoor-temp"]
