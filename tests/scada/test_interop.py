"""Independent clients read carbonwatch's SCADA servers on a running plant and get the API's figures:
Debian's mbpoll (Modbus), node-opcua (OPC UA, from npm) and a Sparkplug host decoding with Eclipse Tahu's
JavaScript `sparkplug-payload` (the edge node encodes with the Python protobuf classes).

Needs `npm ci --prefix tests/scada/node` (node-opcua 2.182.2, sparkplug-payload 1.0.3) and mbpoll.
The tests run in file order on one plant; the Sparkplug test stops and restarts the SCADA process, so it is last.
"""

from __future__ import annotations

import base64
import json
import math
import re
import signal
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.deploy.harness import wait_until
from tests.scada.conftest import NAMESPACE, NODE_DIR, OPCUA_PASSWORD, OPCUA_USER, Plant, _stored_after, node

pytestmark = pytest.mark.integration

BOUNDARIES = [("site", None), ("area", "pressing"), ("area", "painting"), ("meter", "press-1"),
              ("meter", "press-2"), ("meter", "paint-oven")]   # the register map's block order for this plant
FIGURES = ("CO2eRate", "TodayCO2e", "MonthCO2e", "TodayNetBalance", "MonthNetBalance", "AllowanceRemaining",
           "TodayKgce", "MonthKgce", "TodayIntensity", "TodayKgceIntensity")
EU = {"kg": (4933453, "kg"), "kgce": (4933453, "kgce"), "kg/unit": (-1, "kg/unit"), "kgce/unit": (-1, "kgce/unit")}
UNIT = {"TodayKgce": "kgce", "MonthKgce": "kgce", "TodayIntensity": "kg/unit", "TodayKgceIntensity": "kgce/unit"}


def api_figures(p: Plant, kind: str, target: str | None) -> dict[str, float | None]:
    """What the API says for a boundary: live CO2e rate, today's and this month's CO2e, net balances, allowance
    remaining, kgce and intensity (this plant declares no production counter: none)."""
    where = {kind: target} if target else {}
    today, month = p.api_balance("today", **where), p.api_balance("month", **where)
    allowance = today["allowance"]
    rows = [i for i in today["intensity"] if i["level"] == kind and (target is None or i["name"] == target)]
    per_unit = rows[0] if rows and kind != "meter" else {}
    return {"TodayKgce": today["energy_kgce"], "MonthKgce": month["energy_kgce"],
            "TodayIntensity": per_unit.get("co2e_kg_per_unit"), "TodayKgceIntensity": per_unit.get("kgce_per_unit"),
            "CO2eRate": today["rate_kg_per_h"],
            "TodayCO2e": today["co2e_kg"], "MonthCO2e": month["co2e_kg"], "TodayNetBalance": today["net_co2e_kg"],
            "MonthNetBalance": month["net_co2e_kg"],
            "AllowanceRemaining": allowance["remaining_kg"] if allowance else None,
            "offsets_today": today["offsets_kg"]}


def run(argv: list[str], timeout_s: float = 90, stdin: str | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, input=stdin, check=False)
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}: {proc.stderr} {proc.stdout}"
    return proc.stdout


def last_json(stdout: str) -> Any:
    return json.loads([line for line in stdout.splitlines() if line.startswith(("{", "["))][-1])


# ---- Modbus: mbpoll -----------------------------------------------------------------------------------------

def mbpoll(p: Plant, kind: str, address: int, count: int) -> list[float]:
    out = run(["mbpoll", "-m", "tcp", "-p", str(p.modbus_port), "-a", "1", "-t", kind, "-B", "-0", "-r",
               str(address), "-c", str(count), "-1", "127.0.0.1"], 30)
    values = [float(v) for v in re.findall(r"^\[\d+\]:\s+(\S+)", out, re.MULTILINE)]
    assert len(values) == count, out
    return values


