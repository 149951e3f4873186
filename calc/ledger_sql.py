"""The SQL that selects the ledger entries that count (offsets, allowances, instruments not voided) in the API
database, written once: the API reads and writes that file, SCADA reads it, and both count the same entries.

Plain strings and a pure builder (no I/O); the parameters each query takes are listed beside it, times as ISO 8601.
"""

from __future__ import annotations

from typing import Final, Literal

Voidable = Literal["allowance", "offset", "instrument"]

TABLES: Final[dict[Voidable, str]] = {"allowance": "allowances", "offset": "offsets", "instrument": "instruments"}


def not_voided(entity: Voidable, column: str = "id") -> str:
    """A WHERE condition: the row's `column` is not the id of a voided `entity`."""
    if entity not in TABLES:   # never a caller's string inside SQL
        raise ValueError(f"not a ledger entity: {entity!r}")
    return f"{column} NOT IN (SELECT entity_id FROM voids WHERE entity = '{entity}')"


# (site, start, end): kg CO2e of the site's offsets that apply in [start, end)
OFFSETS_KG: Final = ("SELECT SUM(quantity_kg) FROM offsets WHERE site = ? AND applies_on >= ? AND applies_on < ? "
                     f"AND {not_voided('offset')}")

# (site, start, end): kg CO2e of the site's CCER credits that apply in [start, end)
CCER_KG: Final = ("SELECT SUM(quantity_kg) FROM offsets WHERE site = ? AND kind = 'credit' AND "
                  "UPPER(standard) = 'CCER' AND applies_on >= ? AND applies_on < ? "
                  f"AND {not_voided('offset')}")

# (site, scope, target, at, at): the newest allowance of the boundary whose period contains `at`
ALLOWANCE_AT: Final = ("SELECT * FROM allowances WHERE site = ? AND scope = ? AND target IS ? AND period_start <= ? "
                       f"AND period_end > ? AND {not_voided('allowance')} ORDER BY id DESC LIMIT 1")

# (site,): the site's allowances, oldest first
ALLOWANCES: Final = f"SELECT * FROM allowances WHERE site = ? AND {not_voided('allowance')} ORDER BY id"

# (serial,): the offset that already counts this serial, on any site
OFFSET_WITH_SERIAL: Final = f"SELECT id, site FROM offsets WHERE serial = ? AND {not_voided('offset')}"

# (site,): the site's instruments, soonest-expiring first
INSTRUMENTS: Final = f"SELECT * FROM instruments WHERE site = ? AND {not_voided('instrument')} ORDER BY valid_to, id"

# (prefix, last, first): the first certificate range, on any site, that overlaps [first, last] of this prefix
GEC_OVERLAP: Final = ("SELECT * FROM instruments WHERE kind = 'gec' AND serial_prefix = ? AND serial_first <= ? "
                      f"AND serial_last >= ? AND {not_voided('instrument')} ORDER BY id LIMIT 1")

# (contract_id,): the PPA, on any site, that already counts this contract
PPA_WITH_CONTRACT: Final = (f"SELECT * FROM instruments WHERE kind = 'ppa' AND contract_id = ? "
                            f"AND {not_voided('instrument')} ORDER BY id LIMIT 1")

# (entity, entity_id): a row when that entry is voided
IS_VOIDED: Final = "SELECT 1 FROM voids WHERE entity = ? AND entity_id = ?"
