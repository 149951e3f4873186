"""Register maps: encoding round-trips, addresses as published, and the README tables match the code."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from calc.devicemap import DevicePoint
from calc.devices import MODBUS_MAPS, device_map
from calc.registers import DataType, decode, encode
from simulators.maps import layout_table

README = Path(__file__).resolve().parents[2] / "simulators" / "maps" / "README.md"


@pytest.mark.parametrize("name", sorted(MODBUS_MAPS))
def test_readme_table_is_the_code(name: str) -> None:
    assert layout_table(name) in README.read_text()


@pytest.mark.parametrize(("name", "point", "address", "fc"), [
    ("schneider_pm5000", "active_energy_import", 3203, 3),   # register 3204, 1-based
    ("schneider_pm5000", "active_power", 3059, 3),           # register 3060
    ("eastron_sdm630", "voltage_l1", 0x0000, 4),
    ("eastron_sdm630", "current_l1", 0x0006, 4),
    ("eastron_sdm630", "active_power", 0x0034, 4),
    ("eastron_sdm630", "active_energy_import", 0x0048, 4),
    ("eastron_sdm630", "active_energy_export", 0x004A, 4),
    ("adam6051_counter", "pulse_count", 0, 3),               # 40001
    ("production_counter", "pieces", 0, 3),                  # 40001-40002
    ("production_counter", "production_rate", 2, 3),         # 40003-40004
    ("outdoor_temperature", "outdoor_temperature", 0, 4),    # 30001-30002
])
def test_published_addresses(name: str, point: str, address: int, fc: int) -> None:
    mmap = device_map(name)
    assert mmap.point(point).address == address
    assert mmap.function_code == fc


def test_word_orders_by_hand() -> None:
    int64 = DevicePoint("e", "Wh", "counter", address=0, type=DataType.I64)
    assert encode(int64, 0x0001_0002_0003_0004) == [1, 2, 3, 4]
    f32 = DevicePoint("p", "kW", "rate", address=0, type=DataType.F32)
    assert encode(f32, 1.0) == [0x3F80, 0x0000]
    u32_low_first = DevicePoint("c", "count", "counter", address=0, type=DataType.U32, word_order="little")
    assert encode(u32_low_first, 0x0001_0002) == [0x0002, 0x0001]
    assert decode(u32_low_first, [0xFFFF, 0x0000]) == 65535


@pytest.mark.parametrize("value", [0, 1, 123_456_789_012, 2**63 - 1, -(2**63)])
def test_int64_round_trip(value: int) -> None:
    p = DevicePoint("e", "Wh", "counter", address=0, type=DataType.I64)
    assert decode(p, encode(p, value)) == value


def test_float32_nan_pattern() -> None:
    p = DevicePoint("p", "kW", "rate", address=0, type=DataType.F32)
    words = encode(p, math.nan)
    assert math.isnan(decode(p, words))
    assert struct.unpack(">f", struct.pack(">HH", *words))[0] != 0
