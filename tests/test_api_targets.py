"""Targets through the API and the CLI (docs/cli.md, docs/targets.md, docs/api.md), on SQLite and PostgreSQL.

Levels, status and reasons round-trip through GET and PUT /v1/targets, revisions through
GET /v1/targets/history; POST /v1/targets/allocate splits a parent target (sums, ties,
skill levels, field sales left out); PUT /v1/reps/{id} overrides a skill level; POST
/v1/plan answers the amount path; `iskpi targets allocate` is a dry run unless --apply.

"Now" is 10 Dec 2026 12:00 JST: the trailing three complete months are September–November
2026 (19 + 21 + 19 = 59 business days, JP holidays); December has 23.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from connectors.records import Call, Record, Rep, Team
from kpi import KpiContext, list_targets, rep_levels
from models import store
from models.crm import TABLE_BY_KIND
from service.app import create_app
from service.db import make_engine, migrate
from service.settings import Settings

H: Final = "hubspot"
READ, ADMIN = "read-token-targets", "admin-token-targets"
NOW = datetime(2026, 12, 10, 3, 0, tzinfo=UTC)
DEC = "2026-12-01"
# What the service's context is with ISKPI_FIELD_SALES_TEAMS=Field.
FS_CTX = KpiContext(timezone="Asia/Tokyo", holidays="JP", now=NOW, field_sales_teams=("Field",))

# --- a small store (helpers copied, not imported from other test modules) -----------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def put(engine: Engine, records: Iterable[Record]) -> None:
    """Store records the way the sync does: one upsert per kind."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_kind.setdefault(record.kind, []).append(record.as_row())
    with engine.begin() as conn:
        for kind, rows in by_kind.items():
            store.upsert_records(conn, TABLE_BY_KIND[kind], rows, datetime.now(UTC))


def call(crm_id: str, when: str, rep: str) -> Call:
    return Call(
        source=H,
        crm_id=crm_id,
        occurred_at=at(when),
        outcome="connected",
        direction="outbound",
        duration_ms=90_000,
        rep_crm_id=rep,
    )


def calls(rep: str, month: str, count: int) -> list[Call]:
    """``count`` calls on the 1st, 2nd, … of ``month`` (YYYY-MM), 10:00 JST."""
    return [call(f"{rep}-{month}-{i}", f"{month}-{i + 1:02d}T01:00", rep) for i in range(count)]


