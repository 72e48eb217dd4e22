"""The REST API's test settings and bearer tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from service.settings import Settings

READ, WRITE, ADMIN = "read-token-1", "write-token-1", "admin-token-1"
NOW = datetime(2026, 11, 15, 3, 0, tzinfo=UTC)


def settings_for(**kw: Any) -> Settings:
    """Settings for the API under test: Asia/Tokyo with JP holidays, a read, a write and an admin token."""
    return Settings(
        database_url="sqlite://",
        timezone="Asia/Tokyo",
        holidays="JP",
        read_tokens=[SecretStr(READ)],
        write_tokens=[SecretStr(WRITE)],
        admin_tokens=[SecretStr(ADMIN)],
        now=NOW,
        **kw,
    )


def auth(token: str = READ) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}
