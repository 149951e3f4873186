"""The site switcher and the organisation view in headless Chromium, against one API serving two sites (each with
its own SQLite store written through ingest's converter; uvicorn in this process): switching shows the other
site's meters, "organisation" shows one row per site and a total equal to their sum; a key of one site gets no
switcher."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from api.auth import write_key
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import Env, Server
from tests.api.test_org import NOW, fill, org_app
from tests.dashboard.browser import Browser
from tests.dashboard.conftest import SCREENSHOTS
from tests.dashboard.serve_api import with_dashboard

STATUS_OF_M3 = "document.querySelector('tr[data-meter=\"m3\"] .status')?.dataset.status"


@pytest.fixture
def server(env: Env) -> Iterator[Server]:
    env.clock.now = NOW
    s1, s2 = SqliteStore(env.tmp / "store.sqlite"), SqliteStore(env.tmp / "store-s2.sqlite")
    fill(s1, s2)
    client = org_app(env, s1, s2)   # a TestClient around the app: only its app is served here
    with Server(with_dashboard(client.app)) as running:   # type: ignore[arg-type]
        yield running


@pytest.fixture
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(tmp_path_factory.mktemp("org-dashboard"))


def test_switch_site_and_see_the_organisation(env: Env, server: Server, browser: Browser) -> None:
    key = write_key(env.keys_file, "org-viewer", "viewer", ("s1", "s2"))
    browser.goto(f"{server.url}/#key={key}")
    browser.wait("the switcher", "!document.getElementById('site-switch').hidden && "
                 "document.querySelectorAll('#site-switch option').length === 3")
    assert browser.eval("[...document.querySelectorAll('#site-switch option')].map(o => o.value)") == [
        "s1", "s2", "#/org"]
    # s1's m3 reported on 1 March (stale now); s2's m3 never did
    assert browser.wait("s1's meters", STATUS_OF_M3) == "stale"
    browser.eval("(() => { const s = document.getElementById('site-switch'); s.value = 's2'; "
                 "s.dispatchEvent(new Event('change')); })()")
    browser.wait("s2's meters", f"{STATUS_OF_M3} === 'never_seen'")
    assert browser.eval("document.getElementById('crumbs').textContent") == "s2"
    browser.eval("(() => { const s = document.getElementById('site-switch'); s.value = '#/org'; "
                 "s.dispatchEvent(new Event('change')); })()")
    browser.wait("the organisation", "document.querySelectorAll('table.org tr[data-site]').length === 3")
    rows = browser.eval("[...document.querySelectorAll('table.org tr[data-site]')]"
                        ".map(r => [r.dataset.site, Number(r.querySelector('td[data-value]').dataset.value)])")
    assert [r[0] for r in rows] == ["s1", "s2", ""]
    assert rows[2][1] == math.fsum(r[1] for r in rows[:2]) > 0
    browser.screenshot(SCREENSHOTS / "organisation.png")
    # the tab keeps s2 as its site: back from the organisation, the overview is s2's
    browser.eval("location.hash = '#/'")
    browser.wait("s2 again", f"{STATUS_OF_M3} === 'never_seen'")


def test_a_key_of_one_site_gets_no_switcher(env: Env, server: Server, browser: Browser) -> None:
    key = write_key(env.keys_file, "s2-viewer", "viewer", ("s2",))
    browser.goto(f"{server.url}/#key={key}")
    browser.wait("s2's meters (the only site this key sees)", f"{STATUS_OF_M3} === 'never_seen'")
    assert browser.eval("document.getElementById('site-switch').hidden") is True
    assert browser.eval("document.getElementById('crumbs').textContent") == "s2"
