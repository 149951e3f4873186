"""Dependencies shared by the routers: the site a request is about (api.sites: its settings, store reader and
held-energy side, live engine and stream), the API database, the clock, and the caller's key checked against a
role and a site."""

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
from api.live.stream import Hub
from api.rulebook import RuleBook
from api.settings import Settings
from api.sites import Organisation, SiteContext
from ingest.store.base import HeldReader, StoreReader
from records.db import ApiDb

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


async def get_site(request: Request) -> SiteContext:
    """The context of the site the request names (`?site=`; none: the server's own site). An unknown site gets
    the server's own context, which site_of then refuses as not found, exactly as with one site."""
    org: Organisation = request.app.state.org
    return org.get(request.query_params.get("site"))


SiteDep = Annotated[SiteContext, Depends(get_site)]


async def get_settings(site: SiteDep) -> Settings:
    return site.settings


async def get_store(site: SiteDep) -> StoreReader:
    return site.store


async def get_held(site: SiteDep) -> HeldReader:
    return site.held


async def get_held_desk(site: SiteDep) -> HeldDesk:
    return site.held_desk


def get_db(request: Request) -> ApiDb:
    db: ApiDb = request.app.state.db
    return db


def get_book(request: Request) -> RuleBook:
    book: RuleBook = request.app.state.book
    return book


async def get_engine(site: SiteDep) -> Engine:
    return site.engine


async def get_hub(site: SiteDep) -> Hub:
    return site.hub


async def get_org(request: Request) -> Organisation:
    org: Organisation = request.app.state.org
    return org


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
    """Refuse a site the key may not see, and a site this server does not serve (same answer: not found):
    `settings` are the requested site's when this server serves it, else the server's own."""
    if site != settings.plant.site.id or not key.may_see(site):
        raise NotFound(f"no site {site!r}")


def invalid(where: tuple[str, ...], message: str) -> Invalid:
    """A 422 in FastAPI's own validation format (documented in the OpenAPI), naming where and why."""
    return Invalid(where, message)


def site_of(key: ApiKey, settings: Settings, site: str | None) -> str:
    """The site a request is about (default: this server's own), refused unless the key may see it; `settings` are
    that site's (get_site picked them by the same `site` query parameter)."""
    site = site or settings.plant.site.id
    check_site(key, settings, site)
    return site


SiteQuery = Annotated[str | None, Query(description="site id (default: this server's site)", max_length=128)]
EntryId = Annotated[int, Path(ge=1, le=2**62)]   # a stored row in a path: ledger entry, alert, held record
SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[ApiDb, Depends(get_db)]
BookDep = Annotated[RuleBook, Depends(get_book)]
EngineDep = Annotated[Engine, Depends(get_engine)]
HubDep = Annotated[Hub, Depends(get_hub)]
OrgDep = Annotated[Organisation, Depends(get_org)]
NowDep = Annotated[datetime, Depends(get_now)]
HistoryDep = Annotated[StoreReader, Depends(get_store)]  # series and factor usage: the store's own
StoreDep = Annotated[StoreReader, Depends(get_store)]
HeldDep = Annotated[HeldReader, Depends(get_held)]
HeldDeskDep = Annotated[HeldDesk, Depends(get_held_desk)]
Viewer = Annotated[ApiKey, Depends(require(Role.VIEWER))]
Engineer = Annotated[ApiKey, Depends(require(Role.ENGINEER))]
Admin = Annotated[ApiKey, Depends(require(Role.ADMIN))]