# Tokyo (t1) is inside sales; "Field" (t9) is field sales. First activities: r1 2 Jun 2025
# (senior on 10 Dec 2026), r2 11 May 2026 (mid), r3 1 Sep 2026 (junior).
#
#          calls Sep–Nov
#   r1          6         (2 a month)
#   r2          3         (October)
#   r3          1         (1 Sep)
#   r4 (FS)    10         (October)
#   r5 (inactive, nothing)
PEOPLE: list[Record] = [
    Team(source=H, crm_id="t1", name="Tokyo"),
    Team(source=H, crm_id="t9", name="Field"),
    Rep(source=H, crm_id="r1", name="Aiko", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Ben", team_crm_id="t1"),
    Rep(source=H, crm_id="r3", name="Chie", team_crm_id="t1"),
    Rep(source=H, crm_id="r4", name="Fumi", team_crm_id="t9"),
    Rep(source=H, crm_id="r5", name="Left", team_crm_id="t1", active=False),
]
HISTORY: list[Record] = [
    *PEOPLE,
    call("r1-first", "2025-06-02T01:00", "r1"),
    call("r2-first", "2026-05-11T01:00", "r2"),
    *calls("r1", "2026-09", 2),
    *calls("r1", "2026-10", 2),
    *calls("r1", "2026-11", 2),
    *calls("r2", "2026-10", 3),
    call("r3-first", "2026-09-01T01:00", "r3"),
    *calls("r4", "2026-10", 10),
]


def settings() -> Settings:
    return Settings(
        _env_file=None,
        database_url="sqlite://",
        timezone="Asia/Tokyo",
        holidays="JP",
        read_tokens=[SecretStr(READ)],
        admin_tokens=[SecretStr(ADMIN)],
        now=NOW,
        field_sales_teams=["Field"],
    )


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    put(engine, HISTORY)
    app = create_app(settings(), engine)
    assert app.state.kpi == FS_CTX  # ISKPI_FIELD_SALES_TEAMS=Field
    with TestClient(app) as test_client:
        yield test_client


def auth(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def loc_of(response: Any) -> list[Any]:
    """The location of a 422's first item (FastAPI's own, or the engine's refusal)."""
    assert response.status_code == 422, response.text
    return list(response.json()["detail"][0]["loc"])


def target(kpi: str, level: str, value: float | None, **kw: Any) -> dict[str, Any]:
    return {
        "kpi": kpi,
        "grain": "month",
        "period_start": DEC,
        "scope": "org",
        "level": level,
        "value": value,
        **kw,
    }


def rep_values(client: TestClient, kpi: str, level: str = "achievement") -> dict[str, Any]:
    listed = ok(
        client.get(
            "/v1/targets", params={"kpi": kpi, "scope": "rep", "level": level}, headers=auth()
        )
    )
    return {t["id"]: (t["value"], t["status"]) for t in listed["data"]}


# --- GET, PUT /v1/targets and the history ---------------------------------------------------------


def test_targets_round_trip_with_levels_status_reasons_and_history(client: TestClient) -> None:
    first = [
        target("calls", "achievement", 1000),
        target("calls", "minimum", 900),
        target("calls", "stretch", 1100, status="confirmed", reason="agreed at the kick-off"),
    ]
    assert ok(client.put("/v1/targets", json=first, headers=auth())) == {"stored": 3}
    listed = ok(client.get("/v1/targets", headers=auth(READ)))["data"]
    # Every level, minimum to stretch; a draft has no revision, so no reason.
    assert listed == [
        {
            "kpi": "calls",
            "grain": "month",
            "period_start": DEC,
            "scope": "org",
            "id": "org",
            "level": level,
            "value": value,
            "status": status,
            "reason": reason,
        }
        for level, value, status, reason in (
            ("minimum", 900, "draft", None),
            ("achievement", 1000, "draft", None),
            ("stretch", 1100, "confirmed", "agreed at the kick-off"),
        )
    ]
    only = ok(client.get("/v1/targets", params={"level": "stretch"}, headers=auth(READ)))["data"]
    assert [t["level"] for t in only] == ["stretch"]
    drafts = ok(client.get("/v1/targets", params={"status": "draft"}, headers=auth(READ)))["data"]
    assert [t["level"] for t in drafts] == ["minimum", "achievement"]
    # Confirming a draft needs no reason (nothing agreed changes) and is a revision.
    confirm = [target("calls", "achievement", 1000, status="confirmed")]
    assert ok(client.put("/v1/targets", json=confirm, headers=auth())) == {"stored": 1}
    # A confirmed value changed without a reason: 422 at the item's reason; the batch's other
    # change is not stored either.
    batch = [target("calls", "minimum", 950), target("calls", "achievement", 1200)]
    refused = client.put("/v1/targets", json=batch, headers=auth())
    assert loc_of(refused) == ["body", 1, "reason"]
    assert "needs a reason" in refused.json()["detail"][0]["msg"]
    batch[1]["reason"] = "a bigger list from marketing"
    assert ok(client.put("/v1/targets", json=batch, headers=auth())) == {"stored": 2}
    listed = ok(client.get("/v1/targets", headers=auth(READ)))["data"]
    assert [(t["level"], t["value"], t["status"], t["reason"]) for t in listed] == [
        ("minimum", 950, "draft", None),
        ("achievement", 1200, "confirmed", "a bigger list from marketing"),
        ("stretch", 1100, "confirmed", "agreed at the kick-off"),
    ]
    # Deleting a confirmed target is a revision to null, with its reason.
    gone = [target("calls", "stretch", None, reason="no stretch this month")]
    assert ok(client.put("/v1/targets", json=gone, headers=auth())) == {"stored": 1}
    history = ok(client.get("/v1/targets/history", params={"kpi": "calls"}, headers=auth(READ)))
    got = [
        (r["level"], r["old_value"], r["new_value"], r["old_status"], r["new_status"], r["reason"])
        for r in history["data"]
    ]
    assert got == [  # newest first
        ("stretch", 1100, None, "confirmed", None, "no stretch this month"),
        ("achievement", 1000, 1200, "confirmed", "confirmed", "a bigger list from marketing"),
        ("achievement", 1000, 1000, "draft", "confirmed", None),
        ("stretch", None, 1100, None, "confirmed", "agreed at the kick-off"),
    ]
    # Who: the admin token's audit name, never the token.
    assert {r["who"] for r in history["data"]} == {history["data"][0]["who"]}
    assert history["data"][0]["who"].startswith("admin#1 (hmac:")
    assert ADMIN not in str(history)
    first_row = history["data"][0]
    assert set(first_row) == {
        "kpi",
        "grain",
        "period_start",
        "scope",
        "id",
        "level",
        "old_value",
        "new_value",
        "old_status",
        "new_status",
        "reason",
        "who",
        "at",
    }
    assert (first_row["grain"], first_row["period_start"], first_row["id"]) == ("month", DEC, "org")
    # The filters: kpi, grain, period_start, scope, id.
    for params, count in (
        ({"grain": "month", "period_start": DEC, "scope": "org", "id": "org"}, 4),
        ({"period_start": "2027-01-01"}, 0),
        ({"scope": "rep"}, 0),
        ({"kpi": "meetings_set"}, 0),
        ({"grain": "week"}, 0),
    ):
        found = ok(client.get("/v1/targets/history", params=params, headers=auth(READ)))["data"]
        assert len(found) == count, params
    # KPI rows carry the three levels: achievement as target, all three in targets.
    rows = ok(
        client.get(
            "/v1/kpis",
            params={"kpi": "calls", "grain": "month", "from": DEC, "to": "2026-12-31"},
            headers=auth(READ),
        )
    )["data"]
    assert rows[0]["target"] == 1200
    assert rows[0]["targets"] == {"minimum": 950, "achievement": 1200, "stretch": None}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"level": "best"}, ["body", 0, "level"]),
        ({"status": "agreed"}, ["body", 0, "status"]),
        ({"value": 2.5}, ["body", 0, "value"]),  # calls are a whole count
        ({"reason": ""}, ["body", 0, "reason"]),
    ],
)
def test_bad_levels_statuses_and_values_are_a_422_at_the_item(
    client: TestClient, change: dict[str, Any], loc: list[Any]
) -> None:
    response = client.put(
        "/v1/targets", json=[{**target("calls", "stretch", 10), **change}], headers=auth()
    )
    assert loc_of(response) == loc
    assert ok(client.get("/v1/targets", headers=auth(READ)))["data"] == []


