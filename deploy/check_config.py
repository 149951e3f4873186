"""`carbonwatch check-config FILE...`: validate every section of a plant file with the models of the package that
owns it (calc's plant and factors, the edge agent's, ingest's, the API's, the simulators' and the SCADA
gateway's), one line per problem.

Each part is checked exactly as that service will read the file at start-up, so a file that passes here starts
everywhere; the output names the file, the key path and why, and the exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

# Top-level keys some part reads; anything else is reported (a typo would otherwise be ignored silently).
KNOWN_SECTIONS = {
    "site": "calc (plant)", "meters": "calc (plant), edge, simulators", "gateways": "edge, simulators",
    "variables": "calc (plant), edge, simulators", "virtual_meters": "calc (plant)",
    "factors": "calc (factors)", "factor_overrides": "calc (factors)", "mqtt": "edge, ingest, api",
    "edge": "edge", "store": "ingest, api", "ingest": "ingest", "simulator": "simulators", "api": "api",
    "scada": "scada", "standard_coal": "api, scada (standard coal)",
}


@dataclass(frozen=True)
class Result:
    part: str
    sections: str
    problems: tuple[str, ...]
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _pydantic(model: type[BaseModel], data: dict[str, Any], key: str, source: str) -> list[str]:
    from plantfile import PlantFileError, validate_section

    try:
        validate_section(data, key, model, source)
    except PlantFileError as exc:
        return _lines(exc)
    return []


def _lines(exc: Exception) -> list[str]:
    return [line for line in str(exc).split("\n") if line.strip()]


def check_plant(data: dict[str, Any], source: str, base_dir: Path) -> list[str]:
    from calc.plant import PlantError, parse_plant

    try:
        parse_plant(data, source)
    except PlantError as exc:
        return _lines(exc)
    return []


def check_factors(data: dict[str, Any], source: str, base_dir: Path) -> list[str]:
    from calc.factors import FactorError, default_factor_set
    from calc.plant import PlantError, parse_plant
    from calc.plant_factors import plant_factors

    try:
        plant = parse_plant(data, source)
    except PlantError:
        return []  # reported by the plant check
    try:
        merged = plant_factors(default_factor_set(), plant, data, source)
    except FactorError as exc:
        return _lines(exc)
    from calc.coal import CoalError
    from calc.plant_coal import coal_settings

    try:
        coal_settings(data)
    except CoalError as exc:
        return [f"{source}: {exc}"]
    problems = []
    now = datetime.now(UTC)
    for i, meter in enumerate(plant.meters):
        if meter.carrier == "electricity":
            try:
                merged.factors.grid_factor(plant.region_of(meter), now)
            except FactorError as exc:
                problems.append(f"{source}: meters.{i}.region: {exc}")
    return problems


def check_edge(data: dict[str, Any], source: str, base_dir: Path) -> list[str]:
    from edge.config import parse_config
    from edge.errors import ConfigError

    try:
        parse_config(data, source)
    except ConfigError as exc:
        return _lines(exc)
    return []


def check_ingest(data: dict[str, Any], source: str, base_dir: Path) -> list[str]:
    from ingest.config import ConfigError, config_from_data

    try:
        config_from_data(data, base_dir, source)
    except ConfigError as exc:
        return _lines(exc)
    return []


def check_simulators(data: dict[str, Any], source: str, base_dir: Path) -> list[str]:
    from simulators.config import ConfigError, parse_config

    try:
        parse_config(data, source)
    except ConfigError as exc:
        return _lines(exc)
    return []


def check_api(data: dict[str, Any], source: str, base_dir: Path) -> list[str]:
    from api.settings import ApiSection, MqttSection, Settings, SettingsError, load_sites
    from calc.plant import PlantError, parse_plant

    problems = _pydantic(ApiSection, data, "api", source) + _pydantic(MqttSection, data, "mqtt", source)
    if problems or not data.get("api", {}).get("sites"):
        return problems
    try:   # the other sites this API serves: readable plant files, each site once
        primary = Settings(plant=parse_plant(data, source), plant_data=data, base_dir=base_dir,
                           api=ApiSection.model_validate(data["api"]))
    except PlantError:
        return []   # reported by the plant check
    try:
        load_sites(primary, Path(source))
    except (SettingsError, PlantError) as exc:
        return _lines(exc)
    return []


def check_scada(data: dict[str, Any], source: str, base_dir: Path) -> list[str]:
    from scada.config import ConfigError, config_from_data

    try:
        config_from_data(data, base_dir, source)
    except ConfigError as exc:
        return _lines(exc)
    return []


def check_sections(data: dict[str, Any], source: str, base_dir: Path) -> list[str]:
    return [f"{source}: {key}: no part of carbonwatch reads this section (known: {', '.join(sorted(KNOWN_SECTIONS))})"
            for key in data if key not in KNOWN_SECTIONS]


Checker = Callable[[dict[str, Any], str, Path], list[str]]

# (part, sections it owns, checker, when it applies)
CHECKS: tuple[tuple[str, str, Checker, Callable[[dict[str, Any]], str | None]], ...] = (
    ("plant", "[site], [[meters]] (id, area, line, carrier)", check_plant, lambda d: None),
    ("factors", "[factors], [[factor_overrides]], meters' conditions", check_factors, lambda d: None),
    ("edge", "[[gateways]], meters' device keys, [mqtt], [edge]", check_edge, lambda d: None),
    ("ingest", "[mqtt], [store], [ingest]", check_ingest, lambda d: None),
    ("api", "[api], [mqtt]", check_api, lambda d: None),
    ("simulators", "[simulator], meters' sim, gateways' simulator keys", check_simulators,
     lambda d: None if "simulator" in d else "no [simulator] section: real meters"),
    ("scada", "[scada] (OPC UA, Sparkplug B, Modbus servers), [mqtt]", check_scada,
     lambda d: None if "scada" in d else "no [scada] section: SCADA gateway not configured"),
    ("sections", "top-level names", check_sections, lambda d: None),
)


def check_file(path: Path, base_dir: Path | None = None) -> list[Result]:
    """Every part's verdict on one plant file (a file that is not TOML gives one failed result)."""
    from plantfile import PlantFileError, read_plant_file

    try:
        plant_file = read_plant_file(path)
    except PlantFileError as exc:  # unreadable, not TOML, or a secret it names that is not there
        return [Result("file", "", tuple(_lines(exc)))]
    return check_data(plant_file.data, plant_file.source, base_dir or path.parent)


def check_data(data: dict[str, Any], source: str, base_dir: Path) -> list[Result]:
    """Every part's verdict on a parsed plant file."""
    results = []
    for part, sections, checker, skip in CHECKS:
        reason = skip(data)
        if reason is not None:
            results.append(Result(part, sections, (), reason))
            continue
        results.append(Result(part, sections, tuple(checker(data, source, base_dir))))
    return results


def report(path: Path, results: list[Result]) -> str:
    lines = [f"{path}:"]
    for r in results:
        if r.skipped:
            lines.append(f"  skip  {r.part:<10} {r.skipped}")
        elif r.ok:
            lines.append(f"  ok    {r.part:<10} {r.sections}")
        else:
            lines.append(f"  FAIL  {r.part:<10} {r.sections}")
            lines += [f"        {p}" for p in r.problems]
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    failed = False
    for name in args.files:
        path = Path(name)
        results = check_file(path)
        failed |= not all(r.ok for r in results)
        print(report(path, results))
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("check-config", help="validate every section of plant files (exit 1 on a problem)",
                            description=__doc__)
    parser.add_argument("files", nargs="+", metavar="FILE", help="plant file (TOML)")
    parser.set_defaults(func=_cmd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carbonwatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["check-config", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
