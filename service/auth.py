"""Bearer-token access: read < write < admin (SPEC §7).

Read tokens read; write tokens (members) also write review notes and actions; admin
tokens also write targets and costs, and run syncs and pushes. A route answers 403 to a
token whose role is below its own.

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

from service.deps import SettingsDep
from service.errors import Forbidden, Unauthorized

Access = Literal["read", "write", "admin"]
RANK: dict[str, int] = {"read": 0, "write": 1, "admin": 2}

_bearer = HTTPBearer(auto_error=False)


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


def caller_of(settings: SettingsDep, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """The caller a bearer token identifies, or 401."""
    if credentials is not None:
        presented = credentials.credentials
        admin = _match(presented, settings.admin_tokens)
        write = _match(presented, settings.write_tokens)
        read = _match(presented, settings.read_tokens)
        if admin is not None:
            return _caller("admin", admin, presented)
        if write is not None:
            return _caller("write", write, presented)
        if read is not None:
            return _caller("read", read, presented)
    raise Unauthorized("a valid bearer token is required")


async def require_read(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return caller_of(settings, credentials)


async def require_write(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    caller = caller_of(settings, credentials)
    if RANK[caller.access] < RANK["write"]:
        raise Forbidden("this route needs a write (member) or admin token")
    return caller


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    caller = caller_of(settings, credentials)
    if caller.access != "admin":
        raise Forbidden("this route needs an admin token")
    return caller


ReadAccess = Annotated[Caller, Depends(require_read)]
WriteAccess = Annotated[Caller, Depends(require_write)]
AdminAccess = Annotated[Caller, Depends(require_admin)]
