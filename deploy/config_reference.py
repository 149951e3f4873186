"""Generate docs/config-reference.md from the pydantic models that read the plant file, so it cannot drift:
`python -m deploy.config_reference` writes it, `--check` fails when the committed file is out of date.
"""

from __future__ import annotations

import argparse
import enum
import inspect
import json
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "docs" / "config-reference.md"


@dataclass(frozen=True)
class Table:
    """One table of the reference: a TOML section (or a kind of it) and the model that reads it."""

    heading: str
    model: type[BaseModel]
    read_by: str
    note: str = ""
    skip: tuple[str, ...] = ()


def tables() -> list[Table]:
    from api.settings import ApiSection, Webhook
    from api.settings import MqttSection as ApiMqtt
    from calc.plant import Meter, Site, Variable
    from calc.plant_coal import StandardCoalSection
    from calc.plant_factors import FactorOverride, FactorsSection
    from calc.virtual_meters import VirtualMeter
    from edge.config import EdgeSettings, MeterDevice, ModbusRtuGateway, ModbusRtuTcpGateway, ModbusTcpGateway
    from edge.config import MqttSettings as EdgeMqtt
    from edge.config import OpcUaGateway as EdgeOpcUa
    from edge.points import Point
    from ingest.config import InfluxStoreSettings, IngestSettings, SqliteStoreSettings
    from ingest.config import MqttSettings as IngestMqtt
    from scada.config import ModbusSettings as ScadaModbus
    from scada.config import MqttSettings as ScadaMqtt
    from scada.config import OpcUaSettings as ScadaOpcUa
    from scada.config import OpcUaUser, ScadaSection, SparkplugSettings
    from simulators.config import EnergyModel, SimSpec, SimulatorSection, Weather
    from simulators.config import ModbusRtuGateway as SimRtu
    from simulators.config import ModbusTcpGateway as SimTcp
    from simulators.config import OpcUaGateway as SimOpcUa

    return [
        Table("[site]", Site, "every service (calc.plant)"),
        Table("[[meters]]: place in the plant", Meter, "every service (calc.plant)",
              "Also `conditions = { pressure = \"4 barg\", temperature = \"15 degC\" }` for gas volume and steam "
              "(calc.plant_factors, see [factors] below)."),
        Table("[[meters]]: how the edge reads it", MeterDevice, "edge", skip=("id", "area", "line", "max_power_kw")),
        Table("[[meters]] points = [ {...} ]: one register or node", Point, "edge",
              "A meter needs `map` (a built-in template) or `points`, or both (points add to the map)."),
        Table("[meters.sim]: a simulated meter", SimSpec, "simulators"),
        Table("[meters.sim.model]: energy that follows a known model", EnergyModel, "simulators"),
        Table("[[variables]]: a production counter or driver variable", Variable, "every service (calc.plant)",
              "Read like a meter: the same device keys as [[meters]] (`gateway`, `unit_id`, `map` or `points`, "
              "`interval_s`, ...) and a `sim` table (production counters: `base_per_h`, `peak_per_h` and a shift "
              "profile; sensors: `weather`). Without `gateway` it is entered by hand per shift or day (API or "
              "`carbonwatch production import`). Stored with its unit, never a CO2e; ids are shared with meters."),
        Table("[variables.sim.weather]: a simulated outdoor temperature", Weather, "simulators"),
        Table("[[virtual_meters]]: a meter computed from others", VirtualMeter, "every service (calc.plant)",
              "Its carrier is its inputs' (one carrier); ids are shared with meters and variables; another virtual "
              "meter may be an input, without cycles. Never read from a device and never added to a balance "
              "twice (docs/calculations.md, section 5b)."),
        Table("[[gateways]] kind = \"modbus_tcp\"", ModbusTcpGateway, "edge"),
        Table("[[gateways]] kind = \"modbus_rtu_tcp\"", ModbusRtuTcpGateway, "edge"),
        Table("[[gateways]] kind = \"modbus_rtu\"", ModbusRtuGateway, "edge"),
        Table("[[gateways]] kind = \"opcua\"", EdgeOpcUa, "edge"),
        Table("[[gateways]]: simulator keys (modbus_tcp)", SimTcp, "simulators", skip=("id", "kind", "host", "port")),
        Table("[[gateways]]: simulator keys (modbus_rtu)", SimRtu, "simulators",
              skip=("id", "kind", "device", "baudrate", "parity", "stopbits")),
        Table("[[gateways]]: simulator keys (opcua)", SimOpcUa, "simulators", skip=("id", "kind", "host", "port")),
        Table("[mqtt] as the edge reads it", EdgeMqtt, "edge",
              "One [mqtt] serves every part: each reads its keys and ignores the others' (`reconnect_max_s` and "
              "`client_id` are the edge's), and every part refuses a key none of them reads. A password in the URL "
              "is percent-encoded (`%40` for `@`, `%20` for a space). TLS, the same rule for every part "
              "(link/mqtt.py): on when the URL is `mqtts://` or a `ca_file` or `cert_file` is set; the broker's "
              "certificate is always "
              "checked (against `ca_file`, else the system's CAs), `tls_insecure` skips only the host-name check; "
              "the port comes from the URL (default 8883 for mqtts://, 1883 for mqtt://)."),
        Table("[mqtt] as ingest reads it", IngestMqtt, "ingest"),
        Table("[mqtt] as the API reads it", ApiMqtt, "api"),
        Table("[edge]", EdgeSettings, "edge"),
        Table("[store] kind = \"sqlite\" (default)", SqliteStoreSettings, "ingest, api"),
        Table("[store] kind = \"influxdb\"", InfluxStoreSettings, "ingest, api",
              "InfluxDB 1.x, or 2.x/3.x through their v1-compatible API (a DBRP mapping on 2.x; `token` there)."),
        Table("[ingest]", IngestSettings, "ingest"),
        Table("[simulator]", SimulatorSection, "simulators"),
        Table("[api]", ApiSection, "api"),
        Table("[[api.webhooks]]", Webhook, "api"),
        Table("[mqtt] as the SCADA gateway reads it", ScadaMqtt, "scada"),
        Table("[scada]", ScadaSection, "scada", "The servers and their address space: [scada.md](scada.md).",
              skip=("opcua", "sparkplug", "modbus")),
        Table("[scada.opcua]", ScadaOpcUa, "scada"),
        Table("[scada.opcua] users = [ {...} ]", OpcUaUser, "scada"),
        Table("[scada.sparkplug]", SparkplugSettings, "scada"),
        Table("[scada.modbus]", ScadaModbus, "scada"),
        Table("[factors]", FactorsSection, "ingest and the API (calc.plant_factors)",
              "How the factors are used: [calculations.md](calculations.md)."),
        Table("[[factor_overrides]]", FactorOverride, "ingest and the API (calc.plant_factors)"),
        Table("[standard_coal]", StandardCoalSection, "the API and SCADA (calc.plant_coal)",
              "kgce in the views: [calculations.md](calculations.md), 3a."),
    ]


