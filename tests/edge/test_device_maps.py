"""Every declared device map (calc/devices), both ways: what the simulator renders, the edge decodes back.

Generic over the registry, so a new map is covered by adding its module: the simulator's registers go through
the edge's own read plan and block decode (the Modbus driver's `_decode`) and the edge's scale, and come out as
the values the simulator meant, in the edge point's unit; the counter equals the simulator's ground truth; the
nan fault is flagged on every point. OPC UA maps: every edge node id names a variable the simulator serves, in
the same unit.
"""

from __future__ import annotations

import math
import struct

import pytest

from calc.devicemap import DeviceMap
from calc.devices import MAPS, MODBUS_MAPS, OPCUA_MAPS
from calc.registers import DataType
from edge.config import MeterDevice
from edge.drivers.modbus.driver import ModbusDriver
from edge.drivers.modbus.plan import plan_reads
from edge.points import Point, scaled
from simulators.config import SimMeter
from simulators.maps import DeviceValues, render, values_of
from simulators.opcua import variables
from simulators.plant import counter_model

PULSE_M3 = 0.01


def edge_meter(device: DeviceMap) -> MeterDevice:
    """The meter as the edge's config makes it (templates, pulse weight, node ids with the meter's id)."""
    return MeterDevice(id="m1", area="a", gateway="gw", map=device.name,
                       pulse_m3=PULSE_M3 if device.pulse_scaled else None)


def sim_meter(device: DeviceMap) -> SimMeter:
    key = device.rate_key
    sim = {f"base_{key}": 10.0, f"peak_{key}": 20.0} if device.has_counter else {"weather": {}}
    return SimMeter.model_validate({
        "id": "m1", "area": "a", "carrier": "electricity", "gateway": "gw", "map": device.name,
        "unit_id": 1 if device.protocol == "modbus" else None, "pulse_m3": PULSE_M3 if device.pulse_scaled else None,
        "sim": sim})


def as_declared(value: float | int, data_type: DataType) -> float | int:
    """The value as its register type holds it (float32 rounds)."""
    if data_type == DataType.F32:
        return float(struct.unpack(">f", struct.pack(">f", value))[0])
    return value


def decoded(points: tuple[Point, ...], words: dict[int, int]) -> dict[str, tuple[Point, int | float]]:
    """The edge's Modbus path: its read plan, one request per block, the driver's block decode."""
    out: dict[str, tuple[Point, int | float]] = {}
    for block in plan_reads(points):
        registers = [words[a] for a in range(block.address, block.address + block.count)]
        for pv in ModbusDriver._decode(block, registers):
            assert pv.raw is not None
            out[pv.point.quantity] = (pv.point, pv.raw)
    return out


@pytest.mark.parametrize("name", MODBUS_MAPS)
@pytest.mark.parametrize(("counter", "rate"), [(0, 0.0), (123_457, 17.25), (2**32 - 3, 250.5)])
def test_edge_decodes_what_the_simulator_renders(name: str, counter: int, rate: float) -> None:
    device = MAPS[name]
    model = counter_model(sim_meter(device))
    if model.width_bits is not None:
        counter %= 1 << model.width_bits  # the simulator wraps its register counter before rendering
    values = DeviceValues(counter=counter, rate=rate, step=42, seed=7, key="m1")
    meant = values_of(device, values)
    meter = edge_meter(device)
    got = decoded(meter.all_points, render(device, values))
    polled = [p for p in device.points if p.polled]
    assert sorted(got) == sorted(p.quantity for p in polled)
    for declared in polled:
        point, raw = got[declared.quantity]
        assert point.unit == declared.unit
        assert point.unavailable(raw) is None
        value = scaled(point, raw)
        expected = as_declared(meant[declared.label], declared.type) * point.scale
        assert value == expected, declared.quantity
    if device.counter is None:
        return  # a sensor: its gauges are checked above
    # the counter the edge reads is the simulator's ground truth of the register, in the edge point's unit
    point, raw = got[device.counter]
    truth_per_count = model.count_size * (model.scale[0] if model.scale else 1.0)
    assert point.unit == (model.scale[1] if model.scale else model.unit)
    assert scaled(point, raw) == pytest.approx(counter * truth_per_count, rel=1e-6)


@pytest.mark.parametrize("name", MODBUS_MAPS)
def test_the_nan_fault_reads_as_no_value_on_every_point(name: str) -> None:
    device = MAPS[name]
    values = DeviceValues(counter=5, rate=1.0, step=0, seed=0, key="m1", nan=True)
    for point, raw in decoded(edge_meter(device).all_points, render(device, values)).values():
        assert point.unavailable(raw) is not None or point.out_of_range(scaled(point, raw)) is not None


@pytest.mark.parametrize("name", OPCUA_MAPS)
def test_edge_nodes_are_the_simulators_variables(name: str) -> None:
    device = MAPS[name]
    served = variables(device)
    meant = values_of(device, DeviceValues(counter=1234, rate=3.5, step=1, seed=0, key="m1", pressure_bar=4.0,
                                           temperature_c=15.0))
    for point in edge_meter(device).all_points:
        assert point.node is not None
        prefix = f"nsu={device.namespace};s=m1."
        assert point.node.startswith(prefix)
        declared, unit = served[point.node.removeprefix(prefix)]
        assert (declared.quantity, unit.pint) == (point.quantity, point.unit)
        assert math.isfinite(meant[declared.label])
    if device.has_counter:
        model = counter_model(sim_meter(device))
        assert meant[device.counter_point.label] == 1234 * model.count_size
