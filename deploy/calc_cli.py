"""The `carbonwatch calc` and `carbonwatch factors` subcommands: one-off CO2e figures and factor-set inspection.

The only place calc's pure core meets files, the clock and the terminal for these commands.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from calc.coal import CoalError, CoalMethod, coal_recipe_for, default_coefficients, equal_value_row
from calc.conditions import ConditionError, parse_measure
from calc.emissions import from_recipe
from calc.factors import (
    FactorError,
    FactorSet,
    check_factor_document,
    default_factor_set,
    factor_hash,
    parse_factor_toml,
)
from calc.plant import PlantError, parse_plant
from calc.plant_factors import plant_factors
from calc.recipes import CARRIER_METHODS, Conditions, recipe
from calc.units import UnitError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    calc = sub.add_parser("calc", help="kg CO2e and kgce of a quantity of an energy carrier, with the data used",
                          description="kg CO2e and kg of standard coal (GB/T 2589) of QUANTITY UNIT of a carrier, "
                                      "with factor id, version and source.")
    calc.add_argument("quantity", type=float, help="amount, e.g. 1200")
    calc.add_argument("unit", help="pint unit, e.g. kWh, MWh, GJ, t, kg, m^3, Nm3, L")
    calc.add_argument("--carrier", required=True, choices=sorted(CARRIER_METHODS))
    calc.add_argument("--region", help="grid / factor region (default: the plant's, else CN)")
    when = calc.add_mutually_exclusive_group()
    when.add_argument("--year", type=int, help="activity year (uses 1 July of that year)")
    when.add_argument("--at", help="activity time, ISO 8601 (default: now)")
    calc.add_argument("--method", help="electricity: location | market | ets; fuels: gbt32150 | ipcc")
    calc.add_argument("--pressure", help="gas / steam pressure with unit, absolute unless gauge: 0.8MPa, 2barg")
    calc.add_argument("--temperature", help="gas / steam / hot-water supply temperature: 180degC")
    calc.add_argument("--return-temperature", help="hot-water return temperature (default 20 degC)")
    calc.add_argument("--density", help="liquid fuel density for volumes: 0.84kg/L")
    calc.add_argument("--plant", type=Path, help="plant TOML whose [factors] and overrides apply")
    calc.add_argument("--factors", type=Path, help="factor file to use instead of the shipped set")
    calc.add_argument("--coal-method", choices=[m.value for m in CoalMethod], default=CoalMethod.EQUIVALENT.value,
                      help="kgce of electricity and heat: equivalent (calorific, default) | equal (needs --kgce-equal)")
    calc.add_argument("--kgce-equal", help="equal-value coefficient with unit and its year's source, e.g. "
                                           "'0.2998 kg/kWh' (electricity) or '39.5 kg/GJ' (heat)")
    calc.add_argument("--json", action="store_true", help="print one JSON object")
    calc.set_defaults(func=run_calc)

    factors = sub.add_parser("factors", help="list, show and check emission factor sets")
    fsub = factors.add_subparsers(dest="factors_command", metavar="ACTION", required=True)
    lst = fsub.add_parser("list", help="list the factors of the set")
    lst.add_argument("--kind")
    lst.add_argument("--region")
    lst.add_argument("--carrier")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--factors", type=Path, help="factor file (default: the shipped set)")
    lst.set_defaults(func=run_list)
    show = fsub.add_parser("show", help="every field of one factor")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.add_argument("--factors", type=Path)
    show.set_defaults(func=run_show)
    check = fsub.add_parser("check", help="validate a factor file (or a plant file's factor sections)")
    check.add_argument("file", type=Path)
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=run_check)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _load_set(path: Path | None) -> FactorSet:
    if path is None:
        return default_factor_set()
    return parse_factor_toml(path.read_text(encoding="utf-8"), path.stem)


def _when(args: argparse.Namespace) -> datetime | date:
    if args.year is not None:
        return date(args.year, 7, 1)
    if args.at:
        ts = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return datetime.now(UTC)


def run_calc(args: argparse.Namespace) -> int:
    try:
        factors = _load_set(args.factors)
        region = args.region
        if args.plant is not None:
            raw = tomllib.loads(args.plant.read_text(encoding="utf-8"))
            plant = parse_plant(raw, str(args.plant))
            pf = plant_factors(factors, plant, raw, str(args.plant))
            factors = pf.factors
            region = region or plant.site.region
            method = args.method or pf.method_for(args.carrier)
        else:
            method = args.method
        measures = {key: parse_measure(getattr(args, key), f"--{key.replace('_', '-')}")
                    for key in ("pressure", "temperature", "return_temperature", "density") if getattr(args, key)}
        conditions = Conditions(**measures)
        rec = recipe(factors, args.carrier, args.unit, region=region or "CN", at=_when(args), method=method,
                     conditions=conditions)
        result = from_recipe(rec, args.quantity, factors)
        coefficients = default_coefficients()
        if args.kgce_equal:
            given = parse_measure(args.kgce_equal, "--kgce-equal")
            row = equal_value_row(args.carrier, given.value, given.unit, "given on the command line (--kgce-equal)")
            coefficients = coefficients.with_coefficients({row.id: row})
        coal = coal_recipe_for(rec, coefficients, method=args.coal_method, conditions=conditions)
    except (FactorError, ConditionError, UnitError, PlantError, CoalError, OSError, ValueError) as exc:
        return _fail(str(exc))
    energy_kgce = args.quantity * coal.kgce_per_unit
    if args.json:
        print(json.dumps({**result.model_dump(mode="json"), "factor_set": factors.name, "region": region or "CN",
                          "energy_kgce": energy_kgce, "kgce_method": coal.method.value,
                          "kgce_coefficient_id": coal.coefficient_id, "kgce_version": coal.version,
                          "kgce_source": coal.source}, ensure_ascii=False))
        return 0
    table = Table(title=f"{args.quantity:g} {args.unit} of {args.carrier}", show_header=False)
    table.add_row("kg CO2e", f"{result.co2e_kg:,.4f}")
    table.add_row("scope", result.scope)
    table.add_row("method", result.method)
    table.add_row("activity", f"{result.activity:,.6g} {result.activity_unit}")
    for gas, kg in result.gas_kg.items():
        table.add_row(f"  {gas}", f"{kg:,.6g} kg ({result.co2e_by_gas_kg[gas]:,.6g} kg CO2e)")
    table.add_row("factor id", result.factor_id + (" [fallback]" if result.fallback else ""))
    table.add_row("factor version", result.factor_version)
    table.add_row("source", result.source)
    table.add_row("factors used", ", ".join(result.factor_ids))
    table.add_row("kgce", f"{energy_kgce:,.4f} ({coal.method.value} value, {coal.coefficient_id})")
    table.add_row("kgce version", coal.version)
    Console().print(table)
    return 0


def run_list(args: argparse.Namespace) -> int:
    try:
        factors = _load_set(args.factors)
    except (FactorError, OSError) as exc:
        return _fail(str(exc))
    chosen = [f for f in factors.factors.values()
              if (args.kind is None or f.kind == args.kind) and (args.region is None or f.region == args.region)
              and (args.carrier is None or f.carrier == args.carrier)]
    if args.json:
        print(json.dumps({"set": factors.name, "version": factors.version, "gwp": factors.gwp_set,
                          "factors": [f.model_dump(mode="json") for f in chosen]}, ensure_ascii=False))
        return 0
    table = Table(title=f"factor set {factors.name} {factors.version} (GWP {factors.gwp_set}): {len(chosen)}")
    for col in ("id", "value", "unit", "gas", "kind", "region", "valid", "conf."):
        table.add_column(col)
    for f in chosen:
        valid = f"{f.valid_from or '…'}..{f.valid_to or '…'}" if f.valid_from or f.valid_to else ""
        table.add_row(f.id, f"{f.value:g}", f.unit, f.gas, f.kind, f.region, valid, f.confidence or "")
    Console(width=200).print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    try:
        factors = _load_set(args.factors)
        factor = factors.get(args.id)
    except (FactorError, OSError) as exc:
        return _fail(str(exc))
    body: dict[str, Any] = {k: v for k, v in factor.model_dump(mode="json").items() if v is not None}
    body["version"] = f"{factors.version}:{factor_hash(factor)}"
    if args.json:
        print(json.dumps(body, ensure_ascii=False))
        return 0
    table = Table(title=f"{factor.id}", show_header=False)
    for key, value in body.items():
        table.add_row(key, str(value))
    Console().print(table)
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Exit 0 when the file is valid, 1 with one `key.path: why` line per problem."""
    try:
        data = tomllib.loads(args.file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        problems, count, what = [f"(toml): {exc}"], 0, ""
    except OSError as exc:
        return _fail(str(exc))
    else:
        if "site" in data:  # a plant file: check its [factors] and [[factor_overrides]] sections
            try:
                pf = plant_factors(default_factor_set(), parse_plant(data, str(args.file)), data, str(args.file))
                problems, count, what = [], len(pf.overrides), "factor overrides"
            except (FactorError, PlantError) as exc:
                problems, count, what = [line.removeprefix(f"{args.file}: ") for line in str(exc).splitlines()], 0, ""
        else:
            found, problems = check_factor_document(data)
            count, what = len(found), "factors"
    if args.json:
        print(json.dumps({"file": str(args.file), "ok": not problems, "factors": count, "problems": problems}))
    elif problems:
        for line in problems:
            print(f"{args.file}: {line}")
        print(f"{len(problems)} problem(s)", file=sys.stderr)
    else:
        print(f"{args.file}: ok ({count} {what})")
    return 1 if problems else 0