# --- POST /v1/targets/allocate ---------------------------------------------------------------------


def allocation(kpi: str = "meetings_set", **kw: Any) -> dict[str, Any]:
    body = {"kpi": kpi, "grain": "month", "period_start": DEC, "scope": "team", "id": "hubspot:t1"}
    return {**body, **kw}


def test_allocation_splits_sum_exactly_with_ties_to_the_smaller_id(client: TestClient) -> None:
    # Org, equal: r1 r2 r3 (r4 is field sales, r5 inactive): 10 ÷ 3 = 3⅓ each, floors 3 3 3,
    # the unit left goes to the equal remainders' smallest id, r1.
    body = allocation(scope="org", id="org", value=10, method="equal", dry_run=True)
    split = ok(client.post("/v1/targets/allocate", json=body, headers=auth()))
    assert [(r["id"], r["name"], r["level"], r["share"], r["value"]) for r in split["reps"]] == [
        ("hubspot:r1", "Aiko", "senior", 0.333333, 4),
        ("hubspot:r2", "Ben", "mid", 0.333333, 3),
        ("hubspot:r3", "Chie", "junior", 0.333333, 3),
    ]
    assert (split["mode"], split["dry_run"], split["written"], split["value_source"]) == (
        "split",
        True,
        0,
        "given",
    )
    assert "field_sales_team_ids" not in split
    assert rep_values(client, "meetings_set") == {}  # a dry run writes nothing
    # Skill: junior 0.7, mid 1.0, senior 1.2 (Σ 2.9). 10 × 1.2 / 2.9 = 4.14, 10 / 2.9 = 3.45,
    # 10 × 0.7 / 2.9 = 2.41: floors 4 3 2 (9), the unit left to the largest remainder, r2.
    body = allocation(value=10, method="skill")
    split = ok(client.post("/v1/targets/allocate", json=body, headers=auth()))
    assert [(r["id"], r["weight"], r["value"]) for r in split["reps"]] == [
        ("hubspot:r1", 1.2, 4),
        ("hubspot:r2", 1.0, 4),
        ("hubspot:r3", 0.7, 2),
    ]
    assert sum(r["value"] for r in split["reps"]) == 10
    assert (split["dry_run"], split["written"], split["status"]) == (False, 3, "draft")
    assert rep_values(client, "meetings_set") == {
        "hubspot:r1": (4, "draft"),
        "hubspot:r2": (4, "draft"),
        "hubspot:r3": (2, "draft"),
    }
    # History: calls of September–November, r1 6, r2 3, r3 1: 100 → 60, 30, 10.
    body = allocation("calls", value=100, method="history", level="stretch", confirm=True)
    split = ok(client.post("/v1/targets/allocate", json=body, headers=auth()))
    assert [(r["weight"], r["share"], r["value"]) for r in split["reps"]] == [
        (6, 0.6, 60),
        (3, 0.3, 30),
        (1, 0.1, 10),
    ]
    assert split["trailing_months"] == ["2026-09-01", "2026-10-01", "2026-11-01"]
    assert rep_values(client, "calls", "stretch") == {
        "hubspot:r1": (60, "confirmed"),
        "hubspot:r2": (30, "confirmed"),
        "hubspot:r3": (10, "confirmed"),
    }
    # Confirmed rep targets change only with a reason: the allocation's own field.
    again = allocation("calls", value=90, method="equal", level="stretch")
    assert loc_of(client.post("/v1/targets/allocate", json=again, headers=auth())) == [
        "body",
        "reason",
    ]
    assert rep_values(client, "calls", "stretch")["hubspot:r1"] == (60, "confirmed")
    split = ok(
        client.post(
            "/v1/targets/allocate", json={**again, "reason": "a shorter month"}, headers=auth()
        )
    )
    assert [r["value"] for r in split["reps"]] == [30, 30, 30]
    history = ok(
        client.get("/v1/targets/history", params={"kpi": "calls", "scope": "rep"}, headers=auth())
    )["data"]
    assert {(r["old_value"], r["new_value"], r["reason"]) for r in history[:3]} == {
        (60, 30, "a shorter month"),
        (30, 30, "a shorter month"),
        (10, 30, "a shorter month"),
    }
    # Rates are copied, not split.
    rate = allocation("meeting_conversion_rate", value=0.1, dry_run=True)
    split = ok(client.post("/v1/targets/allocate", json=rate, headers=auth()))
    assert (split["mode"], [(r["share"], r["value"]) for r in split["reps"]]) == (
        "copied",
        [(None, 0.1)] * 3,
    )


