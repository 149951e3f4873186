"""Load profiles: the rate a meter sees at a simulated moment, deterministic for (seed, meter, step).

"shift": shifts on weekdays with a start-up peak, low load at night and at weekends.
"continuous": a process that runs day and night around a daily cycle (ovens, boilers).
"solar": a PV generation meter on a clear-sky day curve (clear_sky); a grid meter with one behind it imports and
exports the difference with its load (NetOfGeneration).
"model": a meter whose rate follows a known model of production and heating degree-days (ModelProfile); the
outdoor temperature behind it comes from a Weather profile.
All add noise drawn from a hash of (seed, meter id, step index), so any step can be recomputed alone.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from simulators.config import EnergyModel, SimSpec
from simulators.config import Weather as WeatherSpec


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
        if self.kind == "solar":
            return clear_sky(hour, self.spec.daylight_h) * self.peak
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


def clear_sky(hour: float, daylight_h: tuple[float, float]) -> float:
    """A clear day's share of the PV peak at a local hour: sin(pi x fraction of the daylight)^1.5, 0 at night."""
    rise, set_ = daylight_h
    if not rise < hour < set_:
        return 0.0
    return float(math.sin(math.pi * (hour - rise) / (set_ - rise)) ** 1.5)


@dataclass(frozen=True)
class NetOfGeneration:
    """A grid meter's rate with generation behind it: `export` False: what it imports, max(0, load - generation);
    True: what it exports, max(0, generation - load); both at the same step, so each is exact and never both."""

    load: Rate
    generation: Rate
    export: bool = False

    def rate(self, t: datetime, index: int) -> float:
        net = self.load.rate(t, index) - self.generation.rate(t, index)
        return max(0.0, -net if self.export else net)


def make_profile(spec: SimSpec, bounds: tuple[float, float], timezone: str, seed: int, key: str) -> Profile:
    return Profile(spec.profile, bounds[0], bounds[1], spec, ZoneInfo(timezone), seed, key)


class Rate(Protocol):
    def rate(self, t: datetime, index: int) -> float: ...


@dataclass(frozen=True)
class Weather:
    """Air temperature at a simulated moment: mean_c plus a day's offset (seeded per local day, interpolated
    between the days' middles so it never jumps) plus the daily swing, peaking at `warmest_hour`."""

    spec: WeatherSpec
    tz: ZoneInfo
    seed: int
    key: str

    def _day_offset(self, day: int) -> float:
        return self.spec.day_sd_c * unit_normal(self.seed, self.key + "/day", day)

    def temperature_c(self, t: datetime) -> float:
        local = t.astimezone(self.tz)
        hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        day = local.toordinal()
        if hour >= 12.0:
            w, a, b = (hour - 12.0) / 24.0, self._day_offset(day), self._day_offset(day + 1)
        else:
            w, a, b = (hour + 12.0) / 24.0, self._day_offset(day - 1), self._day_offset(day)
        swing = self.spec.swing_c * math.cos(2.0 * math.pi * (hour - self.spec.warmest_hour) / 24.0)
        return self.spec.mean_c + a + (b - a) * w + swing


def hdd_per_h(temperature_c: float, base_c: float) -> float:
    """Heating degree-days accrued per hour at this temperature: max(0, base - T) / 24."""
    return max(0.0, base_c - temperature_c) / 24.0


@dataclass(frozen=True)
class ModelProfile:
    """A meter's rate from its energy model (config.EnergyModel): base + per_unit x production rate +
    per_degree_day x HDD rate + noise; the production rate is the production counter's own profile at the same
    step, the temperature the sensor's weather at the step's start."""

    model: EnergyModel
    production: Rate
    weather: Weather | None
    seed: int
    key: str
    step_s: int

    def hdd_per_h(self, t: datetime) -> float:
        if self.weather is None:
            return 0.0
        return hdd_per_h(self.weather.temperature_c(t), self.model.hdd_base_c)

    def rate(self, t: datetime, index: int) -> float:
        m = self.model
        level = m.base + m.per_unit * self.production.rate(t, index) + m.per_degree_day * self.hdd_per_h(t)
        if m.noise_sd > 0:
            block = index * self.step_s // m.noise_block_s
            level += m.noise_sd * unit_normal(self.seed, self.key + "/model", block)
        return max(0.0, level)

