"""The review sheets, notes and actions (GET /v1/sheets/*, PUT …/notes, /v1/actions), both engines.

The store is tests/support/sheets.py's; its docstring lists the records. Business days:
November 2026 19, December 2026 23; ISO week 2026-W49 (30 Nov – 6 Dec) has 1 in November
and 4 in December.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, func, select

from kpi import KpiRequestError, Target, compute, put_targets
from models import SheetNote, SheetNoteWrite
from service.app import create_app
from tests.support.api import ADMIN, READ, WRITE, auth, settings_for
from tests.support.kpi_records import CTX, put
from tests.support.sheets import (
    DEC_1_MORNING,
    DEC_3_AFTERNOON,
    DEC_10,
    R1,
    R2,
    SHEETS_FIXTURE,
    T1,
    W49,
    sheet_targets,
)

Clients = Callable[[datetime], TestClient]


@pytest.fixture
def clients(engine: Engine) -> Iterator[Clients]:
    """A client per "now" over one store holding the fixture and its targets."""
    put(engine, SHEETS_FIXTURE)
    put_targets(engine, sheet_targets())
    opened: list[TestClient] = []

    def client_at(now: datetime) -> TestClient:
        settings = settings_for().model_copy(update={"now": now})
        client = TestClient(create_app(settings, engine))
        client.__enter__()
        opened.append(client)
        return client

    yield client_at
    for client in opened:
        client.__exit__(None, None, None)


def get(client: TestClient, path: str, token: str = READ, **params: Any) -> Any:
    response = client.get(path, params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def assert_422(response: Any, *loc: str) -> None:
    assert response.status_code == 422, response.text
    locs = [error["loc"] for error in response.json()["detail"]]
    assert any(list(loc) == found[-len(loc) :] for found in locs), locs


def by_kpi(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["kpi"]: item for item in items}


# --- daily ----------------------------------------------------------------------------------


def test_daily_sheet_midday_check_and_end_of_day(clients: Clients) -> None:
    client = clients(DEC_3_AFTERNOON)
    sheet = get(client, "/v1/sheets/daily", date="2026-12-03", scope="rep", id=R1)
    assert (sheet["period"], sheet["scope_name"], sheet["month_business_days"]) == (
        "2026-12-03",
        "Aiko",
        23,
    )
    counts = by_kpi(sheet["counts"])
    assert list(counts) == [
        "calls",
        "emails_sent",
        "connects",
        "effective_contacts",
        "meetings_set",
    ]
    # calls: December's 2,300 × 1 / 23 = 100 a day; half of it, 50, at 12:00. Through 12:00:
    # d1, d2, d3 (11:59:59) = 3, so 3 / 50 = 0.06; d4 at 12:00:00 exactly is after the check.
    # The whole day: 5 / 100 = 0.05.
    calls = counts["calls"]
    assert (calls["target"], calls["target_source"]) == (pytest.approx(100), "month")
    assert calls["midday"] == {"actual": 3, "target": pytest.approx(50), "progress": 0.06}
    assert calls["end_of_day"] == {"actual": 5, "target": pytest.approx(100), "progress": 0.05}
    # emails: 460 / 23 = 20 a day; 1 (10:00) of 10 at noon, 2 of 20 at the end.
    emails = counts["emails_sent"]
    assert (emails["midday"]["progress"], emails["end_of_day"]["progress"]) == (0.1, 0.1)
    # connects (connect_rate's numerator; no target of its own): d1, d2 by noon; + d4.
    assert (counts["connects"]["midday"]["actual"], counts["connects"]["actual"]) == (2, 3)
    assert counts["connects"]["target"] is None
    # effective contacts (≥ 60 s): d1 by noon; + d4 (90 s) after it. No target.
    effective = counts["effective_contacts"]
    assert (effective["midday"]["actual"], effective["actual"]) == (1, 2)
    assert effective["midday"]["progress"] is None
    # meetings: r1's own day target, 4: 1 (11:00) of 2 at noon, 2 of 4 at the end.
    meetings = counts["meetings_set"]
    assert (meetings["target"], meetings["target_source"]) == (4, "day")
    assert meetings["midday"] == {"actual": 1, "target": 2, "progress": 0.5}
    assert meetings["end_of_day"]["progress"] == 0.5
    rates = by_kpi(sheet["rates"])
    # connect rate 3 / 5 = 0.6 against December's 0.40 (a rate target as is): 1.5.
    assert (rates["connect_rate"]["value"], rates["connect_rate"]["target"]) == (0.6, 0.4)
    assert rates["connect_rate"]["achievement"] == pytest.approx(1.5)
    # meeting conversion 2 meetings / 2 effective contacts = 1.0; no target.
    assert rates["meeting_conversion_rate"]["value"] == 1.0
    assert sheet["notes"] == {"went_well": None, "issues": None, "tomorrow": None}
    # The org has no day target for meetings: 46 / 23 = 2 a day, so 1 of 1 at noon.
    org = by_kpi(get(client, "/v1/sheets/daily", date="2026-12-03")["counts"])
    assert org["meetings_set"]["target_source"] == "month"
    assert org["meetings_set"]["midday"]["progress"] == pytest.approx(1.0)


# --- weekly ---------------------------------------------------------------------------------


def test_weekly_sheet_of_a_week_spanning_two_months(clients: Clients) -> None:
    sheet = get(clients(DEC_10), "/v1/sheets/weekly", week="2026-W49")
    assert (sheet["period_start"], sheet["period_end"], sheet["business_days"]) == (
        "2026-11-30",
        "2026-12-06",
        5,
    )
    kpis = by_kpi(sheet["kpis"])
    # The main four, then every KPI with a target; emails_sent has December's target only,
    # and 30 Nov (a November business day) has none: no week target, not listed.
    assert list(kpis) == ["calls", "connect_rate", "meeting_conversion_rate", "meetings_set"]
    # calls: 1,900 × 1 / 19 (November's part) + 2,300 × 4 / 23 (December's) = 100 + 400 = 500.
    # Actual: n1, n2 (30 Nov) + d1–d5 (3 Dec) = 7; 7 / 500 = 0.014. Previous week: p0–p2 = 3.
    calls = kpis["calls"]
    assert (calls["target"], calls["target_source"]) == (pytest.approx(500), "month")
    assert (calls["actual"], calls["achievement"], calls["previous_actual"]) == (
        7,
        pytest.approx(0.014),
        3,
    )
    assert calls["pace_target"] is None  # the week is over
    # connect rate: (0.30 × 1 + 0.40 × 4) / 5 = 0.38; actual 5 connected / 7 = 0.714…
    rate = kpis["connect_rate"]
    assert rate["target"] == pytest.approx(0.38)
    assert rate["actual"] == pytest.approx(5 / 7)
    assert rate["achievement"] == pytest.approx(5 / 7 / 0.38)
    # meetings: 38 / 19 + 46 × 4 / 23 = 2 + 8 = 10; 2 set: 0.2.
    assert (kpis["meetings_set"]["target"], kpis["meetings_set"]["achievement"]) == (
        pytest.approx(10),
        pytest.approx(0.2),
    )
    # meeting conversion: 2 meetings / 4 effective contacts (n1, n2, d1, d4) = 0.5, no target.
    assert kpis["meeting_conversion_rate"]["actual"] == 0.5
    funnel = sheet["funnel"]
    stages = {s["stage"]: s for s in funnel["stages"]}
    assert stages["calls"]["target"] == pytest.approx(500)
    assert stages["connect_rate"]["below_target"] is False  # 1.88
    assert (funnel["cause"], funnel["bottleneck"]) == ("volume", None)  # calls at 0.014
    assert sheet["notes"] == {"hypotheses": None, "successes": None, "next_focus": None}


def test_weekly_sheet_of_a_running_week_carries_pace(clients: Clients) -> None:
    # Thu 3 Dec: W49's business days elapsed are 30 Nov, 1, 2, 3 Dec = 4 of 5.
    sheet = get(clients(DEC_3_AFTERNOON), "/v1/sheets/weekly", week="2026-W49")
    assert sheet["business_days_elapsed"] == 4
    calls = by_kpi(sheet["kpis"])["calls"]
    # 500 × 4 / 5 = 400; 7 / 400 = 0.0175.
    assert calls["pace_target"] == pytest.approx(400)
    assert calls["pace_achievement"] == pytest.approx(0.0175)
    assert by_kpi(sheet["kpis"])["connect_rate"]["pace_target"] is None  # a rate
    stages = {s["stage"]: s for s in sheet["funnel"]["stages"]}
    assert stages["calls"]["pace_target"] == pytest.approx(400)


# --- monthly and the pace ---------------------------------------------------------------------


def test_monthly_sheet_of_a_running_month(clients: Clients) -> None:
    client = clients(DEC_3_AFTERNOON)
    sheet = get(client, "/v1/sheets/monthly", month="2026-12")
    kpis = by_kpi(sheet["kpis"])
    assert len(kpis) == 36  # every KPI
    # 3 Dec: 3 of December's 23 business days elapsed. calls: 5 of 2,300 (achievement stays
    # actual ÷ target), pace target 2,300 × 3 / 23 = 300, pace achievement 5 / 300.
    calls = kpis["calls"]
    assert (calls["actual"], calls["target"]) == (5, 2300)
    assert calls["achievement"] == pytest.approx(5 / 2300)
    assert calls["pace_target"] == pytest.approx(300)
    assert calls["pace_achievement"] == pytest.approx(5 / 300)
    # meetings: 46 × 3 / 23 = 6; 2 / 6.
    assert kpis["meetings_set"]["pace_target"] == pytest.approx(6)
    assert kpis["meetings_set"]["pace_achievement"] == pytest.approx(2 / 6)
    assert kpis["connect_rate"]["pace_target"] is None  # a rate: compared as is
    assert kpis["won_count"]["pace_target"] is None  # no target
    # Landing forecast: calls run at 5 × 23 / 3.
    forecast = by_kpi(sheet["forecast"]["rows"])
    assert forecast["calls"]["forecast"] == pytest.approx(5 * 23 / 3)
    assert forecast["calls"]["target"] == 2300
    basis = sheet["forecast"]["basis"]
    assert (basis["business_days"], basis["business_days_elapsed"]) == (23, 3)
    reps = {r["rep_id"]: r for r in sheet["reps"]}
    assert list(reps) == [R1, R2]
    assert reps[R1]["kpis"]["calls"]["pace_target"] == pytest.approx(300)
    assert reps[R2]["kpis"]["calls"]["actual"] == 0
    assert set(sheet["notes"]) == {
        "what",
        "why",
        "so_what",
        "now_what",
        "collaboration",
        "next_month",
        "rep_notes",
    }
    # The same two fields on /v1/kpis rows of the running month; not on November's.
    body = get(
        client,
        "/v1/kpis",
        kpi="calls",
        grain="month",
        **{"from": "2026-11-01", "to": "2026-12-31"},
    )
    nov, dec = body["data"]
    assert (nov["pace_target"], nov["pace_achievement"]) == (None, None)
    assert dec["pace_target"] == pytest.approx(300)
    assert dec["pace_achievement"] == pytest.approx(5 / 300)
    team = get(client, "/v1/sheets/monthly", month="2026-12", scope="team", id=T1)
    assert [r["rep_id"] for r in team["reps"]] == [R1, R2]


# --- notes, actions, roles ------------------------------------------------------------------


def test_notes_round_trip_with_the_three_roles(clients: Clients, engine: Engine) -> None:
    client = clients(DEC_3_AFTERNOON)
    body = {"period": "2026-W49", "scope": "org", "notes": {"hypotheses": "list quality"}}
    path = "/v1/sheets/weekly/notes"
    assert client.put(path, json=body, headers=auth(READ)).status_code == 403
    written = client.put(path, json=body, headers=auth(WRITE))
    assert written.status_code == 200, written.text
    assert written.json()["notes"]["hypotheses"] == "list quality"
    assert written.json()["updated"]["hypotheses"]["by"].startswith("write#1 (hmac:")
    # The last writer wins per field; the other fields stay.
    later = {**body, "notes": {"hypotheses": "calling hours", "successes": "=HYPERLINK(1)"}}
    assert client.put(path, json=later, headers=auth(ADMIN)).status_code == 200
    sheet = get(client, "/v1/sheets/weekly", week="2026-W49")
    assert sheet["notes"] == {
        "hypotheses": "calling hours",
        "successes": "=HYPERLINK(1)",
        "next_focus": None,
    }
    # A reader sees who wrote each field last, too.
    assert {field: who["by"].split(" ")[0] for field, who in sheet["notes_updated"].items()} == {
        "hypotheses": "admin#1",
        "successes": "admin#1",
    }
    with engine.connect() as conn:
        log = conn.execute(
            select(
                SheetNoteWrite.field, SheetNoteWrite.old_text, SheetNoteWrite.written_by
            ).order_by(SheetNoteWrite.id)
        ).all()
    assert [(f, old, who.split(" ")[0]) for f, old, who in log] == [
        ("hypotheses", None, "write#1"),
        ("hypotheses", "list quality", "admin#1"),
        ("successes", None, "admin#1"),
    ]
    # Monthly notes per rep; daily notes.
    monthly = {
        "period": "2026-12",
        "scope": "team",
        "id": T1,
        "notes": {"what": "calls low", "rep_notes": {R1: "good hearing"}},
    }
    answer = client.put("/v1/sheets/monthly/notes", json=monthly, headers=auth(WRITE))
    assert answer.status_code == 200, answer.text
    team = get(client, "/v1/sheets/monthly", month="2026-12", scope="team", id=T1)
    assert team["notes"]["rep_notes"] == {R1: "good hearing"}
    assert {r["rep_id"]: r["note"] for r in team["reps"]} == {R1: "good hearing", R2: None}
    daily = {"period": "2026-12-03", "scope": "rep", "id": R1, "notes": {"tomorrow": "call at 10"}}
    assert client.put("/v1/sheets/daily/notes", json=daily, headers=auth(WRITE)).status_code == 200
    got = get(client, "/v1/sheets/daily", date="2026-12-03", scope="rep", id=R1)
    assert got["notes"]["tomorrow"] == "call at 10"
    assert list(got["notes_updated"]) == ["tomorrow"]
    assert sorted(team["notes_updated"]) == [f"rep_notes.{R1}", "what"]


def test_me_names_the_token_s_role(clients: Clients) -> None:
    client = clients(DEC_3_AFTERNOON)
    for token, role in ((READ, "read"), (WRITE, "write"), (ADMIN, "admin")):
        me = get(client, "/v1/me", token=token)
        assert me["role"] == role
        assert me["name"].startswith(f"{role}#1 (hmac:")
        assert token not in me["name"]
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me", headers=auth("not-a-token")).status_code == 401


def test_notes_refusals_name_the_field_and_write_nothing(clients: Clients, engine: Engine) -> None:
    client = clients(DEC_3_AFTERNOON)

    def put_notes(kind: str, **body: Any) -> Any:
        return client.put(f"/v1/sheets/{kind}/notes", json=body, headers=auth(WRITE))

    assert_422(put_notes("weekly", period="2026-W49", notes={"mood": "x"}), "notes", "mood")
    assert_422(put_notes("weekly", period="2026-W60", notes={"hypotheses": "x"}), "period")
    assert_422(put_notes("monthly", period="2026-13", notes={"what": "x"}), "period")
    assert_422(
        put_notes("weekly", period="2026-W49", scope="rep", id="hubspot:nobody", notes={}), "id"
    )
    assert_422(
        put_notes("monthly", period="2026-12", notes={"rep_notes": {"hubspot:nobody": "x"}}),
        "rep_notes",
        "hubspot:nobody",
    )
    # One good field and one too long: a 422 at the long one, and neither is written.
    too_long = {"went_well": "fine", "issues": "x" * 10_001}
    assert_422(put_notes("daily", period="2026-12-03", notes=too_long), "notes", "issues")
    ok = {"went_well": "x" * 10_000}
    assert put_notes("daily", period="2026-12-03", notes=ok).status_code == 200
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SheetNote)).scalar_one() == 1
    # PostgreSQL text holds no NUL: refused as a 422, never a 500.
    assert_422(put_notes("weekly", period="2026-W49", notes={"hypotheses": "a\x00b"}), "hypotheses")
    assert_422(
        put_notes("weekly", period="2026-W49", scope="rep", id="hubspot:\x00", notes={}), "id"
    )
    # Far dates are refused before any computing, as everywhere in the API.
    assert_422(put_notes("monthly", period="9990-06", notes={"what": "x"}), "period")
    assert_422(client.get("/v1/sheets/weekly", params={"week": "9990-W10"}, headers=auth()), "week")
    assert_422(
        client.get("/v1/sheets/monthly", params={"month": "9990-06"}, headers=auth()), "month"
    )
    # GETs refuse the same periods.
    assert_422(client.get("/v1/sheets/weekly", params={"week": "2026-W60"}, headers=auth()), "week")
    assert_422(
        client.get("/v1/sheets/daily", params={"date": "2026-02-30"}, headers=auth()), "date"
    )
    assert_422(
        client.get("/v1/sheets/daily", params={"scope": "rep", "id": "hubspot:x"}, headers=auth()),
        "id",
    )


def test_actions_round_trip_and_the_weekly_list(clients: Clients) -> None:
    early, late = clients(DEC_1_MORNING), clients(DEC_10)
    body = {
        "title": "call 10–12",
        "owner": R1,
        "due": "2026-12-04",
        "kpi": "calls",
        "week": "2026-W49",
    }
    assert early.post("/v1/actions", json=body, headers=auth(READ)).status_code == 403
    created = early.post("/v1/actions", json=body, headers=auth(WRITE))
    assert created.status_code == 201, created.text
    action = created.json()
    assert (action["status"], action["owner"], action["week"], action["overdue"]) == (
        "open",
        R1,
        "2026-W49",
        False,
    )
    other = {"title": "new list", "owner": R2, "due": "2026-12-15", "week": "2026-W50"}
    second = early.post("/v1/actions", json=other, headers=auth(ADMIN)).json()
    # The due date before the creation day (1 Dec) is a 422 at due; so are a stranger and W60.
    assert_422(
        early.post("/v1/actions", json={**body, "due": "2026-11-30"}, headers=auth(WRITE)), "due"
    )
    assert_422(
        early.post("/v1/actions", json={**body, "owner": "hubspot:x"}, headers=auth(WRITE)), "owner"
    )
    assert_422(
        early.post("/v1/actions", json={**body, "week": "2026-W60"}, headers=auth(WRITE)), "week"
    )
    # On 10 Dec the first is overdue (open, due 4 Dec); the second is not (due 15 Dec).
    overdue = get(late, "/v1/actions", overdue="true")["data"]
    assert [a["id"] for a in overdue] == [action["id"]]
    weekly = get(late, "/v1/sheets/weekly", week="2026-W50")["actions"]
    assert [a["id"] for a in weekly] == [action["id"], second["id"]]  # overdue + the week's
    path = f"/v1/actions/{action['id']}"
    assert late.patch(path, json={"status": "done"}, headers=auth(READ)).status_code == 403
    done = late.patch(path, json={"status": "done", "result": "connect +5 pt"}, headers=auth(WRITE))
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["result"], done.json()["overdue"]) == (
        "done",
        "connect +5 pt",
        False,
    )
    assert get(late, "/v1/actions", overdue="true")["data"] == []
    assert [a["id"] for a in get(late, "/v1/actions", status="done")["data"]] == [action["id"]]
    assert [a["id"] for a in get(late, "/v1/actions", owner=R2)["data"]] == [second["id"]]
    assert_422(late.patch(path, json={"status": "closed"}, headers=auth(WRITE)), "status")
    assert (
        late.patch("/v1/actions/999", json={"status": "done"}, headers=auth(WRITE)).status_code
        == 404
    )


def test_the_write_role_cannot_write_targets(clients: Clients) -> None:
    client = clients(DEC_3_AFTERNOON)
    target = [{"kpi": "calls", "grain": "month", "period_start": "2026-12-01", "value": 2400}]
    assert client.put("/v1/targets", json=target, headers=auth(WRITE)).status_code == 403
    assert (
        client.put(
            "/v1/costs", json={"month": "2026-12", "amount": 1}, headers=auth(WRITE)
        ).status_code
        == 403
    )
    assert client.post("/v1/sync", headers=auth(WRITE)).status_code == 403
    assert get(client, "/v1/sheets/monthly", token=WRITE)["kind"] == "monthly"
    assert client.get("/v1/sheets/daily").status_code == 401


# --- xlsx -----------------------------------------------------------------------------------


def cells(content: bytes) -> list[tuple[Any, ...]]:
    book = load_workbook(io.BytesIO(content))
    return [tuple(row) for row in book.active.iter_rows(values_only=True)]


def row_of(rows: list[tuple[Any, ...]], first: str) -> tuple[Any, ...]:
    """The row starting with ``first``, its floats as pytest.approx: a workbook keeps 15–16
    significant digits, as Excel does (1.8796992481203008 is stored as 1.879699248120301)."""
    row = next(r for r in rows if r[0] == first)
    return tuple(pytest.approx(v, rel=1e-14) if isinstance(v, float) else v for v in row)


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("daily", {"date": "2026-12-03", "scope": "rep", "id": R1}),
        ("weekly", {"week": "2026-W49"}),
        ("monthly", {"month": "2026-12"}),
    ],
)
def test_xlsx_has_the_json_numbers(clients: Clients, kind: str, params: dict[str, str]) -> None:
    client = clients(DEC_3_AFTERNOON)
    notes_period = {"daily": "2026-12-03", "weekly": "2026-W49", "monthly": "2026-12"}[kind]
    field = {"daily": "issues", "weekly": "hypotheses", "monthly": "why"}[kind]
    scope = {"scope": params.get("scope", "org"), "id": params.get("id")}
    hostile = {"period": notes_period, **scope, "notes": {field: "=cmd|' /C calc'!A0"}}
    assert (
        client.put(f"/v1/sheets/{kind}/notes", json=hostile, headers=auth(WRITE)).status_code == 200
    )
    sheet = get(client, f"/v1/sheets/{kind}", **params)
    response = client.get(f"/v1/sheets/{kind}", params={**params, "format": "xlsx"}, headers=auth())
    assert response.status_code == 200
    rows = cells(response.content)
    assert str(rows[0][0]).endswith(f"{sheet['period']} {sheet['scope']} {sheet['scope_name']}")
    assert row_of(rows, field)[1] == "=cmd|' /C calc'!A0"  # text, not a formula
    book = load_workbook(io.BytesIO(response.content))
    assert all(c.data_type != "f" for row in book.active.iter_rows() for c in row)
    if kind == "daily":
        for c in sheet["counts"]:
            assert row_of(rows, c["kpi"])[:7] == (
                c["kpi"],
                c["target"],
                c["midday"]["actual"],
                c["midday"]["target"],
                c["midday"]["progress"],
                c["end_of_day"]["actual"],
                c["end_of_day"]["progress"],
            )
    elif kind == "weekly":
        for k in sheet["kpis"]:
            assert row_of(rows, k["kpi"])[:5] == (
                k["kpi"],
                k["target"],
                k["actual"],
                k["achievement"],
                k["previous_actual"],
            )
        assert row_of(rows, "cause")[1] == sheet["funnel"]["cause"]
    else:
        for k in sheet["kpis"]:
            assert row_of(rows, k["kpi"])[:6] == (
                k["kpi"],
                k["target"],
                k["actual"],
                k["achievement"],
                k["pace_target"],
                k["pace_achievement"],
            )
        header = next(r for r in rows if r[:2] == ("rep", "name"))
        for rep in sheet["reps"]:
            got = row_of(rows, rep["rep_id"])
            assert got[1] == rep["name"]
            for column, kpi in enumerate(header[2:], start=2):
                assert got[column] == rep["kpis"][kpi]["actual"]


def test_midday_cut_is_sql_on_each_record_s_own_time(engine: Engine) -> None:
    # compute(before_hour=12) at day grain: d4 at 12:00:00 JST is after the cut, d3 at
    # 11:59:59 before it; the rollups cannot answer an hour cut, so it reads raw rows.
    put(engine, SHEETS_FIXTURE)
    day = date(2026, 12, 3)
    rows = compute(engine, CTX, kpis=["calls", "connect_rate"], grain="day", start=day, end=day)
    noon = compute(
        engine, CTX, kpis=["calls", "connect_rate"], grain="day", start=day, end=day, before_hour=12
    )
    assert [(r.kpi, r.value, r.numerator) for r in rows] == [
        ("calls", 5, 5),
        ("connect_rate", 0.6, 3),
    ]
    assert [(r.kpi, r.numerator) for r in noon] == [("calls", 3), ("connect_rate", 2)]
    with pytest.raises(KpiRequestError) as refused:
        compute(engine, CTX, grain="day", start=day, end=day, before_hour=25)
    assert refused.value.param == "before_hour"


def test_week_target_wins_over_the_months(clients: Clients, engine: Engine) -> None:
    put_targets(engine, [Target("calls", "week", W49, "org", "org", 450.0)])
    kpis = by_kpi(get(clients(DEC_10), "/v1/sheets/weekly", week="2026-W49")["kpis"])
    assert (kpis["calls"]["target"], kpis["calls"]["target_source"]) == (450, "week")
