"""The SQLite store's tables (schema version 2: every key starts with the site; held energy; estimated sums in
the rollups), the ordered migrations that bring older files there (MIGRATIONS, in one transaction at open), and
the plan that splits a period into raw, minute, quarter-hour and hour slices.

`points_full` is a view with every point's site, area, carrier, scope, factor id and version joined
back, for people and tools (Grafana's SQLite data source) that want one flat table.
"""

from __future__ import annotations

import sqlite3

from ingest.store.sqlite_migrations import Step, migrate

SCHEMA_VERSION = 4  # PRAGMA user_version; 0: before sites were in the keys; 1: before held and estimated energy;
# 2: before production counters and driver variables (their tables are new: TABLES creates them); 3: before export
# and generation energy (sqlite_flows: new tables, and the export points stored before summed into them)
MINUTE_US = 60_000_000
QUARTER_US = 900_000_000
HOUR_US = 3_600_000_000

_ROLLUP = """CREATE TABLE IF NOT EXISTS {name} (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, factor_ref INTEGER NOT NULL,
    energy REAL NOT NULL, co2e_kg REAL NOT NULL, points INTEGER NOT NULL,
    est_energy REAL NOT NULL DEFAULT 0, est_co2e_kg REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (site, bucket_us, meter, factor_ref)
) WITHOUT ROWID"""
ESTIMATED_COLUMNS = ("est_energy", "est_co2e_kg")  # of energy and co2e_kg, the part flagged "estimated"
ROLLUPS = ("rollup_minute", "rollup_quarter", "rollup_hour")
# production counters and driver variables: per variable and bucket, a counter's sum (and held part) and a gauge's
# value x seconds and seconds (ingest.store.variables); their raw points are in `points`, like a meter's
_VAR_ROLLUP = """CREATE TABLE IF NOT EXISTS {name} (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, amount REAL NOT NULL, held REAL NOT NULL,
    weighted REAL NOT NULL, weight_s REAL NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter)
) WITHOUT ROWID"""
VAR_ROLLUPS = {"rollup_minute": "var_rollup_minute", "rollup_quarter": "var_rollup_quarter",
               "rollup_hour": "var_rollup_hour"}

# export and generation energy per meter and direction (sqlite_flows; never pruned)
FLOW_TABLES: tuple[str, ...] = tuple(f"""CREATE TABLE IF NOT EXISTS {name} (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, direction TEXT NOT NULL,
    energy REAL NOT NULL, energy_unit TEXT NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter, direction)
) WITHOUT ROWID""" for name in ("flow_minute", "flow_hour"))

