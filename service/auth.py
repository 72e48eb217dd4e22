"""Bearer-token access: read < write < admin (docs/api.md).

Read tokens read; write tokens (members) also write review notes and actions; admin
tokens also write targets and costs, and run syncs and pushes. A route answers 403 to a
token whose role is below its own.

A caller is named for audit records by the token's role and 1-based position in
its list plus an HMAC-SHA256 of the token keyed with the server's audit secret
(``admin#2 (hmac:1f2e3d4c5b6a7988)``), so a push or a target change can be traced to a
token without storing it, and the name cannot be checked against a guessed token
without the secret. The secret is ISKPI_AUDIT_SECRET, or one generated on first use and
kept in the store (service.store_meta), so names stay the same across restarts.

A token may be given a label in its list, ``label:token`` (``ISKPI_ADMIN_TOKENS=ops:…,
looker:…``); the caller is then named by the label (``looker (hmac:…)``). A label is a
letter then up to 31 letters, digits, ``_``, ``.`` or ``-``; the whole entry is accepted
as the token too, so a plain token that happens to contain a colon keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import re
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

Access = Literal["read", "write", "admin"]
RANK: dict[str, int] = {"read": 0, "write": 1, "admin": 2}

_bearer = HTTPBearer(auto_error=False)
UNAUTHORIZED = "a valid bearer token is required"


@dataclass(frozen=True)
class Caller:
    """Who called: the access the token grants and a printable name that is not the token."""

    access: Access
    name: str


_LABEL = re.compile(r"([A-Za-z][A-Za-z0-9_.-]{0,31}):(.+)", re.DOTALL)


def split_label(entry: str) -> tuple[str | None, str]:
    """A token list entry as (label, token); (None, entry) without a ``label:`` prefix."""
    labelled = _LABEL.fullmatch(entry)
    if labelled is None:
        return None, entry
    return labelled.group(1), labelled.group(2)


def _match(presented: str, tokens: list[SecretStr]) -> tuple[int, str | None] | None:
    """The presented token's 1-based position and label; every entry compared in constant time."""
    found: tuple[int, str | None] | None = None
    given = presented.encode()
    for position, entry in enumerate(tokens, start=1):
        value = entry.get_secret_value()
        label, token = split_label(value)
        # Both comparisons always run: the time taken says nothing about which matched.
        whole = hmac.compare_digest(given, value.encode())
        bare = hmac.compare_digest(given, token.encode())
        if whole or bare:
            found = (position, label)
    return found


def audit_name(
    access: Access, position: int, token: str, key: bytes, label: str | None = None
) -> str:
    """The caller's name in audit records: label, or role and position, and the token's HMAC."""
    fingerprint = hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:16]
    return f"{label or f'{access}#{position}'} (hmac:{fingerprint})"


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


def token_access(settings: Settings, presented: str) -> tuple[Access, int, str | None] | None:
    """The access a presented token grants, its 1-based position and its label, or None."""
    admin = _match(presented, settings.admin_tokens)
    write = _match(presented, settings.write_tokens)
    read = _match(presented, settings.read_tokens)
    if admin is not None:
        return "admin", *admin
    if write is not None:
        return "write", *write
    if read is not None:
        return "read", *read
    return None


def caller_of(
    settings: SettingsDep, credentials: HTTPAuthorizationCredentials | None, request: Request
) -> Caller:
    """The caller a bearer token identifies, or 401."""
    if credentials is not None:
        found = token_access(settings, credentials.credentials)
        if found is not None:
            access, position, label = found
            key = audit_key(request)
            name = audit_name(access, position, credentials.credentials, key, label)
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


async def require_write(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    caller = caller_of(settings, credentials, request)
    if RANK[caller.access] < RANK["write"]:
        raise Forbidden("this route needs a write (member) or admin token")
    return caller


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
WriteAccess = Annotated[Caller, Depends(require_write)]
AdminAccess = Annotated[Caller, Depends(require_admin)]
