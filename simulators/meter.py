"""One simulated meter: integrates its profile into an exact integer counter and keeps the ground truth.

The rate is held constant over each simulated step of `step_s` and quantised to milli-counts per hour,
so the counter is a pure function of (seed, meter, elapsed steps): the sub-count remainder is carried
as an integer and nothing is lost or rounded twice. `produced` counts every count the meter advanced;
the register counter starts at `counter_start` and may be reset or wrapped by faults, `produced` never.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from simulators.config import SimMeter
from simulators.faults import ONE_SHOT, READ_LIMITED, ActiveFaults, FaultKind, FaultSpec
from simulators.profiles import Rate, Weather

MILLI_COUNT_SECONDS_PER_COUNT_HOUR = 3_600_000  # 1 count/h for 1 s = 1/3600 count; ×1000 for milli-counts
GARBAGE_HIGH_COUNTS = 2**40  # garbage_high's default step above the truth (a high word full of garbage)


@dataclass(frozen=True)
class CounterModel:
    """How a map's counter relates to the rate: counts per (rate unit × hour), and what a count is worth."""

    quantity: str          # the counter's quantity name (active_energy_import, volume, mass, pulse_count)
    counts_per_rate_hour: float
    count_size: float      # register value per count (1 Wh, 0.001 kWh, 0.001 m3 ...)
    unit: str              # unit of the register value
    width_bits: int | None  # the register wraps at 2**width_bits; None: it does not wrap
    rate_unit: str
    scale: tuple[float, str] | None = None  # pulse counters: what one count is in physical units


@dataclass(frozen=True)
class TruthInterval:
    meter: str
    start: datetime
    end: datetime
    produced_counts: int
    produced: float
    unit: str

    def as_dict(self) -> dict[str, Any]:
        return {"meter": self.meter, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "produced_counts": self.produced_counts, "produced": self.produced, "unit": self.unit}


