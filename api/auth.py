"""API keys with roles and site scopes: keys are stored hashed (SHA-256), never in clear."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import tomllib
from enum import IntEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Role(IntEnum):
    """Ordered roles: a higher role can do everything a lower one can."""

    VIEWER = 1
    ENGINEER = 2
    ADMIN = 3


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    role: str = Field(pattern="^(viewer|engineer|admin)$")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    sites: tuple[str, ...] = ("*",)

    @property
    def level(self) -> Role:
        return Role[self.role.upper()]

    def may_see(self, site: str) -> bool:
        return "*" in self.sites or site in self.sites


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> str:
    return "cw_" + secrets.token_urlsafe(24)


class KeyRing:
    """The known keys, looked up by hash in constant time per candidate; re-read when the file changes
    (keys added with `carbonwatch api-key add` work without a restart); revoked hashes are refused."""

    def __init__(self, keys: list[ApiKey], path: Path | None = None) -> None:
        self.keys = keys
        self.path = path
        self.revoked: set[str] = set()
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        if self.path is None or not self.path.exists():
            return None
        st = self.path.stat()
        return st.st_mtime_ns, st.st_size

    @staticmethod
    def _read(path: Path) -> list[ApiKey]:
        if not path.exists():
            return []
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return [ApiKey.model_validate(k) for k in data.get("keys", [])]

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls(cls._read(path), path)

    def refresh(self) -> None:
        stamp = self._stat()
        if self.path is not None and stamp != self._stamp:
            self.keys = self._read(self.path)
            self._stamp = stamp

    def find(self, secret: str) -> ApiKey | None:
        self.refresh()
        digest = hash_key(secret)
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.sha256, digest):
                found = key
        if found is not None and found.sha256 in self.revoked:
            return None
        return found


def write_key(path: Path, name: str, role: str, sites: tuple[str, ...] = ("*",)) -> str:
    """Append a new key to a keys file and return its secret (shown once)."""
    secret = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = (f"\n[[keys]]\nname = {json.dumps(name)}\nrole = {json.dumps(role)}\nsha256 = \"{hash_key(secret)}\"\n"
             f"sites = [{', '.join(json.dumps(s) for s in sites)}]\n")
    with path.open("a", encoding="utf-8") as fh:
        fh.write(entry)
    path.chmod(0o600)
    return secret