def test_allocation_splits_the_stored_parent_and_names_bad_fields(client: TestClient) -> None:
    parent = [{**target("meetings_set", "achievement", 7), "scope": "team", "id": "hubspot:t1"}]
    ok(client.put("/v1/targets", json=parent, headers=auth()))
    split = ok(client.post("/v1/targets/allocate", json=allocation(dry_run=True), headers=auth()))
    # 7 ÷ 3: floors 2 2 2, the unit left to r1 (ties by id).
    assert (split["value"], split["value_source"]) == (7, "stored")
    assert [r["value"] for r in split["reps"]] == [3, 2, 2]
    for change, loc in (
        ({"method": "random"}, ["body", "method"]),
        ({"scope": "rep"}, ["body", "scope"]),
        ({"level": "stretch"}, ["body", "value"]),  # no stretch target stored, none given
        ({"id": "hubspot:t404"}, ["body", "id"]),
        ({"kpi": "nope"}, ["body", "kpi"]),
        ({"value": 7.5}, ["body", "value"]),  # a count splits in whole units
        ({"weights": {"junior": 1}}, ["body", "weights"]),  # weights are for skill
        ({"method": "skill", "weights": {"expert": 2}}, ["body", "weights"]),
        ({"period_start": "2026-12-02"}, ["body", "period_start"]),
        ({"colour": "red"}, ["body", "colour"]),
    ):
        response = client.post("/v1/targets/allocate", json=allocation(**change), headers=auth())
        assert loc_of(response) == loc, change
    assert rep_values(client, "meetings_set") == {}


# --- PUT /v1/reps/{id} -----------------------------------------------------------------------------