class MeterSim:
    """State of one meter; `advance(elapsed_s)` integrates up to a simulated time, reads are then cheap."""

    def __init__(self, meter: SimMeter, profile: Rate, model: CounterModel, start: datetime, step_s: int,
                 truth_interval_s: int, history: int = 20_000, weather: Weather | None = None,
                 export: Rate | None = None) -> None:
        self.meter = meter
        self.weather = weather  # a temperature sensor's air temperature (its gauges show it)
        self.id = meter.id
        self.profile = profile
        self.model = model
        self.start = start
        self.step_s = step_s
        self.faults = ActiveFaults()
        self.export = export           # a grid meter with generation behind it: the rate it exports at
        self.exported = 0              # export register counts since start (exact, as `produced`)
        self._export_acc = 0
        self.steps = 0                 # steps integrated so far
        self.produced = 0              # counts advanced since start (ground truth)
        self._acc = 0                  # milli-count-seconds per hour not yet a whole count
        self._register_base = meter.sim.counter_start  # register = (base + produced) mod 2**width
        self._rate_step = 0            # the step whose rate _rate_mch holds (the step in progress)
        self._rate_mch = self._quantise(profile.rate(start, 0))
        self._stuck: tuple[int, float] | None = None
        self.halted = False            # the plant is paused idle: nothing flows, so the rate gauge reads zero
        self._reads_left: dict[FaultKind, int] = {}  # read-limited faults: counter reads still to glitch
        self.truth_interval_s = truth_interval_s
        self._interval_index = self._interval_of(0)
        self._interval_produced0 = 0
        self.intervals: deque[TruthInterval] = deque(maxlen=history)
        self.closed: list[TruthInterval] = []  # intervals closed since the caller last drained them
        for spec in meter.sim.faults:
            self.apply_fault(spec)

    # --- integration -----------------------------------------------------------------------------
    def _quantise(self, rate: float) -> int:
        return round(rate * self.model.counts_per_rate_hour * 1000.0)

    def _interval_of(self, step: int) -> int:
        t = self.start + timedelta(seconds=step * self.step_s)
        return int(t.timestamp()) // self.truth_interval_s

    def _close_interval(self, next_index: int) -> None:
        n = self.truth_interval_s
        start = datetime.fromtimestamp(max(self._interval_index * n, self.start.timestamp()), self.start.tzinfo)
        end = datetime.fromtimestamp(next_index * n, self.start.tzinfo)
        counts = self.produced - self._interval_produced0
        record = TruthInterval(self.id, start, end, counts, counts * self.model.count_size, self.model.unit)
        self.intervals.append(record)
        self.closed.append(record)
        self._interval_index = next_index
        self._interval_produced0 = self.produced

    def _rate_at(self, step: int) -> int:
        if self._rate_step != step:
            t = self.start + timedelta(seconds=step * self.step_s)
            rate = self.profile.rate(t, step)
            waste = self.faults.get(FaultKind.WASTE)
            self._rate_mch = self._quantise(rate * waste.factor if waste is not None else rate)
            self._rate_step = step
        return self._rate_mch

    def _rerate(self) -> None:
        """The step in progress takes the rate as it is now (a waste fault set or cleared acts from here on)."""
        self._rate_step = -1
        self._rate_at(self.steps)

    def _check_interval(self, step: int) -> None:
        index = self._interval_of(step)
        if index != self._interval_index:
            self._close_interval(index)

    def advance(self, elapsed_s: float) -> None:
        """Integrate every step that has ended by `elapsed_s` simulated seconds after start."""
        target = int(elapsed_s // self.step_s)
        while self.steps < target:
            k = self.steps
            self._check_interval(k)
            self._acc += self._rate_at(k) * self.step_s
            counts, self._acc = divmod(self._acc, MILLI_COUNT_SECONDS_PER_COUNT_HOUR)
            self.produced += counts
            if self.export is not None:
                t = self.start + timedelta(seconds=k * self.step_s)
                self._export_acc += self._quantise(self.export.rate(t, k)) * self.step_s
                sent, self._export_acc = divmod(self._export_acc, MILLI_COUNT_SECONDS_PER_COUNT_HOUR)
                self.exported += sent
            self.steps = k + 1
        self._check_interval(self.steps)
        self._rate_at(self.steps)

    def drain_closed(self) -> list[TruthInterval]:
        closed, self.closed = self.closed, []
        return closed

    # --- what the device shows -------------------------------------------------------------------
    @property
    def rate(self) -> float:
        """Rate of the step in progress, in the map's rate unit (quantised as integrated)."""
        return self._rate_mch / 1000.0 / self.model.counts_per_rate_hour

    @property
    def register_counts(self) -> int:
        value = self._register_base + self.produced
        if self.model.width_bits is not None:
            value %= 1 << self.model.width_bits
        return value

    @property
    def temperature_c(self) -> float:
        """What a temperature point shows: the weather at the step in progress (sensors), else the sim table's
        line temperature (flow computers)."""
        if self.weather is None:
            return self.meter.sim.temperature_c
        return self.weather.temperature_c(self.start + timedelta(seconds=self.steps * self.step_s))

    def shown(self) -> tuple[int, float]:
        """(counter counts, rate) the device shows now: frozen while the stuck fault is on; a rate of zero while
        the plant is paused (a stopped line draws nothing: a gauge still showing its load would say the counter
        is stuck)."""
        if self._stuck is not None:
            return self._stuck
        return self.register_counts, 0.0 if self.halted else self.rate

    def glitch_high_counts(self, spec: FaultSpec) -> int:
        """garbage_high's step above the truth: `counts`, else 2**40 (3/8 of the range of a register that wraps)."""
        if spec.counts is not None:
            return spec.counts
        width = self.model.width_bits
        return GARBAGE_HIGH_COUNTS if width is None else min(GARBAGE_HIGH_COUNTS, 3 << (width - 3))

    def read_counter(self) -> tuple[int, float]:
        """(counter counts, rate) as one read of the counter register shows them: `shown()`, unless a
        read-limited fault is on (transient_zero wins over garbage_high); the read is counted against it."""
        counts, rate = self.shown()
        kind = next((k for k in (FaultKind.TRANSIENT_ZERO, FaultKind.GARBAGE_HIGH) if k in self.faults), None)
        if kind is None:
            return counts, rate
        spec = self.faults.get(kind)
        assert spec is not None
        if kind is FaultKind.TRANSIENT_ZERO:
            counts = 0
        else:
            counts += self.glitch_high_counts(spec)
            if self.model.width_bits is not None:
                counts %= 1 << self.model.width_bits
        left = self._reads_left.get(kind, spec.reads) - 1
        if left <= 0:
            self.faults.clear(kind)
            self._reads_left.pop(kind, None)
        else:
            self._reads_left[kind] = left
        return counts, rate

    # --- faults ------------------------------------------------------------------------------------------
    def apply_fault(self, spec: FaultSpec) -> None:
        if spec.fault in ONE_SHOT:
            if spec.fault is FaultKind.COUNTER_RESET:
                self._register_base = -self.produced
            elif spec.fault is FaultKind.REPLACEMENT:
                assert spec.counter_start is not None  # FaultSpec checks it
                self._register_base = spec.counter_start - self.produced
                if self._stuck is not None:  # the new meter shows its own counter, frozen like the rest
                    self._stuck = (self.register_counts, self._stuck[1])
            else:
                width = self.model.width_bits
                if width is None:
                    raise ValueError(f"meter {self.id}: its counter register does not wrap, no rollover")
                self._register_base = (1 << width) - spec.counts_before_wrap - self.produced
            return
        if spec.fault is FaultKind.WASTE and self.weather is not None:
            raise ValueError(f"meter {self.id}: a sensor uses no energy, nothing to waste")
        if spec.fault is FaultKind.STUCK and self._stuck is None:
            self._stuck = (self.register_counts, self.rate)
        if spec.fault in READ_LIMITED:
            self._reads_left[spec.fault] = spec.reads
        self.faults.set(spec)
        if spec.fault is FaultKind.WASTE:
            self._rerate()

    def clear_fault(self, kind: FaultKind | None = None) -> None:
        wasting = FaultKind.WASTE in self.faults
        self.faults.clear(kind)
        if wasting and FaultKind.WASTE not in self.faults:
            self._rerate()
        self._reads_left = {k: n for k, n in self._reads_left.items() if k in self.faults}
        if FaultKind.STUCK not in self.faults:
            self._stuck = None

    # --- ground truth ------------------------------------------------------------------------------
    def truth(self) -> dict[str, Any]:
        m = self.model
        if self.weather is not None:  # a sensor: no counter, its temperature
            return {"map": self.meter.map, "unit_id": self.meter.unit_id, "gateway": self.meter.gateway,
                    "counters": {}, "temperature": {"value": self.temperature_c, "unit": "degC"},
                    "faults": self.faults.as_list()}
        counts, rate = self.shown()
        counter: dict[str, Any] = {
            "value": counts if m.count_size == 1 else counts * m.count_size,
            "unit": m.unit,
            "produced": self.produced if m.count_size == 1 else self.produced * m.count_size,
            "counts": counts,
            "produced_counts": self.produced,
        }
        if m.scale is not None:
            counter["scale"] = {"value": m.scale[0], "unit": m.scale[1]}
        counters = {m.quantity: counter}
        if self.export is not None:
            exported = self.exported if m.count_size == 1 else self.exported * m.count_size
            counters["active_energy_export"] = {"value": exported, "unit": m.unit, "produced": exported,
                                                "counts": self.exported, "produced_counts": self.exported}
        return {
            "map": self.meter.map,
            "unit_id": self.meter.unit_id,
            "gateway": self.meter.gateway,
            "counters": counters,
            "power" if m.rate_unit == "kW" else "rate": {"value": rate, "unit": m.rate_unit},
            "faults": self.faults.as_list(),
        }
