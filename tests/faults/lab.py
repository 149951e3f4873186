"""A running system shared by several scenarios: a broker of its own, one site's processes, the check window and
a tap on the broker. A scenario that fails (or errs) taints it, and the next scenario gets a fresh one, so one
failure never shows up as the next scenario's loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults import report
from tests.faults.procs import PersistentMosquitto
from tests.faults.system import SiteSystem, Tap, Window, assert_exact


@dataclass
class Rig:
    broker: PersistentMosquitto
    system: SiteSystem
    window: Window
    tap: Tap
    extras: list[Callable[[], None]] = field(default_factory=list)  # more things to stop

    def check(self, label: str, confirm: Callable[[], None] | None = None) -> None:
        """The quiescent-point check; its outcome goes to the summary table either way."""
        checks = self.window.settle(label, confirm)
        report.record(label, checks)
        assert_exact(label, checks)

    def logs(self) -> str:
        return f"--- mosquitto log (tail) ---\n{self.broker.log()}\n{self.system.logs()}"

    def close(self) -> None:
        self.tap.close()
        for child in self.system.children.values():
            child.resume()
        self.system.stop_all()
        for stop in self.extras:
            stop()
        self.broker.stop()


# (folder, broker, cleanups) -> the site; whatever else it starts (influxd, a proxy) it stops via `cleanups`
Factory = Callable[[Path, PersistentMosquitto, list[Callable[[], None]]], SiteSystem]


class Lab:
    """Builds a Rig on demand (fresh after a failure); `scenario(label)` is the context a scenario runs in."""

    def __init__(self, folder: Path, factory: Factory) -> None:
        self.folder = folder
        self.factory = factory
        self.rig: Rig | None = None
        self.tainted = False
        self.built = 0

    def _build(self) -> Rig:
        self.built += 1
        where = self.folder / f"rig-{self.built}"
        broker = PersistentMosquitto(where / "mosquitto")
        broker.start()
        system: SiteSystem | None = None
        cleanups: list[Callable[[], None]] = []
        try:
            system = self.factory(where, broker, cleanups)
            system.start_all()
            system.pause()  # started paused; now idle too (gauges at zero)
            window = Window(system)
            window.baseline()
            tap = Tap(broker.url, f"carbonwatch/v1/{system.site}/+/+/reading")
        except BaseException:
            if system is not None:
                print(system.logs())
                system.stop_all()
            for cleanup in cleanups:
                cleanup()
            broker.stop()
            raise
        return Rig(broker, system, window, tap, cleanups)

    @contextmanager
    def scenario(self, label: str) -> Iterator[Rig]:
        if self.rig is not None and self.tainted:
            self.rig.close()
            self.rig = None
        self.tainted = False
        try:
            if self.rig is None:
                self.rig = self._build()
            self.rig.window.ready()
            self.rig.system.resume()
            yield self.rig
        except BaseException as exc:
            self.tainted = True
            report.record(label, error=f"{type(exc).__name__}: {exc}")
            if self.rig is not None:
                print(self.rig.logs())
            raise

    def close(self) -> None:
        if self.rig is not None:
            self.rig.close()
            self.rig = None
