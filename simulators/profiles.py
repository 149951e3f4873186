"""Load profiles: the rate a meter sees at a simulated moment, deterministic for (seed, meter, step).

"shift": shifts on weekdays with a start-up peak, low load at night and at weekends.
"continuous": a process that runs day and night around a daily cycle (ovens, boilers).
Both add noise drawn from a hash of (seed, meter id, step index), so any step can be recomputed alone.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from simulators.config import SimSpec


def unit_normal(seed: int, key: str, index: int) -> float:
    """A standard normal variate that depends only on (seed, key, index) (Box-Muller on a hash)."""
    digest = hashlib.blake2b(f"{seed}|{key}|{index}".encode(), digest_size=16).digest()
    a, b = struct.unpack("<QQ", digest)
    u1 = (a + 1) / 18446744073709551617.0  # in (0, 1]
    u2 = b / 18446744073709551616.0
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def unit_uniform(seed: int, key: str, index: int) -> float:
    """A uniform variate in [0, 1) that depends only on (seed, key, index)."""
    digest = hashlib.blake2b(f"{seed}|{key}|u|{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 18446744073709551616.0


@dataclass(frozen=True)
class Profile:
    """Rate of one meter (in the unit of its map: kW, m3/h or kg/h) as a function of simulated time."""

    kind: str
    base: float
    peak: float
    spec: SimSpec
    tz: ZoneInfo
    seed: int
    key: str

    def shape(self, t: datetime) -> float:
        """Noise-free level between base and peak (may exceed peak a little during start-up)."""
        local = t.astimezone(self.tz)
        hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        span = self.peak - self.base
        if self.kind == "continuous":
            # a slow daily swing: highest mid-afternoon, lowest before dawn
            return self.base + span * (0.5 + 0.5 * math.sin(2.0 * math.pi * (hour - 9.0) / 24.0))
        running = self.base + 0.75 * span
        for start, end in self.spec.shifts:
            if start <= hour < end:
                level = running
                minutes_in = (hour - start) * 60.0
                if minutes_in < self.spec.startup_min:
                    level = self.peak  # motors, compressors and heaters all starting together
                if local.weekday() >= 5:
                    level = self.base + (level - self.base) * self.spec.weekend_factor
                return level
        return self.base

    def rate(self, t: datetime, index: int) -> float:
        """Rate at step `index` (whose start is `t`): shape plus deterministic noise, never negative."""
        level = self.shape(t)
        if self.spec.noise > 0:
            level *= 1.0 + self.spec.noise * unit_normal(self.seed, self.key, index)
        return max(0.0, level)


def make_profile(spec: SimSpec, bounds: tuple[float, float], timezone: str, seed: int, key: str) -> Profile:
    return Profile(spec.profile, bounds[0], bounds[1], spec, ZoneInfo(timezone), seed, key)
