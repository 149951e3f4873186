"""The FastAPI application: wires settings, keys and the store reader to the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.auth import KeyRing
from api.routes import balance, health, meters
from api.settings import Settings
from ingest.store.base import StoreReader


def create_app(settings: Settings, store: StoreReader, keyring: KeyRing | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="carbonwatch", version="1", lifespan=lifespan,
                  description="Live plant-floor carbon emissions: balances, meters and the evidence behind them.")
    app.state.settings = settings
    app.state.store = store
    app.state.keyring = keyring or KeyRing.load(settings.keys_path)
    if settings.api.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.api.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "X-API-Key"])
    for module in (health, meters, balance):
        app.include_router(module.router)
    return app
