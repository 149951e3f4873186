"""Merging a meter's consecutive, never-published reading messages into one when the spool is full (pure).

Resolution is lost, energy is not: per counter quantity the merged message carries one sample at the time of the
last reading that carried energy, with that reading's counter value, delta = the exact sum of the deltas
(math.fsum), interval_s = the sum of the intervals, the worst quality and every flag. Readings without energy
(bad or clock-refused ones) go; a baseline (`first`) and a `spike` (energy ingest may hold for an engineer) stay
samples of their own, so merging never turns held energy into counted energy. Gauges are thinned to a few samples
per quantity, evenly spread, first and last kept. The merged message keeps the first message's sequence number.

Only messages that were never handed to the publisher may be merged (edge.spool's fence): ingest keys a point by
meter, quantity and sample time, so a merged sample at a time it already stored, with more energy, would conflict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from calc.reading_codec import EdgeSample, decode_edge, encode_reading
from calc.schema import Flag, Quality

GAUGE_KEEP = 4  # samples per gauge quantity in a merged message
_WORST = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}


def merge(payloads: Sequence[bytes]) -> bytes:
    """One message carrying the energy of these messages of one meter, given oldest first."""
    readings = [decode_edge(p) for p in payloads]
    if not readings:
        raise ValueError("nothing to merge")
    meter = readings[0].meter
    if any(r.meter != meter for r in readings):
        raise ValueError("messages of different meters cannot be merged")
    return encode_reading(meter, readings[0].seq, readings[0].agent,
                          merge_samples([s for r in readings for s in r.samples]))


def merge_samples(samples: Sequence[EdgeSample]) -> list[EdgeSample]:
    """The merged samples of one meter's samples in time order (see the module's docstring)."""
    by_quantity: dict[str, list[EdgeSample]] = {}
    for s in samples:
        by_quantity.setdefault(s.quantity, []).append(s)
    out: list[EdgeSample] = []
    for series in by_quantity.values():
        counter = any(s.delta is not None or Flag.FIRST in s.flags for s in series)
        if counter:
            out += _counter(series)
        elif any(s.interval_s is not None for s in series):
            out += _thin_timed(series)
        else:
            out += _thin(series)
    out.sort(key=lambda s: s.ts)  # stable: a poll's samples stay in their order
    return out


def _counter(series: list[EdgeSample]) -> list[EdgeSample]:
    out: list[EdgeSample] = []
    run: list[EdgeSample] = []
    without_energy: EdgeSample | None = None
    for s in series:
        if s.delta is None and Flag.FIRST not in s.flags:
            without_energy = s  # a bad or clock-refused reading: the baseline stayed, nothing to carry
            continue
        if s.delta is None or Flag.SPIKE in s.flags or (run and run[-1].unit != s.unit):
            out += _merged(run)
            run = []
            if s.delta is None or Flag.SPIKE in s.flags:
                out.append(s)
                continue
        run.append(s)
    out += _merged(run)
    if not out and without_energy is not None:
        out.append(without_energy)  # no reading carried energy: keep the last one, it says why
    return out


def _merged(run: list[EdgeSample]) -> list[EdgeSample]:
    if len(run) <= 1:
        return run
    last = run[-1]
    intervals = [s.interval_s for s in run if s.interval_s is not None]
    quality = max((s.quality for s in run), key=_WORST.__getitem__)
    reasons = list(dict.fromkeys(s.reason for s in run if s.reason))
    flags = tuple(dict.fromkeys(f for s in run for f in s.flags))
    return [EdgeSample(last.ts, last.quantity, last.value, last.unit,
                       math.fsum(s.delta for s in run if s.delta is not None),
                       math.fsum(intervals) if intervals else None, quality,
                       "; ".join(reasons)[:200] if reasons else None, flags)]


def _thin(series: list[EdgeSample]) -> list[EdgeSample]:
    n = len(series)
    if n <= GAUGE_KEEP:
        return series
    picks = sorted({round(i * (n - 1) / (GAUGE_KEEP - 1)) for i in range(GAUGE_KEEP)})
    return [series[i] for i in picks]


def _thin_timed(series: list[EdgeSample]) -> list[EdgeSample]:
    """A variable's gauge (samples carry the time they stand for): GAUGE_KEEP samples, each the time-weighted mean
    of its run with the run's summed interval, so that the mean over any period that holds whole runs is kept."""
    n = len(series)
    if n <= GAUGE_KEEP:
        return series
    ends = sorted({round((i + 1) * n / GAUGE_KEEP) for i in range(GAUGE_KEEP)})
    out: list[EdgeSample] = []
    lo = 0
    for hi in ends:
        run, lo = series[lo:hi], hi
        if not run:
            continue
        timed = [s for s in run if s.interval_s is not None and s.quality != Quality.BAD]
        weight = math.fsum(s.interval_s for s in timed if s.interval_s is not None)
        last = run[-1]
        if weight <= 0:
            out.append(last)
            continue
        mean = math.fsum(s.value * s.interval_s for s in timed if s.interval_s is not None) / weight
        quality = max((s.quality for s in timed), key=_WORST.__getitem__)
        flags = tuple(dict.fromkeys(f for s in timed for f in s.flags))
        reasons = list(dict.fromkeys(s.reason for s in timed if s.reason))
        out.append(EdgeSample(last.ts, last.quantity, mean, timed[-1].unit, None, weight, quality,
                              "; ".join(reasons)[:200] if reasons else None, flags))
    return out
