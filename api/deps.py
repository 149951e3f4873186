"""Dependencies shared by the routers: settings, the store reader (and its held-energy side), the API database,
the live engine, the clock, and the caller's key checked against a role and a site."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import ApiKey, KeyRing, Role
from api.errors import Forbidden, Invalid, NotFound
from api.held import HeldDesk
from api.live.rule_runner import Engine
from api.rulebook import RuleBook
from api.settings import Settings
from ingest.store.base import HeldReader, StoreReader
from records.db import ApiDb

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> StoreReader:
    store: StoreReader = request.app.state.store
    return store


def get_held(request: Request) -> HeldReader:
    held: HeldReader = request.app.state.held
    return held


def get_held_desk(request: Request) -> HeldDesk:
    desk: HeldDesk = request.app.state.held_desk
    return desk


def get_db(request: Request) -> ApiDb:
    db: ApiDb = request.app.state.db
    return db


def get_book(request: Request) -> RuleBook:
    book: RuleBook = request.app.state.book
    return book


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_now(request: Request) -> datetime:
    now: datetime = request.app.state.clock()
    return now


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
            raise Forbidden(f"needs role {role.name.lower()} (key has {key.role})")
        return key

    return check


def check_site(key: ApiKey, settings: Settings, site: str) -> None:
    """Refuse a site the key may not see, and a site this server does not serve (same answer: not found)."""
    if site != settings.plant.site.id or not key.may_see(site):
        raise NotFound(f"no site {site!r}")


def invalid(where: tuple[str, ...], message: str) -> Invalid:
    """A 422 in FastAPI's own validation format (documented in the OpenAPI), naming where and why."""
    return Invalid(where, message)


def site_of(key: ApiKey, settings: Settings, site: str | None) -> str:
    """The site a request is about (default: this server's), refused unless the key may see it."""
    site = site or settings.plant.site.id
    check_site(key, settings, site)
    return site


SiteQuery = Annotated[str | None, Query(description="site id (default: this server's site)", max_length=128)]
EntryId = Annotated[int, Path(ge=1, le=2**62)]   # a stored row in a path: ledger entry, alert, held record
SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[ApiDb, Depends(get_db)]
BookDep = Annotated[RuleBook, Depends(get_book)]
EngineDep = Annotated[Engine, Depends(get_engine)]
NowDep = Annotated[datetime, Depends(get_now)]
HistoryDep = Annotated[StoreReader, Depends(get_store)]  # series and factor usage: the store's own
StoreDep = Annotated[StoreReader, Depends(get_store)]
HeldDep = Annotated[HeldReader, Depends(get_held)]
HeldDeskDep = Annotated[HeldDesk, Depends(get_held_desk)]
Viewer = Annotated[ApiKey, Depends(require(Role.VIEWER))]
Engineer = Annotated[ApiKey, Depends(require(Role.ENGINEER))]
Admin = Annotated[ApiKey, Depends(require(Role.ADMIN))]