def type_name(ann: Any) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " | ".join(names) + (" (optional)" if type(None) in args else "")
    if origin in (tuple, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        return "[" + ", ".join(type_name(a) for a in args) + "]"
    if origin is dict:
        return "table"
    if inspect.isclass(ann):
        if issubclass(ann, enum.Enum):
            return " | ".join(json.dumps(m.value) for m in ann)
        if issubclass(ann, BaseModel):
            return f"table ({ann.__name__})"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "PosixPath": "path",
                "Path": "path", "datetime": "date-time", "AwareDatetime": "date-time with offset"}.get(
                    ann.__name__, ann.__name__)
    return str(ann).replace("typing.", "")


def default_text(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "–"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, BaseModel):
        return "(defaults)"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = [list(v) if isinstance(v, tuple) else v for v in value]
    return f"`{json.dumps(value)}`"


def constraints(field: FieldInfo) -> str:
    out = []
    for meta in field.metadata:
        for name, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if getattr(meta, name, None) is not None:
                out.append(f"{sign} {getattr(meta, name)}")
        if getattr(meta, "min_length", None):
            out.append(f"length ≥ {meta.min_length}")
        if getattr(meta, "max_length", None):
            out.append(f"length ≤ {meta.max_length}")
        if getattr(meta, "pattern", None):
            out.append(f"matches `{meta.pattern}`")
    return ", ".join(out)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_table(table: Table) -> str:
    model = table.model
    doc = inspect.getdoc(model) or ""
    if doc.startswith(("Usage docs:", "!!!")) or "A base class for creating Pydantic models" in doc:
        doc = ""
    lines = [f"### {table.heading}", "", f"Read by: {table.read_by} (`{model.__module__}.{model.__name__}`)."]
    if doc:
        lines += ["", _cell(doc)]
    if table.note:
        lines += ["", table.note]
    lines += ["", "| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in table.skip:
            continue
        key = field.alias or name
        meaning = field.description or ""
        rule = constraints(field)
        if rule:
            meaning = f"{meaning} ({rule})" if meaning else rule
        lines.append(f"| `{key}` | {_cell(type_name(field.annotation))} | {default_text(field)} | {_cell(meaning)} |")
    return "\n".join(lines)


def render() -> str:
    from calc import plant_factors
    from plantfile import secrets

    head = [
        "# Plant file reference",
        "",
        "<!-- Generated by `python -m deploy.config_reference` from the pydantic models; do not edit by hand. -->",
        "",
        "One TOML file describes a plant and how carbonwatch runs there. Every service reads the same file and",
        "validates only the sections it owns, so one table below may be read by several services.",
        "`carbonwatch check-config FILE` validates every section with the owning package's model, exactly as",
        "each service will at start-up; an error names the file, the key path and why.",
        "Examples: `deploy/examples/demo-plant.toml` (simulated), `deploy/compose/plant.toml` (real meters).",
        "",
    ]
    body = [render_table(t) for t in tables()]
    factors = ["### [factors] and [[factor_overrides]] by example", "", "```",
               (inspect.getdoc(plant_factors) or "").strip(), "```"]
    # a plain block, not toml: the docs' toml examples are checked as written, and these name variables and files
    hidden = ["### Secrets: from the environment or a file", "", _cell(inspect.getdoc(secrets) or ""), "",
              "```", "[mqtt]", 'username = "ingest"', 'password_env = "CARBONWATCH_MQTT_PASSWORD"', "",
              "[store]", 'kind = "influxdb"', 'url = "http://influxdb:8086"', 'username = "carbonwatch"',
              'password_file = "/run/secrets/influxdb_password"', "```", "",
              f"Secret keys: {', '.join(f'`{k}`' for k in secrets.SECRET_KEYS)}, in any table. A relative "
              "`_file` path is taken against the plant file's folder. A variable that is not set or a file that "
              "cannot be read stops the service at start-up (and fails `carbonwatch check-config`), naming the "
              "file, the key path and the variable or path."]
    return "\n".join(head) + "\n" + "\n\n".join([*body, "\n".join(factors), "\n".join(hidden)]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.config_reference", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from the models")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m deploy.config_reference", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
