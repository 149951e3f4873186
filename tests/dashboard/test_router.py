"""The dashboard router alone: what "/" and /dashboard/* serve, the security headers, and that the page holds
no data (every figure still needs a key)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import api.dashboard
from api.auth import write_key
from api.main import create_app
from api.settings import load_settings
from ingest.store import open_reader
from tests.conftest import DEMO_PLANT
from tests.dashboard.serve_api import has_dashboard, with_dashboard


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    plant = tmp_path / "plant.toml"
    text = DEMO_PLANT.read_text().replace('path = "var/carbonwatch.sqlite"', f'path = "{tmp_path}/store.sqlite"')
    plant.write_text(text)
    settings = load_settings(plant, tmp_path)
    settings = settings.model_copy(update={"api": settings.api.model_copy(update={"live": False})})
    app = with_dashboard(create_app(settings, open_reader(settings.plant_data, settings.base_dir)))
    return TestClient(app)


def test_index_is_the_page_with_strict_headers(client: TestClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert resp.headers["x-frame-options"] == "DENY"
    assert "<script type=\"module\" src=\"/dashboard/app.js\">" in resp.text
    assert "<script>" not in resp.text, "no inline script (the CSP forbids it)"


def test_every_asset_the_page_names_is_served_with_its_type(client: TestClient) -> None:
    page = client.get("/").text
    names = set(re.findall(r'/dashboard/([\w.]+)', page))
    for js in ("app.js", "views.js"):
        names |= set(re.findall(r'from "\./([\w.]+)"', client.get(f"/dashboard/{js}").text))
    assert {"app.js", "api.js", "views.js", "charts.js", "style.css", "favicon.svg"} <= names
    for name in names:
        resp = client.get(f"/dashboard/{name}")
        assert resp.status_code == 200, name
        assert resp.headers["content-type"].split(";")[0] == api.dashboard.ASSETS[name].split(";")[0]


@pytest.mark.parametrize("name", ["nope.js", "..%2F__init__.py", "__init__.py", "index.html"])
def test_only_the_listed_assets_are_served(client: TestClient, name: str) -> None:
    assert client.get(f"/dashboard/{name}").status_code == 404


def test_no_asset_points_outside_the_server(client: TestClient) -> None:
    for name in api.dashboard.ASSETS:
        text = client.get(f"/dashboard/{name}").text
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
    assert not re.search(r"https?://", client.get("/").text)


def test_the_figures_still_need_a_key(client: TestClient, tmp_path: Path) -> None:
    for path in ("/v1/balance", "/v1/meters", "/v1/alerts", "/v1/history", "/v1/stream"):
        assert client.get(path).status_code == 401, path
    key = write_key(tmp_path / "var" / "api-keys.toml", "viewer", "viewer")
    assert client.get("/v1/meters", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_included_once_even_when_create_app_already_has_it() -> None:
    app = FastAPI()
    app.include_router(api.dashboard.router)
    assert has_dashboard(app)
    count = len(app.routes)
    with_dashboard(app)
    assert len(app.routes) == count
    other = with_dashboard(FastAPI())
    assert has_dashboard(other)
