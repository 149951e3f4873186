"""API keys (admin): list (names, roles, sites, fingerprints; never hashes or secrets), create (the secret is
shown once, only its hash is stored), revoke; each change audited. An admin only manages keys of its sites."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, Field

from api.auth import ApiKey, KeyRing, hash_key, write_key
from api.deps import Admin, DbDep, SettingsDep, get_keyring
from api.errors import Conflict, Forbidden, NotFound
from records.keys import KeyRevocations

router = APIRouter(prefix="/v1", tags=["keys"])

KeyringDep = Annotated[KeyRing, Depends(get_keyring)]


class KeyOut(BaseModel):
    name: str
    role: str
    sites: list[str]
    fingerprint: str = Field(description="first 12 hex digits of the key's SHA-256")
    revoked: bool


class KeyIn(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\- ]+$", min_length=1, max_length=64, examples=["scada-reader"])
    role: Literal["viewer", "engineer", "admin"] = "viewer"
    sites: list[Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9_.\-]+)$", max_length=128)]] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=64)


class NewKey(KeyOut):
    secret: str = Field(description="the key itself: shown once, store it now")


def _manages(admin: ApiKey, key_sites: tuple[str, ...] | list[str]) -> bool:
    return "*" in admin.sites or ("*" not in key_sites and all(s in admin.sites for s in key_sites))


def _out(k: ApiKey, ring: KeyRing) -> KeyOut:
    return KeyOut(name=k.name, role=k.role, sites=list(k.sites), fingerprint=k.sha256[:12],
                  revoked=k.sha256 in ring.revoked)


@router.get("/keys")
def list_keys(ring: KeyringDep, key: Admin) -> list[KeyOut]:
    ring.refresh()
    return [_out(k, ring) for k in ring.keys if _manages(key, k.sites)]


@router.post("/keys", status_code=201, responses={403: {"description": "sites beyond the caller's"}})
def create_key(body: Annotated[KeyIn, Body()], settings: SettingsDep, db: DbDep, ring: KeyringDep, key: Admin,
               ) -> NewKey:
    if not _manages(key, body.sites):
        raise Forbidden("a key may only be given sites that the calling admin key has")
    with db.tx() as conn:
        secret = write_key(settings.keys_path, body.name, body.role, tuple(body.sites))
        digest = hash_key(secret)
        db.audit(conn, settings.plant.site.id, key.name, "create", "api_key", digest[:12],
                 {"name": body.name, "role": body.role, "sites": body.sites})
    ring.refresh()
    return NewKey(name=body.name, role=body.role, sites=body.sites, fingerprint=digest[:12], revoked=False,
                  secret=secret)


@router.post("/keys/{fingerprint}/revoke", responses={404: {"description": "no such key"},
                                                     409: {"description": "already revoked"}})
def revoke_key(fingerprint: Annotated[str, Path(pattern="^[0-9a-f]{12}$")], settings: SettingsDep, db: DbDep,
               ring: KeyringDep, key: Admin) -> KeyOut:
    ring.refresh()
    found = [k for k in ring.keys if k.sha256.startswith(fingerprint) and _manages(key, k.sites)]
    if len(found) != 1:
        raise NotFound(f"no key {fingerprint}")
    target = found[0]
    if target.sha256 in ring.revoked:
        raise Conflict(f"key {fingerprint} is already revoked")
    with db.tx() as conn:
        KeyRevocations.add(conn, target.sha256, target.name, db.now(), key.name)
        db.audit(conn, settings.plant.site.id, key.name, "revoke", "api_key", fingerprint, {"name": target.name})
    ring.revoked.add(target.sha256)
    return _out(target, ring)
