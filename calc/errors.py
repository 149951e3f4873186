"""The root of every error calc raises on purpose: `CalcError`, a ValueError (a value calc cannot use).

Each module keeps its own family next to the code that raises it (UnitError in calc/units.py, PlantError in
calc/plant.py, ...); all of them derive from `CalcError`, so a caller can catch calc's refusals as one, and
`deploy/exit_codes.py` maps them to a process exit code in one place.
"""

from __future__ import annotations


class CalcError(ValueError):
    """A value, file or message that calc refuses; the message says what and why."""
