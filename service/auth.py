"""Bearer-token access: read tokens read, admin tokens read and write (SPEC §7)."""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.deps import SettingsDep

Access = Literal["read", "admin"]

_bearer = HTTPBearer(auto_error=False)


def _matches(presented: str, tokens: list[str]) -> bool:
    # Compare against every token in constant time, so timing reveals nothing.
    found = False
    for token in tokens:
        found |= hmac.compare_digest(presented.encode(), token.encode())
    return found


def access_of(settings: SettingsDep, credentials: HTTPAuthorizationCredentials | None) -> Access:
    """The access a bearer token grants, or 401."""
    if credentials is not None:
        presented = credentials.credentials
        if _matches(presented, [t.get_secret_value() for t in settings.admin_tokens]):
            return "admin"
        if _matches(presented, [t.get_secret_value() for t in settings.read_tokens]):
            return "read"
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="a valid bearer token is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_read(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Access:
    return access_of(settings, credentials)


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Access:
    if access_of(settings, credentials) != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this route needs an admin token")
    return "admin"


ReadAccess = Annotated[Access, Depends(require_read)]
AdminAccess = Annotated[Access, Depends(require_admin)]
