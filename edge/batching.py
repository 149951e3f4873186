"""Turns polls into reading messages: per meter, up to `max_polls` polls per message and none waiting longer
than `max_age_s`; owns the meters' counter baselines and sequence numbers.

Two states per meter: `committed` (what the spool holds: the baseline after the last kept message) and
`tentative` (after the polls already turned into samples). A message that the spool refuses puts the meter
back on its committed state and drops its pending polls, so the next reading's delta spans the whole gap:
time resolution is lost, energy is not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from calc.reading_codec import EdgeSample, encode_reading
from edge.readings import MeterState, MeterTracker, Poll
from edge.spool import Outgoing


@dataclass
class _Pending:
    since: float  # clock time of the first poll waiting
    samples: list[EdgeSample] = field(default_factory=list)
    polls: int = 0


class Batcher:
    """Polls in, messages out; `settle` is told which messages the spool kept."""

    def __init__(self, trackers: dict[str, MeterTracker], topics: dict[str, str], agent: str,
                 committed: dict[str, MeterState], seqs: dict[str, int], max_polls: int = 1,
                 max_age_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.trackers = trackers
        self.topics = topics
        self.agent = agent
        self.committed = committed
        self.seqs = seqs  # next sequence number per meter, as committed
        self.max_polls = max_polls
        self.max_age_s = max_age_s
        self._clock = clock
        self._tentative: dict[str, MeterState] = {}
        self._next_seq: dict[str, int] = {}
        self._pending: dict[str, _Pending] = {}

    def add(self, poll: Poll) -> None:
        meter = poll.meter_id
        state = self._tentative.get(meter, self.committed.get(meter, {}))
        samples, self._tentative[meter] = self.trackers[meter].track(poll, state)
        pending = self._pending.get(meter)
        if pending is None:
            pending = self._pending[meter] = _Pending(self._clock())
        pending.samples += samples
        pending.polls += 1

    def due(self, force: bool = False) -> list[Outgoing]:
        """Messages for meters whose batch is full or old enough (all of them when forced)."""
        now = self._clock()
        out = []
        for meter, pending in list(self._pending.items()):
            if force or pending.polls >= self.max_polls or now - pending.since >= self.max_age_s:
                del self._pending[meter]
                if not pending.samples:
                    # every reading deferred (a counter's anomalous reading awaits the next): no message; the
                    # tentative state goes with the meter's next one
                    continue
                seq = self._next_seq.get(meter, self.seqs.get(meter, 0))
                self._next_seq[meter] = seq + 1
                payload = encode_reading(meter, seq, self.agent, pending.samples)
                out.append(Outgoing(meter, self.topics[meter], payload, seq, self._tentative[meter]))
        return out

    def settle(self, out: Outgoing, kept: bool) -> None:
        meter = out.meter
        if kept:
            self.committed[meter] = out.state
            self.seqs[meter] = out.seq + 1
            return
        self._tentative[meter] = self.committed.get(meter, {})
        self._next_seq[meter] = self.seqs.get(meter, 0)
        self._pending.pop(meter, None)

    @property
    def waiting(self) -> int:
        return sum(p.polls for p in self._pending.values())
