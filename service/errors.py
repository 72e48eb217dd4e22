"""The service's errors: each carries its HTTP status, and one handler answers them all.

Tree::

    AppError                  500  the base; ``message``, ``status_code``, ``detail``
    ├── Unauthorized          401  no valid bearer token (with ``WWW-Authenticate: Bearer``)
    ├── Forbidden             403  a token whose role is below the route's (read < write < admin)
    ├── NotFound              404  no such thing (a dashboard file)
    ├── Conflict              409  the request is fine, the state of things refuses it
    │   ├── NotConfigured     409  the service is not set up for the request
    │   │   └── SourceNotConfigured    a source without credentials in the settings
    │   └── Locked            409  another run holds the source's lock
    │       ├── SyncLocked         another sync of the source is running: skip this one
    │       │   └── SyncAlreadyRan another replica already ran this scheduled sync
    │       └── PushLocked         another push to the CRM is running
    ├── Unprocessable         422  a parameter to fix; ``loc`` names it as FastAPI's own 422s do
    ├── UpstreamFailed        502  the CRM failed (5xx or 429 after the retries, a refused token)
    ├── Busy                  503  too many large answers in the making (with ``Retry-After``)
    ├── PushFailed            502  a push the CRM stopped, ``report`` as recorded; 409 when the
    │                              CRM is not set up for it (a field or a permission missing)
    └── PushStopped           409 or 502 (its ``cause``'s): a POST /v1/targets/push that
                                   stopped, with the CRM, its push and the pushes done before

PushFailed and PushStopped carry a push's report, so they are defined beside it, in
service.writeback.push; the rest are here.

Two errors from below the service are answered by the same handler: the KPI engine's
``KpiRequestError`` is a 422 at the parameter, in the query string or else the body (where the
request carried it); FastAPI's ``RequestValidationError`` is its own 422 with each message
prefixed by the parameter it is about. Every body is ``{"detail": ...}``: the message, a list
of 422 items, or a push's ``{"message", "source", "push", "completed"}``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

from kpi import KpiRequestError

if TYPE_CHECKING:
    # FastAPI only for the handler: a sync or a CLI command raising these does not import it.
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse


class AppError(Exception):
    """An error the API answers with ``status_code`` and ``{"detail": detail}``."""

    status_code: ClassVar[int] = HTTPStatus.INTERNAL_SERVER_ERROR.value
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def detail(self) -> Any:
        """What the response body's ``detail`` holds."""
        return self.message

    @property
    def status(self) -> int:
        """The HTTP status of this error (an instance may differ from its class)."""
        return self.status_code


class Unauthorized(AppError):
    """No valid bearer token."""

    status_code = HTTPStatus.UNAUTHORIZED.value
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(AppError):
    """A token without the access the route needs."""

    status_code = HTTPStatus.FORBIDDEN.value


class NotFound(AppError):
    """No such thing."""

    status_code = HTTPStatus.NOT_FOUND.value


class Conflict(AppError):
    """The request is valid but the state of things refuses it."""

    status_code = HTTPStatus.CONFLICT.value


class NotConfigured(Conflict):
    """The requested source has no credentials in the settings."""


class SourceNotConfigured(NotConfigured):
    """The requested source has no credentials in the settings (or is not a source)."""


class Locked(Conflict):
    """Another run holds the lock this one needs."""


class SyncLocked(Locked):
    """Another process is syncing this source right now."""


class SyncAlreadyRan(SyncLocked):
    """Another replica has already run this scheduled sync."""


class PushLocked(Locked):
    """Another push to the same CRM is running."""


class Unprocessable(AppError):
    """A parameter to fix, shaped like FastAPI's own 422 items.

    ``loc`` is where the bad value is: ("query", "from") or ("body", 3, "kpi").
    """

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY.value

    def __init__(self, *loc: str | int, message: str) -> None:
        self.loc = loc
        self.param = ".".join(str(part) for part in loc[1:])
        super().__init__(f"{self.param}: {message}")

    @property
    def detail(self) -> Any:
        return [{"loc": list(self.loc), "msg": self.message, "type": "value_error"}]


class UpstreamFailed(AppError):
    """The CRM failed: a 5xx or 429 that outlived the retries, a refused token, no quota."""

    status_code = HTTPStatus.BAD_GATEWAY.value


class Busy(AppError):
    """The service is at its limit of concurrent large computations: retry after a while."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE.value

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


def _validation_items(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's 422 items, with each message prefixed by the parameter it is about."""
    items: list[dict[str, Any]] = []
    for error in exc.errors():
        loc = [part for part in error.get("loc", ()) if isinstance(part, str | int)]
        named = [str(part) for part in loc[1:]] or [str(part) for part in loc]
        items.append(
            {
                "loc": loc,
                "msg": f"{'.'.join(named)}: {error.get('msg', 'invalid')}",
                "type": error.get("type", "value_error"),
            }
        )
    return items


def _kpi_refusal(request: Request, exc: KpiRequestError) -> Unprocessable:
    # The engine names the parameter, not where it came from: a request without a body
    # carried it in the query string, and so did one whose query string has it.
    if request.method in ("GET", "HEAD") or exc.param in request.query_params:
        return Unprocessable("query", exc.param, message=exc.message)
    at: tuple[int, ...] = () if exc.index is None else (exc.index,)
    return Unprocessable("body", *at, exc.param, message=exc.message)


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """The one exception handler: AppError, the KPI engine's refusals and FastAPI's 422s."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    if isinstance(exc, RequestValidationError):
        return JSONResponse(
            {"detail": _validation_items(exc)},
            status_code=HTTPStatus.UNPROCESSABLE_ENTITY.value,
        )
    if isinstance(exc, KpiRequestError):
        exc = _kpi_refusal(request, exc)
    assert isinstance(exc, AppError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


def handled_errors() -> tuple[type[Exception], ...]:
    """The classes handle_error is registered for (FastAPI looks handlers up by class)."""
    from fastapi.exceptions import RequestValidationError

    return (AppError, KpiRequestError, RequestValidationError)
