"""GET /v1/me: what the presented token may do, so a client shows only the forms it may use."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.auth import Access, ReadAccess
from service.routers.common import READ_RESPONSES

router = APIRouter(tags=["meta"], responses=READ_RESPONSES)


class CallerOut(BaseModel):
    role: Access = Field(
        description="read: read only; write (a member): also review notes and actions; "
        "admin: also targets, costs, syncs and pushes"
    )
    name: str = Field(
        description="the name audit records give this token: its label or role and position, "
        "and a keyed hash (never the token)",
        examples=["write#1 (hmac:1f2e3d4c5b6a7988)"],
    )


@router.get("/v1/me", response_model=CallerOut)
def get_me(caller: ReadAccess) -> CallerOut:
    """The caller's role and audit name."""
    return CallerOut(role=caller.access, name=caller.name)
