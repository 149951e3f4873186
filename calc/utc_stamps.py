"""Reading the plain UTC timestamps of reading messages into microseconds since the epoch, one or many at once.

`utc_us` takes `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+00:00)` and nothing else (other forms are for calc.schema to decide);
`utc_us_many` gives the same for a list, the plain forms read column-wise with numpy (ingest's hot path).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

_EPOCH = datetime(1970, 1, 1)  # naive: the UTC suffix is checked and cut off before parsing
_US = timedelta(microseconds=1)


def utc_us(ts: str) -> int | None:
    """Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+00:00)`, else None."""
    if ts.endswith("Z"):
        core = ts[:-1]
    elif ts.endswith("+00:00"):
        core = ts[:-6]
    else:
        return None
    n = len(core)
    if not (n == 19 or (21 <= n <= 26 and core[19] == ".")) or core[4] != "-" or core[7] != "-" \
            or core[10] != "T" or core[13] != ":" or core[16] != ":" or not core[:4].isdigit():
        return None
    try:
        return (datetime.fromisoformat(core) - _EPOCH) // _US
    except ValueError:
        return None


_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_SEPARATORS = np.array([4, 7, 10, 13, 16])
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_VECTOR_MIN = 16  # fewer stamps than this: one by one is as quick


def _civil_days(y: npt.NDArray[np.int64], m: npt.NDArray[np.int64], d: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's days_from_civil, vectorized)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    result: npt.NDArray[np.int64] = era * 146_097 + doe - 719_468
    return result


def _same_length_us(stamps: Sequence[str], width: int) -> tuple[list[int], list[bool]] | None:
    """Vectorized utc_us of ASCII stamps that all have `width` characters: (µs, taken) per stamp.

    Column-wise on the transposed characters (one contiguous row per character position).
    """
    try:
        raw = "".join(stamps).encode("ascii")
    except UnicodeEncodeError:
        return None
    n = len(stamps)
    if len(raw) != n * width or not 20 <= width <= 32:
        return None
    cols = np.frombuffer(raw, dtype=np.uint8).reshape(n, width).T.copy()
    digit = cols - np.uint8(ord("0"))  # wraps below '0', so "is a digit" is one compare: <= 9

    def number(*positions: int) -> npt.NDArray[np.int64]:
        value = np.zeros(n, dtype=np.int64)
        for p in positions:
            value = value * 10 + digit[p]
        return value

    zulu = cols[width - 1] == ord("Z")
    ok = (digit[list(_DIGITS)] <= 9).all(axis=0)
    for p, c in zip(_SEPARATORS.tolist(), b"--T::", strict=True):
        ok &= cols[p] == c
    plus_core = width - 6
    if plus_core in (19, *range(21, 27)):
        plus = cols[plus_core] == ord("+")
        for k, c in enumerate(b"00:00", start=1):
            plus &= cols[plus_core + k] == c
        ok &= zulu | plus
        cores = [(zulu, width - 1), (~zulu, plus_core)]
    else:
        ok &= zulu
        cores = [(zulu, width - 1)]
    micro = np.zeros(n, dtype=np.int64)
    for rows, core in cores:
        if core == 19:
            continue
        if not 21 <= core <= 26:
            ok &= ~rows
            continue
        ok &= ~rows | ((cols[19] == ord(".")) & (digit[20:core] <= 9).all(axis=0))
        micro += np.where(rows, number(*range(20, core)) * 10 ** (26 - core), 0)
    year, month, day = number(0, 1, 2, 3), number(5, 6), number(8, 9)
    hour, minute, second = number(11, 12), number(14, 15), number(17, 18)
    ok &= (month >= 1) & (month <= 12) & (year >= 1) & (hour < 24) & (minute < 60) & (second < 60) & (day >= 1)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= day <= _MONTH_DAYS[np.where(ok, month, 0)] + ((month == 2) & leap)
    seconds = _civil_days(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    return (seconds * 1_000_000 + micro).tolist(), ok.tolist()


def utc_us_many(stamps: Sequence[str]) -> list[int | None]:
    """`[utc_us(ts) for ts in stamps]`, with the plain forms read in one vectorized pass (the hot path).

    Stamps are read column-wise when they are ASCII and of one length (a group per length otherwise);
    whatever the vectorized check does not take (impossible dates, odd forms) goes to `utc_us` one by
    one, so every element is exactly what utc_us gives.
    """
    n = len(stamps)
    if n < _VECTOR_MIN:
        return [utc_us(ts) for ts in stamps]
    lengths = np.fromiter(map(len, stamps), dtype=np.int64, count=n)
    widths = np.unique(lengths)
    out: list[int | None] = [None] * n
    for width in widths.tolist():
        where = np.flatnonzero(lengths == width) if len(widths) > 1 else None
        group = stamps if where is None else [stamps[i] for i in where.tolist()]
        done = _same_length_us(group, width)
        values: list[int | None]
        if done is None:
            values = [utc_us(ts) for ts in group]
        elif all(done[1]):
            values = list(done[0])
        else:
            values = [u if good else utc_us(ts) for u, good, ts in zip(done[0], done[1], group, strict=True)]
        if where is None:
            return values
        for i, v in zip(where.tolist(), values, strict=True):
            out[i] = v
    return out
