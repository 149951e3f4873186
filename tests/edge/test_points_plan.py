"""Pure tests: register decoding against hand-made words, and request coalescing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calc.registers import decode as raw_value
from calc.registers import decode_block as raw_values
from calc.registers import encode as encode_value
from edge.drivers.modbus.plan import plan_reads
from edge.maps import ADAM6051_COUNTER, SCHNEIDER_PM5000, SDM630
from edge.points import DataType, Point


def pt(type_: DataType, **kw: object) -> Point:
    return Point(quantity="q", unit="kWh", address=kw.pop("address", 0), type=type_, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("type_", "words", "kw", "expected"), [
    # IEEE 754: 42.5 = 0x422A0000
    (DataType.F32, [0x422A, 0x0000], {}, 42.5),
    (DataType.F32, [0x0000, 0x422A], {"word_order": "little"}, 42.5),
    (DataType.F32, [0x2A42, 0x0000], {"byte_order": "little"}, 42.5),
    # 0x0001_0002 = 65538
    (DataType.U32, [0x0001, 0x0002], {}, 65538),
    (DataType.U32, [0x0002, 0x0001], {"word_order": "little"}, 65538),
    (DataType.I32, [0xFFFF, 0xFFFE], {}, -2),
    (DataType.I16, [0x8000], {}, -32768),
    (DataType.U16, [0x8000], {}, 32768),
    # 7.5e9 Wh = 0x0000_0001_BF08_EB00
    (DataType.I64, [0x0000, 0x0001, 0xBF08, 0xEB00], {}, 7_500_000_000),
    (DataType.U64, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], {}, 2**64 - 1),
    (DataType.I64, [0x8000, 0, 0, 0], {}, -(2**63)),
    # 1.0 as a double = 0x3FF0_0000_0000_0000
    (DataType.F64, [0x3FF0, 0, 0, 0], {}, 1.0),
])
def test_decode_known_words(type_: DataType, words: list[int], kw: dict[str, str], expected: float) -> None:
    assert raw_value(pt(type_, **kw), words) == expected


def test_decode_wrong_register_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        raw_value(pt(DataType.F32), [1])


@given(st.sampled_from(list(DataType)), st.sampled_from(["big", "little"]), st.sampled_from(["big", "little"]),
       st.integers(min_value=0, max_value=2**15 - 1))
def test_encode_decode_round_trip(type_: DataType, word_order: str, byte_order: str, n: int) -> None:
    point = pt(type_, word_order=word_order, byte_order=byte_order)
    value = float(n) / 4 if type_ in (DataType.F32, DataType.F64) else n
    assert raw_value(point, encode_value(point, value)) == value


def test_pm5000_energy_words_are_most_significant_first() -> None:
    energy = next(p for p in SCHNEIDER_PM5000 if p.quantity == "active_energy_import")
    assert (energy.address, energy.function, energy.registers) == (3203, "holding", 4)  # manual register 3204
    words = list(struct.unpack(">4H", struct.pack(">q", 123_456_789_012)))
    assert raw_value(energy, words) == 123_456_789_012


def test_adam_counter_is_low_word_first() -> None:
    (counter,) = ADAM6051_COUNTER
    # manual: counter = (value of 40002) x 65536 + (value of 40001)
    assert raw_value(counter, [0x0005, 0x0002]) == 2 * 65536 + 5


def test_plan_coalesces_neighbours_and_splits_functions() -> None:
    blocks = plan_reads(SCHNEIDER_PM5000, max_gap=8)
    assert [(b.function, b.address, b.count) for b in blocks] == [("holding", 3053, 8), ("holding", 3203, 8)]
    sdm = plan_reads(SDM630, max_gap=0)
    assert [(b.address, b.count) for b in sdm] == [(0, 18), (52, 2), (70, 6)]
    sdm_gap = plan_reads(SDM630, max_gap=20)
    assert [(b.address, b.count) for b in sdm_gap] == [(0, 18), (52, 24)]


def test_plan_respects_the_request_size_limit() -> None:
    points = [pt(DataType.F32, address=a) for a in range(0, 300, 2)]
    blocks = plan_reads(points, max_gap=0, max_registers=125)
    assert all(b.count <= 125 for b in blocks)
    assert sum(len(b.points) for b in blocks) == len(points)
    assert len(blocks) == 3  # 300 registers in reads of at most 124 (whole float pairs)
    covered = sorted(b.address + off for b in blocks for _, off in b.points)
    assert covered == list(range(0, 300, 2))


@given(st.lists(st.tuples(st.integers(0, 400), st.sampled_from([DataType.U16, DataType.F32, DataType.I64]),
                          st.sampled_from(["holding", "input"])), min_size=1, max_size=40),
       st.integers(0, 20), st.integers(4, 125))
def test_plan_places_every_point_inside_its_block(specs: list[tuple[int, DataType, str]], gap: int,
                                                  limit: int) -> None:
    points = [Point(quantity=f"q{i}", unit="V", address=a, type=t, function=f)  # type: ignore[arg-type]
              for i, (a, t, f) in enumerate(specs)]
    blocks = plan_reads(points, max_gap=gap, max_registers=limit)
    placed = [p for b in blocks for p, _ in b.points]
    assert sorted(id(p) for p in placed) == sorted(id(p) for p in points)
    for block in blocks:
        assert block.count <= max(limit, max(p.registers for p, _ in block.points))
        for point, offset in block.points:
            assert point.function == block.function
            assert block.address + offset == point.address
            assert offset + point.registers <= block.count


@given(st.lists(st.tuples(st.integers(0, 40), st.sampled_from(list(DataType)), st.sampled_from(["big", "little"]),
                          st.sampled_from(["big", "little"])), min_size=1, max_size=8),
       st.lists(st.integers(0, 0xFFFF), min_size=48, max_size=48))
def test_block_decode_equals_decoding_point_by_point(specs: list[tuple[int, DataType, str, str]],
                                                     words: list[int]) -> None:
    # the driver's one-pass block decode must give exactly what raw_value gives for each point (NaNs compared
    # by their bits, since NaN != NaN)
    points = [(pt(t, word_order=w, byte_order=b), offset) for offset, t, w, b in specs]
    fast = raw_values(points, words)
    slow = [raw_value(p, words[o:o + p.registers]) for p, o in points]
    assert [struct.pack(">d", v) if isinstance(v, float) else v for v in fast] == \
        [struct.pack(">d", v) if isinstance(v, float) else v for v in slow]
    assert [type(v) for v in fast] == [type(v) for v in slow]


def test_block_decode_masks_words_wider_than_16_bits_like_raw_value() -> None:
    point = pt(DataType.U32)
    assert raw_values([(point, 0)], [0x1_0001, 0x0002]) == [raw_value(point, [0x1_0001, 0x0002])] == [65538]