def test_mbpoll_reads_the_register_map_and_it_equals_the_api(plant: Plant) -> None:
    header = mbpoll(plant, "3", 0, 10)
    assert header[:4] == [1, len(BOUNDARIES), 32, 100]          # version, blocks, block size, first block
    assert header[8:10] == [2, 3]                               # areas, meters
    site_api = None
    for i, (kind, target) in enumerate(BOUNDARIES):
        base = 100 + 32 * i
        floats = dict(zip(FIGURES, mbpoll(plant, "3:float", base, 6) + mbpoll(plant, "3:float", base + 22, 4),
                          strict=True))
        words = [int(w) for w in mbpoll(plant, "3", base + 12, 10)]
        api = api_figures(plant, kind, target)
        site_api = site_api or api
        for name in FIGURES:
            expected = api[name]
            if expected is None:
                assert math.isnan(floats[name]), (kind, target, name, floats[name])
            else:   # float32 on the wire, printed by mbpoll with 6 significant digits
                assert floats[name] == pytest.approx(expected, rel=2e-6, abs=1e-3), (kind, target, name)
        today_counter, month_counter = words[0] << 16 | words[1], words[2] << 16 | words[3]
        assert abs(today_counter - math.floor(api["TodayCO2e"] * 10)) <= 1, (kind, target)   # type: ignore[operator]
        assert abs(month_counter - math.floor(api["MonthCO2e"] * 10)) <= 1, (kind, target)   # type: ignore[operator]
        scope = "site" if kind == "site" else kind
        assert (words[4], words[5]) == plant.open_alert_state(scope, target or "e2e"), (kind, target)
        assert words[8] << 16 | words[9] > 0, "source time of the figures"
    assert site_api is not None
    assert site_api["TodayCO2e"] > 0 and site_api["offsets_today"] > 0, "the comparison would prove nothing"
    assert site_api["CO2eRate"] > 0, "the rate comparison would prove nothing"
    assert site_api["TodayNetBalance"] < site_api["TodayCO2e"]


# ---- OPC UA: node-opcua -------------------------------------------------------------------------------------

def opcua(p: Plant, *extra: str, timeout_s: float = 120) -> Any:
    endpoint = f"opc.tcp://127.0.0.1:{p.opcua_port}/carbonwatch"
    return last_json(run([node(), str(NODE_DIR / "check_opcua.js"), endpoint, NAMESPACE, "--pki",
                          str(p.workdir / "node-pki"), *extra], timeout_s))


def _find(tree: dict[str, Any], kind: str, target: str | None) -> dict[str, Any]:
    site = tree["children"]["e2e"]
    if kind == "site":
        return site
    if kind == "area":
        return site["children"][target]
    area = "painting" if target == "paint-oven" else "pressing"
    return site["children"][area]["children"][target]


def test_node_opcua_browses_and_reads_the_apis_values(plant: Plant) -> None:
    seen = opcua(plant, "--mode", "SignAndEncrypt", "--user", OPCUA_USER, "--password", OPCUA_PASSWORD,
                 "--subscribe-ms", "500")
    tree = seen["tree"]
    assert set(tree["children"]["e2e"]["children"]) == {"pressing", "painting"}
    for kind, target in BOUNDARIES:
        variables = _find(tree, kind, target)["variables"]
        assert set(variables) == {*FIGURES, "AlertState", "ActiveAlerts"}
        api = api_figures(plant, kind, target)
        for name in FIGURES:
            v = variables[name]
            if api[name] is None:
                assert v["status"] == "BadNoData" and v["value"] in (None, "NaN"), (kind, target, name, v)
                continue
            assert v["status"] == "Good", (kind, target, name, v)
            assert v["value"] == pytest.approx(api[name], rel=1e-12, abs=1e-9), (kind, target, name)
            assert v["sourceTimestamp"] is not None
            if name != "CO2eRate":   # UN/CEFACT KGM; the per-unit figures have no code (-1)
                unit_id, shown = EU[UNIT.get(name, "kg")]
                assert v["eu"] == {"unitId": unit_id, "displayName": shown,
                                   "namespaceUri": "http://www.opcfoundation.org/UA/units/un/cefact"}
        assert variables["CO2eRate"]["eu"]["unitId"] == (ord("E") << 16 | ord("9") << 8 | ord("3"))
        scope = "site" if kind == "site" else kind
        assert (variables["AlertState"]["value"], variables["ActiveAlerts"]["value"]) == \
            plant.open_alert_state(scope, target or "e2e")
    assert _find(tree, "area", "pressing")["variables"]["AlertState"]["value"] in (1, 2) or \
        plant.open_alert_state("area", "pressing") == (0, 0)


