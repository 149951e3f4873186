"""The edge's register-map templates, derived from the device declarations in calc/devices (one per device).

A meter names a template with `map = "..."`; its points are the declaration's polled points as edge Points
(the config model the drivers read by). Addresses are protocol addresses; an OPC UA point's node id is
`nsu=<namespace>;s={meter}.<variable>`, with `{meter}` replaced by the meter's id.
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint
from calc.devices import DEVICE_MAPS, device_map
from edge.points import Point


def edge_point(declared: DevicePoint, owner: DeviceMap) -> Point:
    """The edge's Point for one declared point of a map."""
    if owner.protocol == "opcua":
        return Point(quantity=declared.quantity, unit=declared.unit, kind=declared.kind,
                     node=f"nsu={owner.namespace};s={{meter}}.{declared.node}")
    return Point(quantity=declared.quantity, unit=declared.unit, kind=declared.kind, address=declared.address,
                 function=owner.function, type=declared.type, word_order=declared.word_order,
                 byte_order=declared.byte_order, counter_width=declared.counter_width,
                 not_available=declared.not_available)


def _points(owner: DeviceMap) -> tuple[Point, ...]:
    return tuple(edge_point(p, owner) for p in owner.points if p.polled)


TEMPLATES: dict[str, tuple[Point, ...]] = {name: _points(m) for name, m in DEVICE_MAPS.items()}
#: templates whose scale is the meter's pulse weight (`pulse_m3`)
PULSE_TEMPLATES = frozenset(name for name, m in DEVICE_MAPS.items() if m.pulse_scaled)
SCHNEIDER_PM5000 = TEMPLATES["schneider_pm5000"]
SDM630 = TEMPLATES["eastron_sdm630"]
ADAM6051_COUNTER = TEMPLATES["adam6051_counter"]


def template(name: str) -> tuple[Point, ...]:
    """The points of a built-in map; KeyError lists the known names."""
    device_map(name)
    return TEMPLATES[name]
