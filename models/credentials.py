"""Credentials a CRM hands out at run time: the refresh token a rotating connected app issues.

A connected app with refresh token rotation invalidates a refresh token once it is used, so
the newest one must outlive the process that received it: the next sync, a push, a restart
or another replica needs it. It is kept in ``sync_state`` under the pseudo-source ``oauth``
(a CRM source's rows are cleared by a full sync; these never are), beside a fingerprint of
the configured token it descends from. When the configured token changes, the fingerprint
no longer matches and the configured token wins again. The token is never logged, and no
API answer reads this row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from models.store import save_state
from models.sync import SyncState

CREDENTIALS_SOURCE = "oauth"


def load_refresh_token(conn: Connection, crm: str, configured: str) -> str | None:
    """The latest refresh token of ``crm``, if it descends from the ``configured`` fingerprint."""
    state = conn.execute(
        select(SyncState.state).where(
            SyncState.source == CREDENTIALS_SOURCE, SyncState.stream == crm
        )
    ).scalar_one_or_none()
    if not isinstance(state, dict) or state.get("configured") != configured:
        return None
    token = state.get("refresh_token")
    return token if isinstance(token, str) and token else None


def save_refresh_token(
    conn: Connection, crm: str, configured: str, token: str, at: datetime
) -> None:
    """Keep ``crm``'s newest refresh token (in the caller's transaction)."""
    save_state(
        conn, CREDENTIALS_SOURCE, crm, {"configured": configured, "refresh_token": token}, at
    )