TABLES = (
    """CREATE TABLE IF NOT EXISTS points (
    site TEXT NOT NULL, meter TEXT NOT NULL, ts_us INTEGER NOT NULL, quantity TEXT NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, delta REAL, interval_s REAL,
    energy REAL, co2e_kg REAL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    factor_ref INTEGER, seq INTEGER NOT NULL, agent TEXT,
    PRIMARY KEY (site, meter, ts_us, quantity)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS meters (
    site TEXT NOT NULL, meter TEXT NOT NULL, area TEXT NOT NULL, carrier TEXT NOT NULL, samples INTEGER NOT NULL,
    PRIMARY KEY (site, meter)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS factor_refs (
    ref INTEGER PRIMARY KEY, scope TEXT NOT NULL, factor_id TEXT NOT NULL, factor_version TEXT NOT NULL,
    energy_unit TEXT NOT NULL
)""",
    *(_ROLLUP.format(name=name) for name in ROLLUPS),
    """CREATE TABLE IF NOT EXISTS variables (
    site TEXT NOT NULL, meter TEXT NOT NULL, area TEXT NOT NULL, line TEXT NOT NULL, kind TEXT NOT NULL,
    quantity TEXT NOT NULL, unit TEXT NOT NULL, measure TEXT NOT NULL, samples INTEGER NOT NULL,
    PRIMARY KEY (site, meter)
) WITHOUT ROWID""",
    *(_VAR_ROLLUP.format(name=name) for name in VAR_ROLLUPS.values()),
    """CREATE TABLE IF NOT EXISTS latest (
    site TEXT NOT NULL, meter TEXT NOT NULL, quantity TEXT NOT NULL, ts_us INTEGER NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    PRIMARY KEY (site, meter, quantity)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS deadletter (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_us INTEGER NOT NULL, site TEXT NOT NULL, topic TEXT NOT NULL,
    meter TEXT, seq INTEGER, idx INTEGER, reason TEXT NOT NULL, payload BLOB NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS deadletter_site ON deadletter (site, id)",
    "CREATE INDEX IF NOT EXISTS deadletter_received ON deadletter (received_us)",
    # held energy: measured, not counted until released (then a point flag "released" at counted_us); never
    # deleted by retention. One record per point key, so a replay is a duplicate.
    """CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, meter TEXT NOT NULL, ts_us INTEGER NOT NULL,
    quantity TEXT NOT NULL, area TEXT NOT NULL, carrier TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL,
    delta REAL NOT NULL, interval_s REAL, energy REAL NOT NULL, energy_unit TEXT NOT NULL, co2e_kg REAL,
    factor_ref INTEGER, quality TEXT NOT NULL, flags TEXT NOT NULL, reason TEXT NOT NULL, seq INTEGER NOT NULL,
    agent TEXT, received_us INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'open', decided_us INTEGER,
    decided_by TEXT, note TEXT, counted_us INTEGER,
    UNIQUE (site, meter, ts_us, quantity)
)""",
    "CREATE INDEX IF NOT EXISTS held_status ON held (site, status, meter)",
    *FLOW_TABLES,
    # what retention deleted: rows of `tbl` older than from_us are gone (readers and late writes go by it)
    "CREATE TABLE IF NOT EXISTS kept_from (tbl TEXT PRIMARY KEY, from_us INTEGER NOT NULL)",
    """CREATE VIEW IF NOT EXISTS points_full AS
    SELECT p.meter, p.ts_us, strftime('%Y-%m-%dT%H:%M:%fZ', p.ts_us / 1e6, 'unixepoch') AS ts, p.quantity,
           p.site, m.area, m.carrier, f.scope, p.value, p.unit, p.delta, p.interval_s, p.energy,
           f.energy_unit, p.co2e_kg, p.quality, p.flags, f.factor_id, f.factor_version, p.seq, p.agent
    FROM points p JOIN meters m ON m.site = p.site AND m.meter = p.meter
    LEFT JOIN factor_refs f ON f.ref = p.factor_ref""",
)

# Version 0 keyed points, meters and latest by meter alone; a point's site was its meter's row in `meters`
# (rollups and dead letters already had the site). Moved over once, inside the opening transaction.
_FROM_V0 = (
    "DROP VIEW IF EXISTS points_full",
    "ALTER TABLE points RENAME TO points_v0",
    "ALTER TABLE meters RENAME TO meters_v0",
    "ALTER TABLE latest RENAME TO latest_v0",
    *TABLES,
    """INSERT INTO meters (site, meter, area, carrier, samples)
       SELECT site, meter, area, carrier, samples FROM meters_v0""",
    """INSERT INTO points (site, meter, ts_us, quantity, value, unit, delta, interval_s, energy, co2e_kg, quality,
                           flags, factor_ref, seq, agent)
       SELECT COALESCE(m.site, ''), p.meter, p.ts_us, p.quantity, p.value, p.unit, p.delta, p.interval_s, p.energy,
              p.co2e_kg, p.quality, p.flags, p.factor_ref, p.seq, p.agent
       FROM points_v0 p LEFT JOIN meters_v0 m ON m.meter = p.meter""",
    """INSERT INTO latest (site, meter, quantity, ts_us, value, unit, quality, flags)
       SELECT COALESCE(m.site, ''), l.meter, l.quantity, l.ts_us, l.value, l.unit, l.quality, l.flags
       FROM latest_v0 l LEFT JOIN meters_v0 m ON m.meter = l.meter""",
    f"""INSERT INTO rollup_quarter (site, meter, bucket_us, factor_ref, energy, co2e_kg, points)
       SELECT site, meter, bucket_us - bucket_us % {QUARTER_US}, factor_ref, SUM(energy), SUM(co2e_kg), SUM(points)
       FROM rollup_minute GROUP BY site, meter, bucket_us - bucket_us % {QUARTER_US}, factor_ref""",
    # version 0 deleted raw points older than its retention without a record; minute rollups older than the
    # oldest raw point are the trace of it: take that point's hour as the raw points kept (every deleted one
    # was older, its cutoff being a whole hour)
    f"""INSERT INTO kept_from (tbl, from_us)
       SELECT 'points', lo - lo % {HOUR_US} FROM (SELECT MIN(ts_us) AS lo FROM points)
       WHERE lo IS NOT NULL AND EXISTS (SELECT 1 FROM rollup_minute WHERE bucket_us < lo - lo % {MINUTE_US})""",
    "DROP TABLE points_v0",
    "DROP TABLE meters_v0",
    "DROP TABLE latest_v0",
)


def _old(step: Step) -> Step:
    """A step run on files from before it, never on a new file (which gets TABLES as they are now)."""

    def run(db: sqlite3.Connection) -> None:
        if db.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'points'").fetchone():
            step(db)

    return run


def _to_v1(db: sqlite3.Connection) -> None:
    """Version 0 to 1: the site in every key (the tables are created as they are now; later steps find them so)."""
    for statement in _FROM_V0:
        db.execute(statement)


def _to_v2(db: sqlite3.Connection) -> None:
    """Version 1 to 2: the held table (created with TABLES) and estimated sums in every rollup (0 so far: no
    point was estimated before)."""
    for table in ROLLUPS:
        have = {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}
        for column in ESTIMATED_COLUMNS:
            if column not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} REAL NOT NULL DEFAULT 0")


def _tables(db: sqlite3.Connection) -> None:
    for statement in TABLES:  # new tables and indexes (all IF NOT EXISTS)
        db.execute(statement)


# Ordered: (the version a step brings a file to, the step). A file of version v gets every step above v, in this
# order, then TABLES, in one transaction (sqlite_migrations.migrate). A new file gets TABLES alone. A schema change
# appends a step and raises SCHEMA_VERSION to its version.
def _to_v3(db: sqlite3.Connection) -> None:
    """Version 2 to 3: the variables table and their rollups (created with TABLES; nothing to move)."""


def _to_v4(db: sqlite3.Connection) -> None:
    """Version 3 to 4: export and generation sums (sqlite_flows), with the export points already stored."""
    from ingest.store import sqlite_flows  # it reads this module's tables: imported when a file is migrated

    sqlite_flows.backfill(db)


MIGRATIONS: tuple[tuple[int, Step], ...] = ((1, _old(_to_v1)), (2, _old(_to_v2)), (3, _to_v3), (4, _old(_to_v4)))


def prepare(db: sqlite3.Connection) -> int:
    """Create the tables in a new file, or bring an older file to SCHEMA_VERSION through MIGRATIONS, in one
    transaction; a file of a newer version is refused (SchemaError), untouched. Returns the version it had."""
    return migrate(db, MIGRATIONS, "sqlite store", _tables)


def _ceil(us: int, step: int) -> int:
    return -(-us // step) * step


def _floor(us: int, step: int) -> int:
    return us - us % step


def resolvable(us: int, raw_from_us: int | None, minute_from_us: int | None) -> int:
    """The bound a total can really be cut at: exact while raw points are kept; older, floored to the minute
    (raw points deleted) or to the quarter hour (minute rollups deleted too). Floored, not rounded, so that
    adjacent periods still add up: each figure falls in exactly one of them."""
    if raw_from_us is not None and us < raw_from_us:
        us = _floor(us, MINUTE_US)
    if minute_from_us is not None and us < minute_from_us:
        us = _floor(us, QUARTER_US)
    return us


def plan(s_us: int, e_us: int) -> list[tuple[str, int, int]]:
    """Split [s, e) into raw, minute, quarter-hour and hour slices, coarsest in the middle."""
    slices: list[tuple[str, int, int]] = []
    lo, hi = s_us, e_us
    for table, step in (("points", MINUTE_US), ("rollup_minute", QUARTER_US), ("rollup_quarter", HOUR_US)):
        inner_lo, inner_hi = _ceil(lo, step), _floor(hi, step)
        if inner_lo >= inner_hi:
            slices.append((table, lo, hi))
            return [p for p in slices if p[1] < p[2]]
        slices += [(table, lo, inner_lo), (table, inner_hi, hi)]
        lo, hi = inner_lo, inner_hi
    slices.append(("rollup_hour", lo, hi))
    return [p for p in slices if p[1] < p[2]]
