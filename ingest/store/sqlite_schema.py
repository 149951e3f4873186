"""The SQLite store's tables and the plan that splits a period into raw, minute and hour slices.

`points_full` is a view with every point's site, area, carrier, scope, factor id and version joined
back, for people and tools (Grafana's SQLite data source) that want one flat table.
"""

from __future__ import annotations

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    meter TEXT NOT NULL, ts_us INTEGER NOT NULL, quantity TEXT NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, delta REAL, interval_s REAL,
    energy REAL, co2e_kg REAL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    factor_ref INTEGER, seq INTEGER NOT NULL, agent TEXT,
    PRIMARY KEY (meter, ts_us, quantity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meters (
    meter TEXT PRIMARY KEY, site TEXT NOT NULL, area TEXT NOT NULL, carrier TEXT NOT NULL,
    samples INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS factor_refs (
    ref INTEGER PRIMARY KEY, scope TEXT NOT NULL, factor_id TEXT NOT NULL, factor_version TEXT NOT NULL,
    energy_unit TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollup_minute (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, factor_ref INTEGER NOT NULL,
    energy REAL NOT NULL, co2e_kg REAL NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter, factor_ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_hour (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, factor_ref INTEGER NOT NULL,
    energy REAL NOT NULL, co2e_kg REAL NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter, factor_ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    meter TEXT NOT NULL, quantity TEXT NOT NULL, ts_us INTEGER NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    PRIMARY KEY (meter, quantity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deadletter (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_us INTEGER NOT NULL, site TEXT NOT NULL, topic TEXT NOT NULL,
    meter TEXT, seq INTEGER, idx INTEGER, reason TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS deadletter_site ON deadletter (site, id);
CREATE VIEW IF NOT EXISTS points_full AS
    SELECT p.meter, p.ts_us, strftime('%Y-%m-%dT%H:%M:%fZ', p.ts_us / 1e6, 'unixepoch') AS ts, p.quantity,
           m.site, m.area, m.carrier, f.scope, p.value, p.unit, p.delta, p.interval_s, p.energy,
           f.energy_unit, p.co2e_kg, p.quality, p.flags, f.factor_id, f.factor_version, p.seq, p.agent
    FROM points p JOIN meters m USING (meter) LEFT JOIN factor_refs f ON f.ref = p.factor_ref;
"""


def _ceil(us: int, step: int) -> int:
    return -(-us // step) * step


def plan(s_us: int, e_us: int) -> list[tuple[str, int, int]]:
    """Split [s, e) into raw, minute and hour slices, coarsest in the middle."""
    s_min, e_min = _ceil(s_us, MINUTE_US), e_us - e_us % MINUTE_US
    if s_min >= e_min:
        return [("points", s_us, e_us)]
    slices = [("points", s_us, s_min), ("points", e_min, e_us)]
    s_hr, e_hr = _ceil(s_min, HOUR_US), e_min - e_min % HOUR_US
    if s_hr >= e_hr:
        slices.append(("rollup_minute", s_min, e_min))
    else:
        slices += [("rollup_minute", s_min, s_hr), ("rollup_minute", e_hr, e_min), ("rollup_hour", s_hr, e_hr)]
    return [p for p in slices if p[1] < p[2]]
