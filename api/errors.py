"""The API's errors, one root (`ApiError`) with the HTTP status of each; `api.main.add_error_handlers` is the one
place that turns them into responses (through `error_response`, which the body-size middleware also answers
with before the app runs), so routes and the code under them just raise."""

from __future__ import annotations

from typing import ClassVar

from starlette.responses import JSONResponse


class ApiError(Exception):
    """The root of the API's errors: a request it refuses for a reason of its domain (or, status 500, a server
    that is itself wrong); the message is the response's `detail`."""

    status_code: ClassVar[int] = 400


class Forbidden(ApiError):
    """The key may not do this (beyond its role check, e.g. give sites it does not have)."""

    status_code = 403


class NotFound(ApiError, LookupError):
    """No such id (rule, alert, entry, meter, area, site...) for this site."""

    status_code = 404


class Conflict(ApiError, ValueError):
    """A change that contradicts the stored state (e.g. acknowledging a resolved alert, a serial counted twice)."""

    status_code = 409


class Invalid(ApiError, ValueError):
    """A request whose content cannot be used; answered as a 422 in FastAPI's own validation format (the one
    documented in the OpenAPI), naming where in the request (`("body", "target")`) and why."""

    status_code = 422

    def __init__(self, where: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.where = where


class BodyTooLarge(ApiError):
    """A request body above the configured limit (api.limits.BodyLimit)."""

    status_code = 413

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"request body larger than {max_bytes} bytes")


def error_response(exc: ApiError) -> JSONResponse:
    """An ApiError as its status and `{"detail": message}`."""
    return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)
