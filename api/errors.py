"""The API's domain errors, one root (`ApiError`) with the HTTP status of each; `api.main` maps them to responses
in one place (`add_error_handlers`), so routes and the code under them just raise."""

from __future__ import annotations

from typing import ClassVar


class ApiError(Exception):
    """A request the API refuses for a reason of its domain; the message is the response's `detail`."""

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
