"""Dependencies shared by the routers: settings, the store reader, and the caller's key checked against a role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import ApiKey, KeyRing, Role
from api.settings import Settings
from ingest.store.base import StoreReader

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> StoreReader:
    store: StoreReader = request.app.state.store
    return store


def get_keyring(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.keyring
    return keys


def caller(
    keyring: Annotated[KeyRing, Depends(get_keyring)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    header: Annotated[str | None, Security(_header)] = None,
) -> ApiKey:
    secret = bearer.credentials if bearer is not None else header
    if not secret:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key (Authorization: Bearer KEY)",
                            headers={"WWW-Authenticate": "Bearer"})
    key = keyring.find(secret)
    if key is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    return key


def require(role: Role) -> Callable[[ApiKey], ApiKey]:
    def check(key: Annotated[ApiKey, Depends(caller)]) -> ApiKey:
        if key.level < role:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs role {role.name.lower()} (key has {key.role})")
        return key

    return check


def check_site(key: ApiKey, settings: Settings, site: str) -> None:
    """Refuse a site the key may not see, and a site this server does not serve (same answer: not found)."""
    if site != settings.plant.site.id or not key.may_see(site):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site!r}")


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[StoreReader, Depends(get_store)]
Viewer = Annotated[ApiKey, Depends(require(Role.VIEWER))]
