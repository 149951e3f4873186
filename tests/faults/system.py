"""One site of the fault suite as real processes: the simulated plant, the edge agent, one or more ingest workers
and the API, around a broker and a store that may be shared with another site.

Each process gets a plant file of its own (ingest workers differ in client id, buffer and metrics files, and
may write to different stores). `Window` is the quiescent-point check: pause the plant, note
the truth, wait until the store has caught up, compare per meter.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from api.auth import write_key
from deploy.services import free_port
from ingest.store import open_reader
from tests.deploy.harness import wait_until
from tests.faults import plant as plantfile
from tests.faults.ledger import Expectation, MeterCheck
from tests.faults.procs import Child

# deadline for the store to catch up after a fault (acks resend with backoff); the variable is for trying things out
SETTLE_S = float(os.environ.get("CARBONWATCH_FAULTS_SETTLE_S", "180"))


class Counts(Protocol):
    """Where the counted energy is read: the API's balance, or the store's totals directly."""

    def counted(self, start: datetime, end: datetime) -> dict[str, tuple[float, str, float]]: ...

    def last_seen(self) -> dict[str, datetime | None]: ...


class SiteSystem:
    """The processes of one site; `store` is its [store] table (shared by ingest and the API)."""

    def __init__(self, workdir: Path, site: str, seed: int, mqtt_url: str, store: Mapping[str, Any],
                 workers: tuple[str, ...] = ("ingest",), share_group: str | None = None,
                 api_store: Mapping[str, Any] | None = None,
                 worker_stores: Mapping[str, Mapping[str, Any]] | None = None, with_api: bool = True,
                 edge_extra: Mapping[str, Any] | None = None, ingest_extra: Mapping[str, Any] | None = None
                 ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.site = site
        self.mqtt_url = mqtt_url
        self.data = plantfile.plant_data(site, seed, mqtt_url, workdir)
        self.store = dict(store)
        self.api_store = dict(api_store or store)
        self.worker_stores = {name: dict(table) for name, table in (worker_stores or {}).items()}
        self.share_group = share_group
        self.edge_settings = {**self.data["edge"], **(edge_extra or {})}
        self.ingest_extra = dict(ingest_extra or {})
        self.envs: dict[str, dict[str, str]] = {}  # a child's environment at every start (e.g. the edge's libfaketime)
        self.clock_offset_s = 0.0  # the edge's wall clock against real time, where a scenario sets it
        self.api_port = free_port()
        self.children: dict[str, Child] = {}
        self.attached: dict[str, Any] = {}  # what a scenario needs besides the processes (influxd, a proxy)
        self.expect = Expectation(self.data)
        self.control = httpx.Client(base_url=self.data["simulator"]["control_url"], timeout=30)
        gateways = {g["id"]: g["port"] for g in self.data["gateways"]}
        control_port = int(self.data["simulator"]["control_url"].rsplit(":", 1)[1])
        self._add("simulate", ["simulate", "--paused", "--plant"], ports=(control_port, *gateways.values()))
        # WARNING: asyncua logs every OPC UA notification at INFO
        self._add("edge", ["edge", "--log-level", "WARNING", "--config"])
        for name in workers:
            self._add(name, ["ingest", "--config"])
        self.workers = workers
        self.api: httpx.Client | None = None
        if with_api:
            key = write_key(workdir / "keys.toml", "fault-suite", "viewer")
            self._add("api", ["api", "--config"], ports=(self.api_port,))
            self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=60,
                                    headers={"Authorization": f"Bearer {key}"})
        self.write_plants()

    def _add(self, name: str, args: list[str], ports: tuple[int, ...] = ()) -> None:
        """A service reading its own plant file (the last argument)."""
        self.children[name] = Child.carbonwatch(name, [*args, str(self.plant_path(name))], self.workdir, ports=ports)

    def plant_path(self, name: str) -> Path:
        return self.workdir / f"plant-{name}.toml"

    # --- plant files -------------------------------------------------------------------------------------------
    def plant_for(self, name: str) -> dict[str, Any]:
        data = copy.deepcopy(self.data)
        data["edge"] = dict(self.edge_settings)
        if name in self.workers:
            data["store"] = dict(self.worker_stores.get(name, self.store))
            data["ingest"] = {"client_id": f"{self.site}-{name}-{uuid.uuid4().hex[:8]}",
                              "buffer_path": str(self.workdir / f"{name}-buffer.sqlite"),
                              "metrics_path": str(self.metrics_path(name)), **self.ingest_extra}
            if self.share_group:
                data["ingest"]["share_group"] = self.share_group
        if name == "api":
            data["store"] = dict(self.api_store)
            data["api"] = {"host": "127.0.0.1", "port": self.api_port, "keys_file": str(self.workdir / "keys.toml"),
                           "db_path": str(self.workdir / "api.sqlite"), "live": False}
        return data

    def write_plants(self) -> None:
        for name in self.children:
            plantfile.write(self.plant_path(name), self.plant_for(name))

    def metrics_path(self, worker: str) -> Path:
        return self.workdir / f"{worker}-metrics.json"

    def metrics(self, worker: str) -> dict[str, Any]:
        try:
            body: dict[str, Any] = json.loads(self.metrics_path(worker).read_text())
        except (OSError, ValueError):
            return {}
        return body

    @property
    def state_dir(self) -> Path:
        return Path(self.edge_settings["state_dir"])

    # --- processes ---------------------------------------------------------------------------------------------
    def start(self, name: str, env: Mapping[str, str] | None = None) -> None:
        child = self.children[name]
        child.env = dict(env if env is not None else self.envs.get(name, {}))
        if name in self.workers:
            # a restarted worker reads the same plant file: same client id, so it resumes its persistent session
            self.metrics_path(name).unlink(missing_ok=True)
            child.start()
            wait_until(f"{self.site}/{name} subscribed (its metrics file)", lambda: self.metrics_path(name).exists()
                       or not child.alive, 60)
            assert child.alive, f"{name} exited at start:\n{child.log()}"
        else:
            child.start()

    def start_all(self) -> None:
        for name in self.children:
            self.start(name)

    def stop_all(self) -> None:
        for name in ("edge", "simulate", *self.workers, "api"):
            if name in self.children:
                self.children[name].stop()
        self.control.close()
        if self.api is not None:
            self.api.close()

    def logs(self) -> str:
        return "\n".join(f"--- {self.site}/{name} log (tail) ---\n{child.log()}"
                         for name, child in self.children.items())

    def now(self) -> datetime:
        """The edge's time (its samples' time): real time, or real time + the offset its wall clock started with."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)

    # --- the simulated plant ---------------------------------------------------------------------------------------
    def truth(self) -> dict[str, Any]:
        body: dict[str, Any] = self.control.get("/truth").raise_for_status().json()
        return body

    def pause(self) -> dict[str, Any]:
        """Stop the plant idle: its gauges read zero, so a standstill is a quiet line to the edge, not a stuck
        counter (whose catch-up after the resume would be spread back over the pause, across a window's start)."""
        body: dict[str, Any] = self.control.post("/pause", params={"idle": "true"}).raise_for_status().json()
        return body

    def resume(self) -> None:
        self.control.post("/resume").raise_for_status()

    # --- counted, through the API ---------------------------------------------------------------------------------
    def counted(self, start: datetime, end: datetime) -> dict[str, tuple[float, str, float]]:
        assert self.api is not None
        body = self.api.get("/v1/balance", params={"from": start.isoformat(), "to": end.isoformat()})
        body.raise_for_status()
        out: dict[str, tuple[float, str, float]] = {}
        for m in body.json()["meters"]:
            energy, unit, co2e = out.get(m["meter"], (0.0, m["energy_unit"], 0.0))
            assert unit == m["energy_unit"], m
            out[m["meter"]] = (energy + m["energy"], unit, co2e + m["co2e_kg"])
        return out

    def held(self) -> dict[str, tuple[float, str]]:
        """Open held energy per meter (energy, its unit), from the store (ingest.store's HeldReader)."""
        reader = open_reader({**self.data, "store": self.api_store}, self.workdir)
        try:
            return {t.meter: (t.energy, t.energy_unit) for t in reader.held_totals(self.site)}  # type: ignore[attr-defined]
        finally:
            reader.close()

    def last_seen(self) -> dict[str, datetime | None]:
        assert self.api is not None
        body = self.api.get("/v1/meters").raise_for_status().json()
        return {m["meter"]: datetime.fromisoformat(m["last_sample_ts"]) if m["last_sample_ts"] else None
                for m in body["meters"]}


