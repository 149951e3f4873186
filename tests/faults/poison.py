"""Poison messages for the reading topics of real meters: deep nesting, oversize, too many samples, seq >= 2^63,
random bytes and hypothesis-generated payloads. Each is invalid as a whole message (its envelope), so ingest
must dead-letter it whole, with a reason; none may add energy or stop ingest.

The ones shaped like readings carry large deltas: stored by mistake, they would show as double counting.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calc import topics
from calc.schema import MAX_SAMPLES, MAX_SEQ, decode
from ingest.config import DEFAULT_MAX_MESSAGE_BYTES

DEPTH = 3_000
# above ingest's default bound on a message, under the broker's packet cap (which would refuse it before ingest)
OVERSIZE_BYTES = DEFAULT_MAX_MESSAGE_BYTES + 1024 * 1024
HYPOTHESIS_EXAMPLES = 40


@dataclass(frozen=True)
class Poison:
    kind: str
    topic: str
    payload: bytes


def _sample(ts: str, delta_kwh: float = 1000.0) -> dict[str, Any]:
    return {"ts": ts, "quantity": "active_energy_import", "value": 1e6, "unit": "kWh", "delta": delta_kwh,
            "interval_s": 1.0, "quality": "good"}


def _reading(meter: str, seq: Any, samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"v": 1, "meter": meter, "seq": seq, "agent": "poison", "samples": samples}


def structured(site: str, meters: list[tuple[str, str]], rng: random.Random) -> list[Poison]:
    """The named kinds, each on a meter of its own choice (meters: (id, area))."""
    def topic() -> tuple[str, str]:
        meter, area = rng.choice(meters)
        return meter, topics.reading(site, area, meter)

    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    out = []
    m, t = topic()
    out.append(Poison("nested array, 3,000 levels", t, ("[" * DEPTH + "]" * DEPTH).encode()))
    m, t = topic()
    deep = '{"a": ' * DEPTH + "1" + "}" * DEPTH
    out.append(Poison("nested object in a reading, 3,000 levels", t,
                      f'{{"v": 1, "meter": "{m}", "seq": 7, "samples": [{deep}]}}'.encode()))
    m, t = topic()
    pad = "x" * OVERSIZE_BYTES
    out.append(Poison(f"oversize, {OVERSIZE_BYTES / 2**20:.0f} MiB", t,
                      json.dumps({**_reading(m, 8, [_sample(now)]), "pad": pad}).encode()))
    m, t = topic()
    many = [_sample(now, 1.0) for _ in range(MAX_SAMPLES + 1)]
    out.append(Poison(f"{MAX_SAMPLES + 1} samples", t, json.dumps(_reading(m, 9, many)).encode()))
    for seq in (MAX_SEQ + 1, 2**64 + 5, 10**30):
        m, t = topic()
        out.append(Poison(f"seq {seq}", t, json.dumps(_reading(m, seq, [_sample(now)])).encode()))
    for i in range(5):
        m, t = topic()
        out.append(Poison(f"random bytes {i + 1}", t, rng.randbytes(rng.randint(1, 4096))))
    return out


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=5),
                     max_leaves=25)
_bad_seq = (st.integers(max_value=-1) | st.integers(min_value=MAX_SEQ + 1) | st.text(max_size=10) | st.none()
            | st.floats() | st.lists(st.integers(), max_size=3))


def _refused(item: tuple[str, bytes]) -> bool:
    """calc.schema refuses it (a seq of "12" or 3.0 would pass its lax validation: that is no poison)."""
    try:
        decode(item[1])
    except (ValueError, RecursionError):
        return True
    return False


def _payloads(meter: str) -> st.SearchStrategy[tuple[str, bytes]]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    not_an_envelope = _json.filter(lambda v: not (isinstance(v, dict) and "meter" in v))
    bad_envelope = _bad_seq.map(lambda seq: json.dumps(_reading(meter, seq, [_sample(now)])))
    return st.one_of(
        st.binary(max_size=2000).map(lambda b: ("hypothesis: bytes", b)),
        not_an_envelope.map(lambda v: ("hypothesis: JSON", json.dumps(v).encode())),
        bad_envelope.map(lambda text: ("hypothesis: reading with a bad seq", text.encode())),
    ).filter(_refused)


def generated(site: str, meters: list[tuple[str, str]], rng: random.Random) -> list[Poison]:
    """HYPOTHESIS_EXAMPLES payloads from hypothesis (derandomized: the same ones every run)."""
    meter, area = rng.choice(meters)
    found: list[Poison] = []

    @settings(max_examples=HYPOTHESIS_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(_payloads(meter))
    def collect(item: tuple[str, bytes]) -> None:
        found.append(Poison(item[0], topics.reading(site, area, meter), item[1]))

    collect()
    return found


def messages(site: str, meters: list[tuple[str, str]], seed: int) -> list[Poison]:
    rng = random.Random(seed)
    return structured(site, meters, rng) + generated(site, meters, rng)
