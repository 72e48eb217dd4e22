"""GET /v1/teams: the teams, inside sales or field sales, with their reps and skill levels."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from kpi import KpiContext, SkillLevel, TeamKind, list_teams, rep_levels
from service.auth import ReadAccess
from service.deps import EngineDep, KpiContextDep
from service.routers.common import READ_RESPONSES

router = APIRouter(tags=["teams"], responses=READ_RESPONSES)


class TeamRepOut(BaseModel):
    id: str = Field(examples=["hubspot:2001"], description="<source>:<crm id>")
    name: str
    email: str | None
    level: SkillLevel = Field(
        description="skill level today: the override set with PUT /v1/reps/{id}, else from tenure"
    )
    active: bool


class TeamOut(BaseModel):
    id: str = Field(examples=["hubspot:t1"], description="<source>:<crm id>")
    name: str
    kind: TeamKind = Field(
        description="is: inside sales; fs: field sales (ISKPI_FIELD_SALES_TEAMS)"
    )
    reps: list[TeamRepOut]


class TeamsOut(BaseModel):
    data: list[TeamOut]


def teams_with_levels(engine: Engine, ctx: KpiContext, kind: str) -> list[dict[str, Any]]:
    """The teams of ``kind`` as /v1/teams lists them, each rep with its level today."""
    with engine.connect() as conn:
        teams = list_teams(conn, ctx, kind=kind)
        levels = {rep.rep_id: rep.level for rep in rep_levels(conn, ctx)}
    out = []
    for team in teams:
        listed = team.as_dict()
        for rep in listed["reps"]:
            rep["level"] = levels.get(rep["id"], "junior")
        out.append(listed)
    return out


@router.get("/v1/teams", response_model=TeamsOut)
def get_teams(
    _: ReadAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    kind: Annotated[
        Literal["is", "fs", "all"],
        Query(description="is (inside sales, the default), fs (field sales) or all"),
    ] = "is",
) -> TeamsOut:
    """Non-deleted teams with their non-deleted reps, ordered by id.

    Field-sales teams (ISKPI_FIELD_SALES_TEAMS) are listed with `kind=fs` or `kind=all` only.
    """
    return TeamsOut.model_validate({"data": teams_with_levels(engine, ctx, kind)})