def test_node_opcua_subscription_sees_the_figures_move(plant: Plant) -> None:
    argv = [node(), str(NODE_DIR / "check_opcua.js"), f"opc.tcp://127.0.0.1:{plant.opcua_port}/carbonwatch",
            NAMESPACE, "--pki", str(plant.workdir / "node-pki"), "--mode", "Sign", "--user", OPCUA_USER,
            "--password", OPCUA_PASSWORD, "--subscribe-ms", "8000"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert plant.system.sim.post("/resume").status_code < 300
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # first, so that a failing /pause below cannot leave node running
            proc.kill()
            proc.communicate(timeout=30)
        assert plant.system.sim.post("/pause").status_code < 300
    assert proc.returncode == 0, err
    notes = last_json(out)["notifications"]["TodayCO2e"]
    values = [n["value"] for n in notes]
    assert len(values) >= 3, notes
    assert values == sorted(values) and values[-1] > values[0], values
    assert all(n["status"] == "Good" for n in notes)
    paused = datetime.now(UTC)   # settle again for the tests after this one
    wait_until("a reading after the pause", lambda: _stored_after(plant.system, paused + timedelta(seconds=0.5)), 60)
    plant.wait_scada_after(datetime.now(UTC))


@pytest.mark.parametrize(("mode", "user", "password"), [
    ("None", None, None),                                  # no None endpoint unless configured
    ("None", OPCUA_USER, OPCUA_PASSWORD),
    ("SignAndEncrypt", None, None),                        # anonymous refused
    ("SignAndEncrypt", OPCUA_USER, "wrong-password"),
])
def test_opcua_refuses_anonymous_none_policy_and_bad_passwords(plant: Plant, mode: str, user: str | None,
                                                               password: str | None) -> None:
    login = ["--user", user, "--password", password or ""] if user else []
    seen = opcua(plant, "--mode", mode, *login, "--expect-refusal", "1")
    assert seen["session"] is False, seen
    assert seen["error"], seen


def test_opcua_accepts_the_configured_user_with_sign(plant: Plant) -> None:
    """The control for the refusals above: the same script does open a session when it should."""
    seen = opcua(plant, "--mode", "Sign", "--user", OPCUA_USER, "--password", OPCUA_PASSWORD, "--expect-refusal", "1")
    assert seen["session"] is True, seen


# ---- Sparkplug B: a host on paho + Tahu's sparkplug-payload (JavaScript) ------------------------------------

class Host:
    """Records every Sparkplug message of the group as (topic, raw payload), in arrival order."""

    def __init__(self, mqtt_url: str, group: str) -> None:
        host, port = mqtt_url.split("://")[1].split(":")
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"spb-test-host-{port}",
                                  protocol=mqtt.MQTTv311)
        self.client.on_message = lambda c, u, m: self._add(m.topic, bytes(m.payload))
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_connect = lambda c, *a: c.subscribe(f"spBv1.0/{group}/#", qos=1)
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert self.ready.wait(10), "host did not subscribe"

    def _add(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.messages.append((topic, payload))

    def kinds(self) -> list[str]:
        with self.lock:
            return [t.split("/")[2] for t, _ in self.messages]

    def decoded(self) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            msgs = list(self.messages)
        payloads = last_json(run([node(), str(NODE_DIR / "spb_codec.js"), "decode"], 60,
                                 json.dumps([base64.b64encode(p).decode() for _, p in msgs])))
        return list(zip([t for t, _ in msgs], payloads, strict=True))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def metric(payload: dict[str, Any], name: str) -> dict[str, Any]:
    found = [m for m in payload["metrics"] if m["name"] == name]
    assert len(found) == 1, (name, [m["name"] for m in payload["metrics"]])
    return found[0]


def test_sparkplug_host_decodes_birth_data_death_and_rebirth(plant: Plant) -> None:
    host = Host(plant.system.mqtt_url, "cw-test")
    try:
        rebirth = base64.b64decode(run([node(), str(NODE_DIR / "spb_codec.js"), "rebirth"], 60).strip())
        host.client.publish("spBv1.0/cw-test/NCMD/e2e", rebirth, qos=1)
        wait_until("NBIRTH and two DBIRTHs after the Rebirth command",
                   lambda: host.kinds().count("DBIRTH") >= 2, 30)
        expected = api_figures(plant, "site", None)
        assert plant.system.sim.post("/resume").status_code < 300
        wait_until("data while the plant runs", lambda: host.kinds().count("DDATA") >= 3
                   and host.kinds().count("NDATA") >= 1, 60)
        assert plant.system.sim.post("/pause").status_code < 300
        host.client.publish("spBv1.0/cw-test/NCMD/e2e", rebirth, qos=1)
        wait_until("a second NBIRTH", lambda: host.kinds().count("NBIRTH") >= 2, 30)
        assert plant.stop_scada(signal.SIGTERM) == 0
        wait_until("NDEATH after a clean stop", lambda: "NDEATH" in host.kinds(), 30)
        seen = host.decoded()
    finally:
        host.close()
    seen = [(t, p) for t, p in seen if t.split("/")[2] not in ("NCMD", "DCMD")]   # the host's own commands
    kinds = [t.split("/")[2] for t, _ in seen]
    first = kinds.index("NBIRTH")
    session = seen[first:]
    nbirth = session[0][1]
    assert nbirth["seq"] == 0
    bd_seq = metric(nbirth, "bdSeq")
    assert bd_seq["type"] == "UInt64"
    rebirth_metric = metric(nbirth, "Node Control/Rebirth")
    assert rebirth_metric["type"] == "Boolean" and rebirth_metric["value"] is False
    today = metric(nbirth, "TodayCO2e")
    assert today["type"] == "Double" and today["properties"]["engUnit"]["value"] == "kg"
    assert today["value"] == pytest.approx(expected["TodayCO2e"], rel=1e-12)
    assert metric(nbirth, "MonthNetBalance")["value"] == pytest.approx(expected["MonthNetBalance"], rel=1e-12)
    assert metric(nbirth, "AllowanceRemaining")["value"] == pytest.approx(expected["AllowanceRemaining"], rel=1e-12)
    dbirths = {t.split("/")[4]: p for t, p in session if t.split("/")[2] == "DBIRTH"}
    assert {"pressing", "painting"} <= set(dbirths)
    assert {m["name"] for m in dbirths["pressing"]["metrics"]} >= {"TodayCO2e", "Meters/press-1/TodayCO2e",
                                                                   "Meters/press-2/AllowanceRemaining"}
    # seq: 0 at every NBIRTH, then +1 (mod 256) for every message of the node; NDEATH carries none
    expected_seq = 0
    for topic, payload in session:
        kind = topic.split("/")[2]
        if kind == "NDEATH":
            assert payload["seq"] is None
            assert metric(payload, "bdSeq")["value"] == bd_seq["value"]
            continue
        if kind == "NBIRTH":
            expected_seq = 0
            assert metric(payload, "bdSeq")["value"] == bd_seq["value"], "a rebirth keeps the session's bdSeq"
        assert payload["seq"] == expected_seq, (topic, payload["seq"], expected_seq)
        expected_seq = (expected_seq + 1) % 256
    data = [p for t, p in session if t.split("/")[2] == "DDATA"]
    assert any(m["name"].endswith("TodayCO2e") for p in data for m in p["metrics"])
    assert kinds.count("NBIRTH") >= 2 and kinds[-1] == "NDEATH"


def test_sparkplug_will_carries_the_new_sessions_bdseq(plant: Plant) -> None:
    """After a restart, a new bdSeq; killed without a goodbye, the broker's will NDEATH names that bdSeq."""
    host = Host(plant.system.mqtt_url, "cw-test")
    try:
        plant.start_scada()
        wait_until("NBIRTH of the new session", lambda: "NBIRTH" in host.kinds(), 60)
        assert plant.stop_scada(signal.SIGKILL) is not None
        wait_until("the will NDEATH", lambda: "NDEATH" in host.kinds(), 90)
        seen = host.decoded()
    finally:
        host.close()
    births = [p for t, p in seen if t.split("/")[2] == "NBIRTH"]
    deaths = [p for t, p in seen if t.split("/")[2] == "NDEATH"]
    assert metric(deaths[-1], "bdSeq")["value"] == metric(births[-1], "bdSeq")["value"]
    state = json.loads((plant.workdir / "spb-state.json").read_text())
    assert state["next_bd_seq"] == (metric(births[-1], "bdSeq")["value"] + 1) % 256

