"""The period report's rows and section for virtual meters and electricity flows (import, export, generation, net
import): the same figures as the balance's `virtual_meters` and `flows`, as CSV rows and HTML."""

from __future__ import annotations

import html

from api.accounting import BalanceOut

#: the flows' CSV rows: (row name, attribute of api.flows.FlowsOut)
FLOW_ROWS = (("import", "import_energy"), ("export", "export_energy"), ("generation", "generation_energy"),
             ("net_import", "net_import"), ("self_consumed", "self_consumed"), ("consumption", "consumption"))


def virtual_flows_csv(balance: BalanceOut) -> list[list[str]]:
    """Rows in the report's columns (section, name, energy, energy_unit, co2e_kg, energy_kgce, kgce_version):
    each virtual meter with its completeness in the last column, and each flow (CO2e only on import)."""
    rows = [["virtual_meter", v.meter, repr(v.energy), v.energy_unit, repr(v.co2e_kg), "",
             f"completeness {v.completeness!r}" + (" negative" if v.negative else "")]
            for v in balance.virtual_meters]
    f = balance.flows
    if f is not None:
        rows += [["flow", name, repr(getattr(f, attr)), f.energy_unit,
                  repr(f.location_co2e_kg) if name == "import" else "", "", ""] for name, attr in FLOW_ROWS]
    return rows


def virtual_flows_html(balance: BalanceOut) -> str:
    """The report's HTML section (empty when the plant has neither virtual meters nor export or generation)."""
    parts = []
    if balance.virtual_meters:
        items = "".join(
            f"<tr><th>{html.escape(v.meter)}</th><td>{html.escape(v.expression)}</td>"
            f"<td>{v.energy:,.3f} {html.escape(v.energy_unit)}</td><td>{v.co2e_kg:,.3f} kg CO2e</td>"
            f"<td>{v.completeness:.1%} complete{' (negative: submeters above the main)' if v.negative else ''}"
            f"</td></tr>" for v in balance.virtual_meters)
        parts.append(f"<h2>Virtual meters (not added to the figures above)</h2><table>{items}</table>")
    f = balance.flows
    if f is not None:
        items = "".join(f"<tr><th>{name.replace('_', ' ')}</th><td>{getattr(f, attr):,.3f} {f.energy_unit}</td></tr>"
                        for name, attr in FLOW_ROWS)
        parts.append("<h2>Electricity flows</h2><p>Location-based scope 2 is import × grid factor: "
                     f"{f.location_co2e_kg:,.3f} kg CO2e; export and generation change nothing.</p>"
                     f"<table>{items}</table>")
    return "".join(parts)
