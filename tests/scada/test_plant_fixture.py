"""The SCADA plant fixture never loses a process: starting SCADA again while an earlier one still runs (a test
failed before it stopped it) stops the earlier one first, so nothing outlives the module."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.deploy.harness import System
from tests.scada.conftest import Plant

LISTENER = """
import socket, sys, time
socks = []
for port in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(port))); s.listen(); socks.append(s)
time.sleep(300)
"""


class FakeScadaPlant(Plant):
    """The real fixture's start/stop, with a stand-in that only listens on SCADA's two ports."""

    def argv(self) -> list[str]:
        return [sys.executable, "-c", LISTENER, str(self.modbus_port), str(self.opcua_port)]


def test_starting_scada_again_stops_the_one_still_running(tmp_path: Path) -> None:
    from deploy.services import free_port

    system = System(tmp_path, "mqtt://127.0.0.1:1")  # nothing of it is started
    plant = FakeScadaPlant(system, system.api, free_port(), free_port(), tmp_path)
    try:
        plant.start_scada()
        first = plant.scada
        assert first is not None and first.poll() is None
        plant.start_scada()  # as a later test does after an earlier one failed before stop_scada()
        assert first.poll() is not None, "the earlier SCADA process was left running"
        assert plant.scada is not None and plant.scada.poll() is None
    finally:
        plant.stop_scada()
        system.stop_all()
    assert first.poll() is not None