def test_rep_level_override_shows_in_levels_and_in_the_skill_split(
    client: TestClient, engine: Engine
) -> None:
    answer = ok(client.put("/v1/reps/hubspot:r3", json={"level": "senior"}, headers=auth()))
    assert (answer["id"], answer["level"], answer["tenure_level"], answer["override"]) == (
        "hubspot:r3",
        "senior",
        "junior",
        "senior",
    )
    assert answer["since"] == "2026-09-01"
    levels = {r.rep_id: r.level for r in rep_levels(engine, FS_CTX)}
    assert (levels["hubspot:r1"], levels["hubspot:r2"], levels["hubspot:r3"]) == (
        "senior",
        "mid",
        "senior",
    )
    # Skill weights now 1.2, 1.0, 1.2 (Σ 3.4): 10 → 3.53, 2.94, 3.53; floors 3 2 3, the two
    # units left to r2 (0.94) and then r1 (0.53, tied with r3: the smaller id).
    body = allocation(value=10, method="skill", dry_run=True)
    split = ok(client.post("/v1/targets/allocate", json=body, headers=auth()))
    assert [(r["level"], r["value"]) for r in split["reps"]] == [
        ("senior", 4),
        ("mid", 3),
        ("senior", 3),
    ]
    back = ok(client.put("/v1/reps/hubspot:r3", json={"level": None}, headers=auth()))
    assert (back["level"], back["override"]) == ("junior", None)
    assert (
        client.put("/v1/reps/hubspot:r404", json={"level": "mid"}, headers=auth()).status_code
        == 404
    )
    assert loc_of(client.put("/v1/reps/hubspot:r3", json={"level": "expert"}, headers=auth())) == [
        "body",
        "level",
    ]
    assert loc_of(client.put("/v1/reps/nope", json={"level": "mid"}, headers=auth())) == [
        "path",
        "id",
    ]
    assert loc_of(client.put("/v1/reps/hubspot:r3", json={}, headers=auth())) == ["body", "level"]


# --- roles ---------------------------------------------------------------------------------------


def test_read_tokens_read_and_only_admin_tokens_write(client: TestClient) -> None:
    writes: list[tuple[str, str, Any]] = [
        ("PUT", "/v1/targets", [target("calls", "achievement", 10)]),
        ("POST", "/v1/targets/allocate", allocation(value=10, dry_run=True)),
        ("PUT", "/v1/reps/hubspot:r1", {"level": "mid"}),
        ("POST", "/v1/targets/push", None),
    ]
    for method, path, body in writes:
        assert client.request(method, path, json=body, headers=auth(READ)).status_code == 403
        assert client.request(method, path, json=body).status_code == 401
    assert ok(client.get("/v1/targets", headers=auth(READ)))["data"] == []
    assert ok(client.get("/v1/targets/history", headers=auth(READ)))["data"] == []
    for method, path, body in writes[:3]:
        assert client.request(method, path, json=body, headers=auth()).status_code == 200, path
    assert len(ok(client.get("/v1/targets/history", headers=auth(READ)))["data"]) == 0  # drafts


# --- plan and suggestion ---------------------------------------------------------------------------


def test_plan_takes_an_amount_and_names_bad_fields(client: TestClient) -> None:
    rates = {
        "meeting_win_rate": 0.25,
        "meeting_conversion_rate": 0.10,
        "effective_contact_rate": 0.30,
    }
    seed = ok(client.post("/v1/plan", json={"won_target": 10, **rates}, headers=auth(READ)))
    # The seed's example: 10 won ÷ 0.25 = 40 meetings ÷ 0.10 = 400 contacts ÷ 0.30 = 1,334 calls.
    assert [(s["stage"], s["value"]) for s in seed["steps"]] == [
        ("won_count", 10),
        ("meetings_set", 40),
        ("effective_contacts", 400),
        ("calls", 1334),
    ]
    assert seed["reps"] == 3  # r1 r2 r3: not the field-sales r4, nor the inactive r5
    old_name = {
        "won_target": 10,
        "win_rate": 0.25,
        **{k: v for k, v in rates.items() if k != "meeting_win_rate"},
    }
    assert ok(client.post("/v1/plan", json=old_name, headers=auth(READ)))["steps"] == seed["steps"]
    # 1,000,000 ÷ 300,000 = 3.33 → 4 won; 4 ÷ 0.25 = 16 meetings; 16 ÷ 0.10 = 160 contacts;
    # 160 ÷ 0.30 = 533.3 → 534 calls.
    amount = {"won_amount_target": 1_000_000, "avg_deal_size": 300_000, **rates}
    answer = ok(client.post("/v1/plan", json=amount, headers=auth(READ)))
    assert (answer["won_target"], answer["won_amount_target"]) == (4, 1_000_000)
    assert answer["avg_deal_size"] == {
        "kpi": "avg_deal_size",
        "value": 300_000,
        "source": "given",
        "numerator": None,
        "denominator": None,
    }
    assert [s["value"] for s in answer["steps"]] == [4, 16, 160, 534]
    for bad, field in (
        ({"won_target": 2.5, **rates}, "won_target"),
        ({"won_target": -1, **rates}, "won_target"),
        ({**rates}, "won_target"),
        ({"won_target": 3, "won_amount_target": 1_000_000, **rates}, "won_amount_target"),
        ({"won_amount_target": -1, **rates}, "won_amount_target"),
        ({"won_target": 3, **rates, "meeting_win_rate": 1.5}, "meeting_win_rate"),
        ({"won_target": 3, **rates, "effective_contact_rate": 0}, "effective_contact_rate"),
    ):
        assert loc_of(client.post("/v1/plan", json=bad, headers=auth(READ))) == ["body", field]