class StoreCounts:
    """Counted energy straight from the store's totals (ingest's reader), for a site that has no API here."""

    def __init__(self, data: Mapping[str, Any], store: Mapping[str, Any], workdir: Path) -> None:
        self.site = str(data["site"]["id"])
        self.reader = open_reader({**data, "store": dict(store)}, workdir)

    def counted(self, start: datetime, end: datetime) -> dict[str, tuple[float, str, float]]:
        out: dict[str, tuple[float, str, float]] = {}
        for t in self.reader.totals(self.site, start, end):
            energy, unit, co2e = out.get(t.meter, (0.0, t.energy_unit, 0.0))
            assert unit == t.energy_unit, t
            out[t.meter] = (energy + t.energy, unit, co2e + t.co2e_kg)
        return out

    def last_seen(self) -> dict[str, datetime | None]:
        return {s.meter: s.last_ts for s in self.reader.meter_summaries(self.site)}

    def close(self) -> None:
        self.reader.close()


class Window:
    """The energy between two quiescent points of one site: starts paused, `settle()` pauses and compares."""

    def __init__(self, system: SiteSystem, counts: Counts | None = None) -> None:
        self.system = system
        self.counts: Counts = counts or system
        self.start = system.now() - timedelta(minutes=1)
        self.before: dict[str, Any] = {}
        self.marks: list[datetime] = []
        self.horizon = timedelta(hours=1)  # how far past now the window reaches (samples stamped ahead)
        self.held_before: dict[str, tuple[float, str]] | None = None  # when counted + held is checked

    def count_held(self) -> None:
        """From now on the check is counted + held = truth (the held energy that came in each window)."""
        self.held_before = self.system.held()

    def held_since(self) -> dict[str, tuple[float, str]] | None:
        if self.held_before is None:
            return None
        out = {}
        for meter, (energy, unit) in self.system.held().items():
            e0, u0 = self.held_before.get(meter, (0.0, unit))
            assert u0 == unit, (meter, u0, unit)
            out[meter] = (energy - e0, unit)
        return out

    def mark(self) -> None:
        """Split the window here (call while energy flows): the check then adds up the sub-windows, so the
        store's totals are also taken from raw points cut mid-minute, not only from its minute rollups."""
        self.marks.append(self.system.now())

    def ready(self) -> None:
        """Before the plant resumes: wait until every meter has a reading stored that is stamped after the window's
        start. The edge stamps a poll when it starts it; one answered late (a loaded machine) reads what the plant
        made after a resume that came in between, stamped before the start, i.e. in the window already checked."""
        wait_until(f"{self.system.site}: a reading of every meter stamped after the window's start", lambda: all(
            (ts := self.counts.last_seen().get(mid)) is not None and ts > self.start
            for mid in self.system.expect.maps), 120, 0.2)

    def counted(self, end: datetime) -> dict[str, tuple[float, str, float]]:
        total: dict[str, tuple[float, str, float]] = {}
        bounds = [self.start, *self.marks, end]
        for lo, hi in itertools.pairwise(bounds):
            for meter, (energy, unit, co2e) in self.counts.counted(lo, hi).items():
                e0, u0, c0 = total.get(meter, (0.0, unit, 0.0))
                assert u0 == unit, (meter, u0, unit)
                total[meter] = (e0 + energy, unit, c0 + co2e)
        return total

    def baseline(self) -> None:
        """With the plant paused since it started: every meter's first good reading (its baseline) stored. (An OPC
        UA meter reads bad until the edge's subscription has its first values: that is no baseline.)"""
        meters = tuple(self.system.expect.maps)
        tap = Tap(self.system.mqtt_url, f"carbonwatch/v1/{self.system.site}/+/+/reading")
        try:
            tap.watch(*meters)

            def good(meter: str) -> datetime | None:
                return max((s["ts"] for s in tap.samples(meter) if s.get("quality") == "good"), default=None)

            wait_until(f"{self.system.site}: a good reading of every meter sent", lambda: all(
                good(mid) for mid in meters), 120, 0.5)
            sent = {mid: good(mid) for mid in meters}
        finally:
            tap.close()
        wait_until(f"{self.system.site}: a good reading of every meter stored", lambda: all(
            (ts := self.counts.last_seen().get(mid)) is not None and (at := sent[mid]) is not None and ts >= at
            for mid in meters), 120, 0.5)
        self.before = self.system.truth()
        assert self.before["paused"], "the plant must be paused while the baseline is taken"

    def settle(self, what: str, confirm: Callable[[], None] | None = None) -> list[MeterCheck]:
        """Pause, then wait until every meter's counted (+ held) energy since the window's start equals the truth
        (failing at once on a double count, which cannot go away), and until a reading taken after that is stored
        (or `confirm` has waited for whatever proves that nothing more is on its way)."""
        self.system.pause()
        after = self.system.truth()
        end = self.system.now() + self.horizon

        def compare() -> list[MeterCheck]:
            counted = self.counted(end)
            return self.system.expect.check(self.before, after, counted, self.start, end, self.held_since())

        checks = compare()
        deadline = time.monotonic() + SETTLE_S
        while not all(c.exact for c in checks) and not any(c.double for c in checks) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
            checks = compare()
        if all(c.exact for c in checks):
            caught_up = self.system.now()
            if confirm is not None:
                confirm()
            else:
                wait_until(f"{self.system.site}: a reading of every meter stored after the balance matched",
                           lambda: all((ts := self.counts.last_seen().get(mid)) is not None and ts > caught_up
                                       for mid in self.system.expect.maps), 120, 0.5)
            checks = compare()  # and nothing came on top of it meanwhile
        self.start, self.before, self.marks = self.system.now(), after, []
        if self.held_before is not None:
            self.held_before = self.system.held()
        return checks


