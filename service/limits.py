"""What one request may cost: its body, its headers, and the big /v1/kpis builds at once.

- **Bodies**: every route takes at most DEFAULT_BODY_BYTES (64 KiB), PUT /v1/targets at most
  MAX_BODY_BYTES (8 MiB: its list is capped at MAX_TARGETS = 20,000 targets, about 157 bytes
  each with 18-character Salesforce ids, 3.1 MB, with room for pretty-printed JSON). A larger
  body is refused with 413 before it is read, whether it announces its length or streams in
  chunks. (100,000 targets were 15.7 MB and 5.7 s of validation, 416 MB peak: too much for
  one request.)
- **Headers**: the request line and headers together take at most MAX_HEADER_BYTES (16 KiB):
  HeaderLimit answers a larger head 431. `iskpi serve` also runs uvicorn's h11 parser with
  that limit on a head still arriving (a slow, endless one is a 400 and the connection
  closed; see service.cli.sync.serve); h11 lets a head that arrives whole through to us.
- **Authentication before the body**: service.auth.AuthBeforeBody answers 401 to a /v1
  request with a body and no known token, without reading the body.
- **Big KPI builds**: at most ``ISKPI_API_KPI_BUILDS`` (default 2) uncached /v1/kpis answers
  estimated at more than BIG_ANSWER_ROWS rows are computed at once; another waits up to
  ``ISKPI_API_KPI_BUILD_WAIT_SECONDS`` (default 30) for a turn, then gets 503 with
  Retry-After. Small answers never wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Busy

DEFAULT_BODY_BYTES = 64 * 2**10
MAX_TARGETS = 20_000
MAX_BODY_BYTES = 8 * 2**20
# (method, path) → the route's body limit; every other route has DEFAULT_BODY_BYTES.
BODY_LIMITS: dict[tuple[str, str], int] = {("PUT", "/v1/targets"): MAX_BODY_BYTES}
MAX_HEADER_BYTES = 16 * 2**10
BIG_ANSWER_ROWS = 20_000
BUSY_RETRY_AFTER_SECONDS = 5


# Rough sizes for the estimate: days per period, ids per unnamed team or rep scope, values
# per breakdown. An estimate only decides whether an answer waits its turn.
_PERIOD_DAYS = {"day": 1, "week": 7, "month": 30, "quarter": 91, "fiscal_year": 365}
_SCOPE_IDS = {"org": 1, "team": 5, "rep": 30}
_BY_VALUES = {"weekday": 7, "hour": 24}


def estimated_rows(
    kpis: int, grain: str, days: int, scope: str, named_id: bool, by: str | None
) -> int:
    """About how many rows a /v1/kpis answer has, before it is computed."""
    periods = days // _PERIOD_DAYS.get(grain, 1) + 1
    ids = 1 if named_id else _SCOPE_IDS.get(scope, 30)
    values = 1 if by is None else _BY_VALUES.get(by, 10)
    return kpis * periods * ids * values


def body_limit(method: str, path: str) -> int:
    """The largest body the route takes, in bytes."""
    return BODY_LIMITS.get((method, path.rstrip("/") or "/"), DEFAULT_BODY_BYTES)


class BodyLimit:
    """ASGI middleware refusing a request body over its route's limit with a 413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = body_limit(scope["method"], scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _refuse(max_bytes, scope, receive, send)
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            # Past the limit: answer 413 now, and tell the app the client went away, so it
            # stops reading; whatever it still tries to send is dropped.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    refused = True
                    await _refuse(max_bytes, scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except Exception:
            if not refused:
                raise


async def _refuse(max_bytes: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse(
        {"detail": f"the request body is larger than {max_bytes:,} bytes"},
        status_code=413,
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)


class HeaderLimit:
    """ASGI middleware answering 431 to a request whose line and headers exceed the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.max_bytes:
                response = JSONResponse(
                    {"detail": f"the request's headers are larger than {self.max_bytes:,} bytes"},
                    status_code=431,
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BuildGate:
    """At most ``slots`` big answers computed at once; a big one waits ``wait_seconds`` at most."""

    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._semaphore: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def turn(self, big: bool) -> AsyncIterator[None]:
        """Hold a slot while a big answer is built (raises Busy after the wait); small: none."""
        if not big:
            yield
            return
        if self._semaphore is None:  # made on first use, in the server's event loop
            self._semaphore = asyncio.Semaphore(self.slots)
        semaphore = self._semaphore
        try:
            await asyncio.wait_for(semaphore.acquire(), self.wait_seconds)
        except TimeoutError:
            raise Busy(
                f"{self.slots} large KPI answers are being computed; retry shortly",
                retry_after=BUSY_RETRY_AFTER_SECONDS,
            ) from None
        try:
            yield
        finally:
            semaphore.release()