def test_suggestion_answers_three_levels_by_pace(client: TestClient) -> None:
    [org] = ok(client.get("/v1/targets/suggest", params={"kpi": "calls"}, headers=auth(READ)))[
        "data"
    ]
    # September–November: 6 + 3 + 1 + 10 (a field-sales rep's calls still count) = 20 calls
    # over 59 business days, × December's 23 = 460 / 59 = 7.80: 7.02 → 7, 7.80 → 8, 8.58 → 9.
    assert (org["method"], org["business_days"], org["period_start"]) == ("pace", 23, DEC)
    assert org["base"] == round(460 / 59, 6)
    assert (org["minimum"], org["achievement"], org["stretch"]) == (7, 8, 9)
    assert "mean" not in org
    assert [m["business_days"] for m in org["months"]] == [19, 21, 19]


# --- the CLI ---------------------------------------------------------------------------------------


def test_cli_allocate_is_a_dry_run_unless_apply(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    cli_engine = make_engine(f"sqlite:///{database}")
    migrate(cli_engine)
    put(cli_engine, HISTORY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}
    env.update(
        ISKPI_DATABASE_URL=f"sqlite:///{database}",
        ISKPI_NOW=NOW.isoformat(),
        ISKPI_TIMEZONE="Asia/Tokyo",
        ISKPI_HOLIDAYS="JP",
        COLUMNS="200",
    )

    def iskpi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service", "targets", "allocate", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    common = ["--kpi", "meetings_set", "--month", "2026-12", "--scope", "team"]
    common += ["--id", "hubspot:t1", "--method", "skill", "--value", "10"]
    dry = iskpi(*common)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    # The split of the skill test above: r1 senior 4, r2 mid 4, r3 junior 2.
    for rep, name, level, value in (
        ("hubspot:r1", "Aiko", "senior", "4"),
        ("hubspot:r2", "Ben", "mid", "4"),
        ("hubspot:r3", "Chie", "junior", "2"),
    ):
        [line] = [line for line in lines if rep in line]
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        assert (cells[:3], cells[-1]) == ([rep, name, level], value), line
    assert "dry run" in dry.stdout and "--apply" in dry.stdout
    assert list_targets(cli_engine, scope="rep") == []
    done = iskpi(*common, "--level", "minimum", "--apply", "--confirm")
    assert done.returncode == 0, done.stderr
    assert "3 rep targets written as confirmed" in done.stdout
    written = list_targets(cli_engine, scope="rep", level="minimum")
    assert [(t.scope_id, t.value, t.status, t.updated_by) for t in written] == [
        ("hubspot:r1", 4, "confirmed", "cli"),
        ("hubspot:r2", 4, "confirmed", "cli"),
        ("hubspot:r3", 2, "confirmed", "cli"),
    ]
    by_period = iskpi(
        "--kpi", "calls", "--grain", "month", "--period-start", "2026-12-01", "--id", "hubspot:t1"
    )
    assert by_period.returncode == 2 and "value:" in by_period.stderr  # none stored, none given
    bad = iskpi("--kpi", "nope", "--month", "2026-12", "--id", "hubspot:t1", "--value", "3")
    assert bad.returncode == 2 and "kpi:" in bad.stderr
    assert iskpi("--kpi", "calls", "--month", "December").returncode == 2
    cli_engine.dispose()
