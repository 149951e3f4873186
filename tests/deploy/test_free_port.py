"""deploy.services.free_port: ports outside the kernel's ephemeral range, never handed out twice, bindable."""

from __future__ import annotations

import socket

from deploy.services import _ephemeral_low, free_port


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    low = _ephemeral_low()
    assert all(port < low for port in ports), (low, ports)
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
