"""The API's domain errors (api/errors.py) answered with their status and message through the one handler in
api/main.py."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.errors import Conflict, Forbidden, Invalid, NotFound
from api.main import add_error_handlers


@pytest.mark.parametrize(("error", "status"), [(NotFound("no rule 'r1'"), 404), (Conflict("r1 is taken"), 409),
                                               (Forbidden("needs role admin"), 403)])
def test_domain_errors_become_their_status_with_the_message(error: Exception, status: int) -> None:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/x")
    def fail() -> None:
        raise error

    response = TestClient(app).get("/x")
    assert response.status_code == status
    assert response.json() == {"detail": str(error)}


def test_invalid_is_answered_in_fastapis_validation_format() -> None:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/x")
    def fail() -> None:
        raise Invalid(("body", "target"), "no meter 'm9' in this plant")

    response = TestClient(app).get("/x")
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["body", "target"], "msg": "no meter 'm9' in this plant",
                                           "type": "value_error"}]}


def test_every_error_class_of_the_api_is_under_its_one_root() -> None:
    from api.errors import ApiError, BodyTooLarge
    from api.held import HeldDecided, HeldNotFound, HeldUnplaceable
    from api.settings import SettingsError

    for cls in (HeldDecided, HeldNotFound, HeldUnplaceable, BodyTooLarge, SettingsError):
        assert issubclass(cls, ApiError), cls
    assert issubclass(SettingsError, ValueError) and issubclass(HeldUnplaceable, ValueError)


def test_an_unplaceable_release_and_a_large_body_get_their_status_through_the_one_handler() -> None:
    from api.errors import BodyTooLarge
    from api.held import HeldUnplaceable

    app = FastAPI()
    add_error_handlers(app)

    @app.get("/held")
    def unplaceable() -> None:
        raise HeldUnplaceable("counted_ts is in the future")

    @app.get("/big")
    def big() -> None:
        raise BodyTooLarge(2048)

    client = TestClient(app)
    response = client.get("/held")
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["body", "counted_ts"], "msg": "counted_ts is in the future",
                                           "type": "value_error"}]}
    response = client.get("/big")
    assert response.status_code == 413
    assert response.json() == {"detail": "request body larger than 2048 bytes"}
