"""Sparkplug B payloads of the SCADA figures, built with Eclipse Tahu's Python core and its generated protobuf
classes (package `tahutils`): the node carries the site's figures, one device per area carries the area's and its
meters' figures (`Meters/{meter}/{figure}`). Pure: sequence numbers and times are given by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tahutils.tahu import sparkplug_b as tahu
from tahutils.tahu import sparkplug_b_pb2 as pb

from scada.figures import FIGURES, UNITS, BoundaryKind, Figures, Snapshot

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"
BDSEQ = "bdSeq"
DOUBLE, INT32, UINT32, UINT64, BOOLEAN, STRING = (pb.Double, pb.Int32, pb.UInt32, pb.UInt64, pb.Boolean, pb.String)


def topic(group: str, kind: str, node: str, device: str | None = None) -> str:
    return f"{NAMESPACE}/{group}/{kind}/{node}" + (f"/{device}" if device else "")


def ms(ts: datetime) -> int:
    return round(ts.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class MetricValue:
    name: str
    datatype: int
    value: float | int | bool | None
    ts_ms: int
    unit: str | None = None


def figure_metrics(figs: Figures, prefix: str, at_ms: int, names: Iterable[str] | None = None) -> list[MetricValue]:
    """The metrics of one boundary (all of them, or only `names`), named `{prefix}{figure}`."""
    wanted = set(names) if names is not None else None
    out = []
    for name in FIGURES:
        if wanted is not None and name not in wanted:
            continue
        fig = figs.figures[name]
        out.append(MetricValue(prefix + name, DOUBLE, fig.value, ms(fig.ts) if fig.ts else at_ms, UNITS[name]))
    if wanted is None or "AlertState" in wanted:
        ts = ms(figs.alerts_ts) if figs.alerts_ts else at_ms
        out.append(MetricValue(prefix + "AlertState", INT32, int(figs.alert_state), ts))
        out.append(MetricValue(prefix + "ActiveAlerts", UINT32, figs.active_alerts, ts))
    return out


def node_metrics(snapshot: Snapshot, names: Iterable[str] | None = None) -> list[MetricValue]:
    site = next(f for f in snapshot.items.values() if f.boundary.kind is BoundaryKind.SITE)
    return figure_metrics(site, "", ms(snapshot.at), names)


def devices(snapshot: Snapshot) -> list[str]:
    """Device ids: the areas, in the snapshot's (plant-file) order."""
    return [f.boundary.id for f in snapshot.items.values() if f.boundary.kind is BoundaryKind.AREA]


def device_metrics(snapshot: Snapshot, area: str, changed: set[tuple[str, str]] | None = None) -> list[MetricValue]:
    """An area's metrics and its meters' (`Meters/{id}/...`); with `changed`, only those that changed."""
    at = ms(snapshot.at)
    out: list[MetricValue] = []
    for key, figs in snapshot.items.items():
        b = figs.boundary
        if b.kind is BoundaryKind.AREA and b.id == area:
            prefix = ""
        elif b.kind is BoundaryKind.METER and b.area == area:
            prefix = f"Meters/{b.id}/"
        else:
            continue
        names = None if changed is None else {n for k, n in changed if k == key}
        if names is None or names:
            out += figure_metrics(figs, prefix, at, names)
    return out


def _add(payload: pb.Payload, m: MetricValue, birth: bool) -> None:
    if m.value is None:
        metric = tahu.addNullMetric(payload, m.name, None, m.datatype, m.ts_ms)
    else:
        metric = tahu.addMetric(payload, m.name, None, m.datatype, m.value, m.ts_ms)
    if birth and m.unit:
        metric.properties.keys.append("engUnit")
        prop = metric.properties.values.add()
        prop.type = STRING
        prop.string_value = m.unit


def encode(metrics: Iterable[MetricValue], seq: int | None, at_ms: int, birth: bool = False) -> bytes:
    """One payload; `seq=None` leaves the sequence number out (NDEATH)."""
    payload = pb.Payload()
    payload.timestamp = at_ms
    if seq is not None:
        payload.seq = seq
    for m in metrics:
        _add(payload, m, birth)
    data: bytes = payload.SerializeToString()
    return data


def nbirth(snapshot: Snapshot, seq: int, bd_seq: int, at_ms: int) -> bytes:
    head = [MetricValue(BDSEQ, UINT64, bd_seq, at_ms), MetricValue(REBIRTH, BOOLEAN, False, at_ms)]
    return encode([*head, *node_metrics(snapshot)], seq, at_ms, birth=True)


def ndeath(bd_seq: int, at_ms: int) -> bytes:
    return encode([MetricValue(BDSEQ, UINT64, bd_seq, at_ms)], None, at_ms)


def dbirth(snapshot: Snapshot, area: str, seq: int, at_ms: int) -> bytes:
    return encode(device_metrics(snapshot, area), seq, at_ms, birth=True)


def rebirth_requested(payload: bytes) -> bool:
    """True when an NCMD payload sets Node Control/Rebirth to true."""
    message = pb.Payload()
    message.ParseFromString(payload)
    return any(m.name == REBIRTH and m.boolean_value for m in message.metrics)
