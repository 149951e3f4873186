"""The device-map registry: every declaration is complete and consistent (generic, so a new module is checked too)."""

from __future__ import annotations

import re

import pytest

from calc.devicemap import DeviceMap
from calc.devices import DEVICE_MAPS, MAPS, MODBUS_MAPS, OPCUA_MAPS, device_map
from calc.units import check_dimension, conversion_factor

QUANTITY = r"^[a-z0-9_]+$"


def test_the_registry_finds_every_module() -> None:
    assert {"schneider_pm5000", "eastron_sdm630", "adam6051_counter", "opcua_gas", "opcua_steam"} <= set(MAPS)
    assert DEVICE_MAPS["sdm630"] is MAPS["eastron_sdm630"]
    assert set(MODBUS_MAPS) | set(OPCUA_MAPS) == set(MAPS)
    with pytest.raises(KeyError, match=r"unknown register map .pm9999.; known: .*adam6051_counter, "):
        device_map("pm9999")


@pytest.mark.parametrize("name", sorted(MAPS))
def test_points_are_complete(name: str) -> None:
    device = MAPS[name]
    quantities = [p.quantity for p in device.points]
    assert len(set(quantities)) == len(quantities), "a quantity appears twice"
    labels = [p.label for p in device.points]
    assert len(set(labels)) == len(labels), "a device name appears twice"
    for p in device.points:
        assert re.match(QUANTITY, p.quantity), p.quantity
        check_dimension(p.unit, p.unit)  # pint knows it
        if device.protocol == "modbus":
            assert p.address is not None and p.node is None and p.manual_ref, p.quantity
            assert p.address >= 0 and p.address + p.registers <= 65536
        else:
            assert p.node is not None and p.address is None and p.ua_unit is not None, p.quantity
        assert p.kind == "counter" or p.counter_width is None
        assert p.not_available is None or p.is_integer, "a float's 'not available' is NaN"
        assert p.phase in (0, 1, 2)
    assert device.protocol != "opcua" or device.namespace


@pytest.mark.parametrize("name", sorted(MODBUS_MAPS))
def test_registers_do_not_overlap(name: str) -> None:
    taken: dict[int, str] = {}
    for p in MAPS[name].points:
        assert p.address is not None
        for a in range(p.address, p.address + p.registers):
            assert a not in taken, f"{p.quantity} and {taken[a]} share register {a}"
            taken[a] = p.quantity
    assert sum(n for _, n in MAPS[name].ranges()) == len(taken)


COUNTING = sorted(name for name, m in MAPS.items() if m.has_counter)
SENSORS = sorted(name for name, m in MAPS.items() if not m.has_counter)


def test_the_sensors_are_the_outdoor_temperature_maps() -> None:
    assert SENSORS == ["opcua_outdoor_temperature", "outdoor_temperature"]
    assert {"production_counter", "opcua_production"} <= set(COUNTING)


@pytest.mark.parametrize("name", SENSORS)
def test_a_sensor_has_gauges_and_no_counter(name: str) -> None:
    device: DeviceMap = MAPS[name]
    assert all(p.kind == "gauge" and p.shows != "counter" for p in device.points)
    assert device.width_bits is None and not device.rate_unit
    with pytest.raises(KeyError, match="sensor without a counter"):
        _ = device.counter_point


@pytest.mark.parametrize("name", COUNTING)
def test_the_counter_and_the_rate_agree(name: str) -> None:
    device: DeviceMap = MAPS[name]
    counter = device.counter_point
    assert counter.kind == "counter" and counter.shows == "counter" and counter.polled
    assert [p.quantity for p in device.points if p.shows == "counter"] == [device.counter]
    # the rate integrated over an hour, in counts, each worth count_size: one rate unit x hour in the counter's unit
    if device.pulse_scaled:
        assert counter.is_integer and counter.unit == "m**3"
        check_dimension(device.rate_unit, "m**3/h")
    else:
        per_rate_hour = conversion_factor(f"{device.rate_unit} * h", counter.unit)
        assert device.counts_per_rate_hour * device.count_size == pytest.approx(per_rate_hour, rel=1e-12)
        assert not counter.is_integer or device.count_size == 1, "an integer register holds whole counts"
    for p in device.points:
        if p.shows in ("rate", "phase_rate"):
            check_dimension(p.unit, device.rate_unit)
    assert device.rate_key and device.rate_key.replace("_", "").isalnum()
