"""The next version of a versioned record (rules, baselines): the id's owner, create versus new version, checked
once for every kind; earlier versions stay as they were.
"""

from __future__ import annotations

from api.errors import Conflict, NotFound


def next_version(kind: str, record_id: str, site: str, owner: str | None, last: int | None, create: bool,
                 update_says: str) -> int:
    """Version 1 for a new id (`create`), last + 1 for a new version of an existing one on the same site.

    A taken id (another site's), creating what exists and updating what does not are refused with a message
    naming the record; `update_says` is what a PUT does to it (e.g. "makes a new version")."""
    if last is not None and owner != site:
        raise Conflict(f"{kind} id {record_id!r} is taken")
    if create and last is not None:
        raise Conflict(f"{kind} {record_id!r} exists; PUT /v1/{kind}s/{record_id} {update_says}")
    if not create and last is None:
        raise NotFound(f"no {kind} {record_id!r}")
    return (last or 0) + 1
