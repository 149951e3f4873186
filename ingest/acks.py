"""The end-to-end acknowledgements ingest owes edge agents: collected per agent as batches become durable, sent
on `carbonwatch/v1/{site}/edge/{agent}/ack` at most every `interval_s` (calc.acks is the payload).

Only messages whose outcome is durable (points stored, or dead-lettered, duplicates included) are added, and
only by the worker thread after the store's write returned. A lost ack costs a resend (the edge sends again
what stays unacknowledged; writes are idempotent), never a reading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from calc import topics
from calc.acks import encode_acks
from ingest.points import Converted

log = logging.getLogger(__name__)


class AckBook:
    """(meter, seq) per agent made durable since the last `take`."""

    def __init__(self, site: str, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.site = site
        self.interval_s = interval_s
        self._clock = clock
        self._pending: dict[str, dict[str, set[int]]] = {}  # agent -> meter -> seqs
        self._topics: dict[str, str | None] = {}  # agent -> its ack topic (None: a name no topic can carry)
        self._last = clock()

    def add(self, outcomes: Iterable[Converted]) -> int:
        """Record the messages of a durable batch; returns how many carry an agent to acknowledge."""
        n = 0
        for out in outcomes:
            if out.ack is None:
                continue
            agent, meter, seq = out.ack
            self._pending.setdefault(agent, {}).setdefault(meter, set()).add(seq)
            n += 1
        return n

    @property
    def waiting(self) -> int:
        return sum(len(s) for meters in self._pending.values() for s in meters.values())

    def due(self) -> bool:
        return bool(self._pending) and self._clock() - self._last >= self.interval_s

    def take(self) -> list[tuple[str, bytes, int]]:
        """(topic, payload, messages acknowledged) per agent, and forget them."""
        self._last = self._clock()
        pending, self._pending = self._pending, {}
        out = []
        for agent, meters in pending.items():
            topic = self._topic(agent)
            if topic is None:
                continue
            try:
                payload = encode_acks(agent, meters)
            except ValueError as exc:  # a name the ack contract cannot carry: nothing to tell that sender
                log.warning("cannot acknowledge agent %r: %s", agent[:128], exc)
                continue
            out.append((topic, payload, sum(len(s) for s in meters.values())))
        return out

    def _topic(self, agent: str) -> str | None:
        if agent not in self._topics:
            if len(self._topics) >= 10_000:  # names come from payloads: keep the cache bounded
                self._topics.clear()
            try:
                self._topics[agent] = topics.edge_ack(self.site, agent)
            except topics.TopicError:
                log.warning("agent name %r cannot be a topic level: its messages are stored but not acknowledged",
                            agent[:128])
                self._topics[agent] = None
        return self._topics[agent]
