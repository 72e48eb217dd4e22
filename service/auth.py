"""Bearer-token access: read tokens read, admin tokens read and write (SPEC §7).

A caller is named for audit records by the token's role and 1-based position in
its list plus a short SHA-256 fingerprint (``admin#2 (sha256:1f2e3d4c)``), so a
push or a target change can be traced to a token without ever storing it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends
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


def _caller(access: Access, position: int, token: str) -> Caller:
    fingerprint = hashlib.sha256(token.encode()).hexdigest()[:8]
    return Caller(access=access, name=f"{access}#{position} (sha256:{fingerprint})")


def token_access(settings: Settings, presented: str) -> tuple[Access, int] | None:
    """The access a presented token grants and its 1-based position in its list, or None."""
    admin = _match(presented, settings.admin_tokens)
    read = _match(presented, settings.read_tokens)
    if admin is not None:
        return "admin", admin
    if read is not None:
        return "read", read
    return None


def caller_of(settings: SettingsDep, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """The caller a bearer token identifies, or 401."""
    if credentials is not None:
        found = token_access(settings, credentials.credentials)
        if found is not None:
            return _caller(found[0], found[1], credentials.credentials)
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
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return caller_of(settings, credentials)


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    caller = caller_of(settings, credentials)
    if caller.access != "admin":
        raise Forbidden("this route needs an admin token")
    return caller


ReadAccess = Annotated[Caller, Depends(require_read)]
AdminAccess = Annotated[Caller, Depends(require_admin)]
