"""The table the fault suite prints at the end of the run: per scenario, the energy lost and double counted.

Per meter, lost = truth - counted when positive, double = counted - truth when positive (beyond 1e-9
relative; counted includes energy held for an engineer where a scenario checks counted + held), summed per
scenario per carrier in the carrier's unit (electricity kWh, natural gas m3 as metered, steam t) and, across
carriers, in kg CO2e.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.faults.ledger import MeterCheck

CARRIERS = (("electricity", "kWh"), ("natural_gas", "m3"), ("steam", "t"))


@dataclass
class Row:
    scenario: str
    checks: list[MeterCheck] = field(default_factory=list)
    error: str | None = None  # the scenario failed before or apart from the energy check

    @property
    def verdict(self) -> str:
        if not self.checks:
            return "not checked" + (f": {self.error}" if self.error else "")
        bad = [c for c in self.checks if not c.exact]
        if bad:
            return f"{len(bad)} of {len(self.checks)} meters off"
        held = [c for c in self.checks if c.held]
        holding = f"; {len(held)} holding energy (counted + held = truth)" if held else ""
        return f"exact ({len(self.checks)} meters{holding})" + ("; failed: " + self.error if self.error else "")

    def sums(self) -> list[float]:
        out = []
        for carrier, _ in CARRIERS:
            mine = [c for c in self.checks if c.carrier == carrier]
            out += [sum(c.lost for c in mine), sum(c.double for c in mine)]
        out += [sum(c.lost_co2e_kg for c in self.checks), sum(c.double_co2e_kg for c in self.checks)]
        return out


ROWS: list[Row] = []


def record(scenario: str, checks: list[MeterCheck] | None = None, error: str | None = None) -> Row:
    row = next((r for r in ROWS if r.scenario == scenario), None)
    if row is None:
        row = Row(scenario)
        ROWS.append(row)
    if checks is not None:
        row.checks = checks
    if error is not None:
        row.error = error.splitlines()[0][:120] if error.strip() else error
    return row


def _number(row: Row) -> tuple[int, str]:
    """Labels start with the scenario's number: 2 before 10."""
    head = row.scenario.split(" ", 1)[0]
    return (int(head), row.scenario) if head.isdigit() else (1 << 30, row.scenario)


def render(rows: list[Row]) -> str:
    heads = ["scenario"] + [f"{kind} {unit}" for _, unit in CARRIERS for kind in ("lost", "double")] + \
        ["lost kgCO2e", "double kgCO2e", "verdict"]
    ordered = sorted(rows, key=_number)
    body = [[r.scenario, *(f"{v:.6g}" if r.checks else "-" for v in r.sums()), r.verdict] for r in ordered]
    widths = [max(len(str(x)) for x in col) for col in zip(heads, *body, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
             for line in (heads, ["-" * w for w in widths], *body)]
    return "\n".join(lines)
