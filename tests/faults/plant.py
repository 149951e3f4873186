"""The fault suite's plant: 21 meters of three carriers on two Modbus gateways and an OPC UA server, written as
one plant file per process (each ingest worker needs its own client id, the edge may get its own [edge]).

Electricity on the `schneider_pm5000` (INT64 Wh) and `eastron_sdm630` (float32 kWh) maps, natural gas as
`adam6051_counter` pulses and on OPC UA (volume, with metering conditions), steam on OPC UA (mass, with its
pressure and temperature for the enthalpy). The simulators run `ACCELERATION` times faster than real time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from deploy.services import free_port

ACCELERATION = 600.0  # simulated seconds per real second: a 30 s scenario is five simulated hours
INTERVAL_S = 0.5      # every meter polled twice a second: 42 polls/s for the plant
# The edge and ingest hold back a delta implying more than max_power_kw (x1.5 at the edge). At ACCELERATION the
# counters advance 600 times faster than the profile's kW, and a poll stamped on time but answered late (a loaded
# machine queues requests on a gateway for seconds) makes one interval look shorter still: so far above any
# profile x ACCELERATION x jitter that the suite never trips it. Spike handling is not what this suite tests.
MAX_POWER_KW = 1e9
ACK_TIMEOUT_S = 2.0  # the edge sends a reading again when ingest has not acknowledged it within this

# (meter id, area, carrier, gateway, map, sim table, extra keys)
METERS: tuple[tuple[str, str, str, str, str, dict[str, Any], dict[str, Any]], ...] = (
    *((f"press-{i}", "pressing", "electricity", "gw1", "schneider_pm5000",
       {"base_kw": 40.0 + 10 * i, "peak_kw": 300.0 + 30 * i}, {}) for i in range(1, 5)),
    *((f"weld-{i}", "welding", "electricity", "gw1", "schneider_pm5000",
       {"base_kw": 20.0 + 5 * i, "peak_kw": 180.0}, {}) for i in range(1, 4)),
    *((name, area, "electricity", "gw2", "eastron_sdm630", {"base_kw": base, "peak_kw": peak}, {})
      for name, area, base, peak in (("paint-oven", "painting", 150.0, 220.0), ("paint-booth", "painting", 30.0, 90.0),
                                     ("compressors", "utilities", 30.0, 160.0), ("chiller-1", "utilities", 60.0, 110.0),
                                     ("chiller-2", "utilities", 55.0, 100.0), ("lighting", "utilities", 12.0, 20.0))),
    ("oven-gas", "painting", "natural_gas", "gw1", "adam6051_counter", {"base_m3_h": 25.0, "peak_m3_h": 45.0},
     {"pulse_m3": 0.01}),
    *((name, area, "natural_gas", "gw2", "adam6051_counter", {"base_m3_h": base, "peak_m3_h": peak},
       {"pulse_m3": 0.01}) for name, area, base, peak in (("dryer-gas", "painting", 10.0, 30.0),
                                                          ("canteen-gas", "utilities", 2.0, 8.0))),
    *((name, area, "natural_gas", "opc1", "opcua_gas",
       {"base_m3_h": base, "peak_m3_h": peak, "pressure_bar": 4.0, "temperature_c": 15.0},
       {"conditions": {"pressure": "4 barg", "temperature": "15 degC"}})
      for name, area, base, peak in (("boiler-gas-1", "utilities", 40.0, 180.0),
                                     ("boiler-gas-2", "utilities", 30.0, 120.0),
                                     ("furnace-gas", "welding", 15.0, 60.0))),
    *((name, "painting", "steam", "opc1", "opcua_steam",
       {"base_kg_h": base, "peak_kg_h": peak, "pressure_bar": 8.0, "temperature_c": 180.0},
       {"conditions": {"pressure": "8 bar", "temperature": "180 degC"}})
      for name, base, peak in (("paint-steam", 800.0, 1500.0), ("wash-steam", 300.0, 700.0))),
)
METER_IDS = tuple(m[0] for m in METERS)


def meters_table() -> list[dict[str, Any]]:
    out = []
    units: dict[str, int] = {}
    for mid, area, carrier, gateway, map_name, sim, extra in METERS:
        meter: dict[str, Any] = {"id": mid, "area": area, "carrier": carrier, "gateway": gateway, "map": map_name,
                                 "interval_s": INTERVAL_S, **extra,
                                 "sim": {"profile": "continuous", **sim}}
        if carrier == "electricity":
            meter["max_power_kw"] = MAX_POWER_KW
        if gateway != "opc1":
            units[gateway] = units.get(gateway, 0) + 1
            meter["unit_id"] = units[gateway]
        out.append(meter)
    return out


def plant_data(site: str, seed: int, mqtt_url: str, workdir: Path) -> dict[str, Any]:
    """The sections every process shares: site, gateways, meters, simulator, broker, edge; ports are fresh."""
    return {
        "site": {"id": site, "name": f"fault suite plant {site}", "region": "CN", "timezone": "Asia/Shanghai",
                 "start": "2026-01-01T00:00:00Z"},
        "gateways": [
            {"id": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": free_port(), "timeout_s": 2.0},
            {"id": "gw2", "kind": "modbus_tcp", "host": "127.0.0.1", "port": free_port(), "timeout_s": 2.0},
            # agent time stamps the OPC UA samples: the simulated server's SourceTimestamps run 600x fast
            {"id": "opc1", "kind": "opcua", "host": "127.0.0.1", "port": free_port(), "security": ["None"],
             "timestamps": "agent"},
        ],
        "meters": meters_table(),
        "simulator": {"seed": seed, "acceleration": ACCELERATION, "control_url": f"http://127.0.0.1:{free_port()}",
                      "step_s": 1},
        "mqtt": {"url": mqtt_url, "reconnect_max_s": 5},  # the edge's reconnect backoff: outages end in the tests
        "edge": edge_section(workdir),
    }


def edge_section(workdir: Path) -> dict[str, Any]:
    """[edge] with the defaults of what is tested (`confirm = "ingest"`: a reading stays in the spool until ingest
    acknowledges it) and a short ack timeout, so that a lost reading is sent again within the scenario."""
    return {"agent": "edge-1", "state_dir": str(workdir / "edge-state"), "status_interval_s": 2.0,
            "ack_timeout_s": ACK_TIMEOUT_S}


# --- a small TOML writer (tomllib reads, nothing in the standard library writes) -----------------------------
def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _table(body: Mapping[str, Any]) -> list[str]:
    return [f"{json.dumps(k)} = {_value(v)}" for k, v in body.items()]


def dumps(data: Mapping[str, Any]) -> str:
    """Top-level tables as [section], lists of tables as [[section]], nested tables inline."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines += ["", f"[{key}]", *_table(value)]
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for item in value:
                lines += ["", f"[[{key}]]", *_table(item)]
        else:
            raise TypeError(f"top-level key {key!r} must be a table or a list of tables")
    return "\n".join(lines) + "\n"


def write(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(dumps(data), encoding="utf-8")
    return path
