"""schemathesis against the app's own OpenAPI: generated requests (as an admin, over a store with data) never
cause a server error and every response matches the documented schema and content type."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.api.conftest import Env, Server, fill_store, hourly, plant_data


@pytest.fixture(scope="module")
def env_with_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    env = Env(tmp_path_factory.mktemp("openapi"))
    fill_store(env.store, plant_data(), {"m1": hourly(datetime(2026, 3, 9, tzinfo=UTC), 30, 1.0),
                                         "m3": hourly(datetime(2026, 3, 9, tzinfo=UTC), 10, 2.0)})
    yield env


@pytest.fixture(scope="module")
def server(env_with_data: Env) -> Iterator[Server]:
    with Server(env_with_data.app()) as srv, httpx.Client(base_url=srv.url) as c:
        h = env_with_data.h("admin")
        c.post("/v1/rules", json={"id": "r1", "name": "peak", "metric": "power", "threshold": 1.0}, headers=h)
        c.post("/v1/offsets", json={"kind": "sink", "quantity": 1, "unit": "t", "applies_on": "2026-03-09",
                                    "evidence": "survey"}, headers=h)
        c.post("/v1/allowances", json={"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z",
                                       "amount": 5, "unit": "t"}, headers=h)
        c.post("/v1/instruments", json={"kind": "gec", "serial_first": "GEC-000001", "serial_last": "GEC-000002",
                                        "valid_from": "2026-01-01", "valid_to": "2026-12-31", "evidence": "record"},
               headers=h)
        yield srv


@pytest.fixture(scope="module")
def api_schema(server: Server) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    return schema.exclude(path="/v1/stream")  # an endless stream (tested over a real server in test_live)


# The app's operations, known without starting it (the schema does not depend on the data).
OPERATIONS = sorted((path, method.upper()) for path, item in Env.schema_paths().items() for method in item
                    if path != "/v1/stream")


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_no_server_errors_and_responses_match_the_schema(api_schema: schemathesis.BaseSchema, env_with_data: Env,
                                                         server: Server, path: str, method: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=server.url, headers=env_with_data.h("admin"),
                               checks=[not_a_server_error, response_schema_conformance, content_type_conformance])

    run()