def assert_exact(what: str, checks: list[MeterCheck]) -> None:
    bad = [c for c in checks if not c.exact]
    assert not bad, f"{what}: {len(bad)} of {len(checks)} meters not exact:\n" + "\n".join(c.line() for c in bad)


class Tap:
    """A plain MQTT subscriber counting what passes on some topics (QoS 0, reconnects by itself)."""

    def __init__(self, url: str, topic: str) -> None:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self.count = 0
        self.last: dict[str, bytes] = {}  # topic -> latest payload
        self.watched: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}  # meter -> (ts, quantity) -> sample
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fault-tap-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=0)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async(host, int(port))
        self.client.loop_start()

    def watch(self, *meters: str) -> None:
        """Keep every counter sample of these meters from now on (resends counted once)."""
        for meter in meters:
            self.watched.setdefault(meter, {})

    def samples(self, meter: str) -> list[dict[str, Any]]:
        """The watched meter's counter samples seen so far, in time order (`ts` parsed)."""
        return sorted(list(self.watched[meter].values()), key=lambda s: s["ts"])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.last[msg.topic] = bytes(msg.payload)
        meter = msg.topic.split("/")[-2]
        if meter in self.watched:
            try:
                body = json.loads(msg.payload)
            except ValueError:
                body = {}
            for sample in body.get("samples", ()) if isinstance(body, dict) else ():
                if isinstance(sample, dict) and "delta" in sample and "ts" in sample:
                    sample["ts"] = datetime.fromisoformat(str(sample["ts"]).replace("Z", "+00:00"))
                    self.watched[meter][(sample["ts"].isoformat(), str(sample.get("quantity")))] = sample
        self.count += 1

    def wait_for(self, what: str, more: int, timeout_s: float = 120.0) -> None:
        """Until `more` further messages have passed."""
        target = self.count + more
        wait_until(f"{what} ({more} more messages on the broker)", lambda: self.count >= target, timeout_s, 0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def logs_on_failure(*sources: Callable[[], str]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for source in sources:
            print(source())
        raise
