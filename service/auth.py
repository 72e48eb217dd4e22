"""Bearer-token access: read tokens read, admin tokens read and write (SPEC §7).

A caller is named for audit records by the token's role and 1-based position in
its list plus an HMAC-SHA256 of the token keyed with the server's audit secret
(``admin#2 (hmac:1f2e3d4c5b6a7988)``), so a push or a target change can be traced to a
token without storing it, and the name cannot be checked against a guessed token
without the secret. The secret is ISKPI_AUDIT_SECRET, or one generated on first use and
kept in the store (service.store_meta), so names stay the same across restarts.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from service.deps import SettingsDep
from service.errors import Forbidden, Unauthorized
from service.settings import Settings

Access = Literal["read", "admin"]

_bearer = HTTPBearer(auto_error=False)
UNAUTHORIZED = "a valid bearer token is required"


@dataclass(frozen=True)
class Caller:
    """Who called: the access the token grants and a printable name that is not the token."""

    access: Access
    name: str


def _match(presented: str, tokens: list[SecretStr]) -> int | None:
    """1-based position of the presented token; every token compared in constant time."""
    found: int | None = None
    for position, token in enumerate(tokens, start=1):
        if hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
            found = position
    return found


def audit_name(access: Access, position: int, token: str, key: bytes) -> str:
    """The caller's name in audit records: role, position and the token's HMAC under ``key``."""
    fingerprint = hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:16]
    return f"{access}#{position} (hmac:{fingerprint})"


def audit_key(request: Request) -> bytes:
    """The app's audit key: ISKPI_AUDIT_SECRET, else the store's generated secret (cached)."""
    key = getattr(request.app.state, "audit_key", None)
    if isinstance(key, bytes):
        return key
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    if settings.audit_secret is not None:
        key = settings.audit_secret.get_secret_value().encode()
    else:
        from service import store_meta

        key = store_meta.audit_secret(request.app.state.engine).encode()
    request.app.state.audit_key = key
    return key


def token_access(settings: Settings, presented: str) -> tuple[Access, int] | None:
    """The access a presented token grants and its 1-based position in its list, or None."""
    admin = _match(presented, settings.admin_tokens)
    read = _match(presented, settings.read_tokens)
    if admin is not None:
        return "admin", admin
    if read is not None:
        return "read", read
    return None


def caller_of(
    settings: SettingsDep, credentials: HTTPAuthorizationCredentials | None, request: Request
) -> Caller:
    """The caller a bearer token identifies, or 401."""
    if credentials is not None:
        found = token_access(settings, credentials.credentials)
        if found is not None:
            access, position = found
            name = audit_name(access, position, credentials.credentials, audit_key(request))
            return Caller(access=access, name=name)
    raise Unauthorized(UNAUTHORIZED)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" and token else None
    return None


def _carries_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class AuthBeforeBody:
    """ASGI middleware: a /v1 request with a body and no known token is a 401, body unread.

    FastAPI reads and parses a body before it runs the route's dependencies, the token
    check among them; a 20 MB body without a token would cost its reading and parsing.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/") and _carries_body(scope):
            token = _bearer_token(scope)
            if token is None or token_access(self.settings, token) is None:
                response = JSONResponse(
                    {"detail": UNAUTHORIZED},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer", "Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def require_read(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return caller_of(settings, credentials, request)


async def require_admin(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    caller = caller_of(settings, credentials, request)
    if caller.access != "admin":
        raise Forbidden("this route needs an admin token")
    return caller


ReadAccess = Annotated[Caller, Depends(require_read)]
AdminAccess = Annotated[Caller, Depends(require_admin)]
