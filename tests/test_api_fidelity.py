"""The API side of inside sales as the seed counts it, through HTTP on SQLite and PostgreSQL.

GET /v1/teams with a field-sales team configured; the quarter and fiscal_year grains
with an April fiscal year across the calendar and fiscal year boundaries; as_of
replays on GET /v1/kpis; CSV read as bytes (byte-order mark, no formula injection)
and the XLSX workbook read with openpyxl, cell by cell against the JSON rows; the
two settings and their one-line errors.

The business time zone is Asia/Tokyo (UTC+9), and "now" is Wednesday 15 July 2026,
12:00 JST. Timestamps are UTC; "JST" notes give the local time that decides the day.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine

from connectors.records import Call, Deal, Record, Rep, Team
from kpi import Target, put_targets
from service.app import create_app
from service.kpi_answers import CSV_COLUMNS, XLSX_MEDIA_TYPE, csv_safe
from service.settings import Settings, kpi_context, settings_errors
from tests.support.kpi_records import at, put

H = "hubspot"
READ = "fidelity-read"
NOW = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)  # Wednesday 15 July 2026, 12:00 JST
HYPERLINK = '=HYPERLINK("http://evil.example/","click")'


def call(crm_id: str, when: str, rep: str, outcome: str = "connected") -> Call:
    return Call(
        source=H,
        crm_id=crm_id,
        occurred_at=at(when),
        direction="outbound",
        outcome=outcome,  # type: ignore[arg-type]
        rep_crm_id=rep,
    )


RECORDS: list[Record] = [
    Team(source=H, crm_id="t1", name="Tokyo IS"),
    Team(source=H, crm_id="tf", name="Field Sales"),
    # A rep's name is whatever the CRM holds: one that a spreadsheet would run, one that
    # reads as a number.
    Rep(source=H, crm_id="r1", name=HYPERLINK, email="r1@example.com", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="-5", email="r2@example.com", team_crm_id="t1"),
    Rep(source=H, crm_id="f1", name="Fumi", email="f1@example.com", team_crm_id="tf"),
    # r1's first call, 1 Apr 2025 09:00 JST: over 12 months by now, senior.
    call("c6", "2025-04-01T00:00", "r1"),
    call("c1", "2025-12-31T14:00", "r1"),  # 31 Dec 2025 23:00 JST
    # r2's first call, 1 Jan 2026 00:30 JST: 6 months and a half by now, mid.
    call("c2", "2025-12-31T15:30", "r2", outcome="no_answer"),
    call("c3", "2026-03-31T14:59", "r2"),  # 31 Mar 2026 23:59 JST: the fiscal year's last day
    call("c4", "2026-03-31T15:00", "r1"),  # 1 Apr 2026 00:00 JST: the next fiscal year
    call("c5", "2026-06-30T15:00", "r2"),  # 1 Jul 2026 00:00 JST: the next quarter
    # This week (Monday 13 July to Sunday 19 July).
    call("c7", "2026-07-13T01:00", "r2"),  # Mon 10:00 JST
    call("c8", "2026-07-14T14:59", "r2"),  # Tue 23:59 JST
    call("c9", "2026-07-14T15:00", "r2"),  # Wed 00:00 JST: after a replay as of Tuesday
    Deal(
        source=H,
        crm_id="d1",
        created_at=at("2026-07-13T02:00"),  # Mon
        closed_at=at("2026-07-15T01:00"),  # Wed 10:00 JST
        is_closed=True,
        is_won=True,
        amount=Decimal(500_000),
        rep_crm_id="r2",
    ),
]


def settings_for(**kw: Any) -> Settings:
    return Settings(
        database_url="sqlite://",
        timezone="Asia/Tokyo",
        holidays="JP",
        read_tokens=[SecretStr(READ)],
        now=NOW,
        **kw,
    )


@pytest.fixture
def stored(engine: Engine) -> Engine:
    put(engine, RECORDS)
    return engine


@pytest.fixture
def client(stored: Engine) -> Iterator[TestClient]:
    """An April fiscal year, and the "Field Sales" team (by name) is field sales."""
    settings = settings_for(fiscal_year_start_month=4, field_sales_teams=["Field Sales"])
    with TestClient(create_app(settings, stored)) as test_client:
        yield test_client


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers={"Authorization": f"Bearer {READ}"})
    assert response.status_code == 200, response.text
    return response.json()


def values(body: dict[str, Any], kpi: str, scope_id: str = "org") -> dict[str, Any]:
    """period_start → value of one KPI's rows for one scope id."""
    return {
        r["period_start"]: r["value"]
        for r in body["data"]
        if r["kpi"] == kpi and r["scope_id"] == scope_id
    }


# --- settings -----------------------------------------------------------------------------------


def test_settings_read_the_fiscal_year_and_field_sales_teams_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ISKPI_FISCAL_YEAR_START_MONTH", "4")
    monkeypatch.setenv("ISKPI_FIELD_SALES_TEAMS", " Field Sales , hubspot:t9,,")
    ctx = kpi_context(Settings(_env_file=None))  # type: ignore[call-arg]
    assert ctx.fiscal_year_start_month == 4
    assert ctx.field_sales_teams == ("Field Sales", "hubspot:t9")
    monkeypatch.delenv("ISKPI_FISCAL_YEAR_START_MONTH")
    monkeypatch.delenv("ISKPI_FIELD_SALES_TEAMS")
    default = kpi_context(Settings(_env_file=None))  # type: ignore[call-arg]
    assert (default.fiscal_year_start_month, default.field_sales_teams) == (1, ())


@pytest.mark.parametrize("bad", ["0", "13", "April"])
def test_a_bad_fiscal_year_start_month_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("ISKPI_FISCAL_YEAR_START_MONTH", bad)
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)  # type: ignore[call-arg]
    lines = settings_errors(raised.value)
    assert len(lines) == 1
    assert lines[0].startswith("ISKPI_FISCAL_YEAR_START_MONTH: "), lines
    assert lines[0].endswith(f"(got {bad!r})"), lines
    assert "\n" not in lines[0]


def test_only_bad_values_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISKPI_HUBSPOT_ACCESS_TOKEN", "pat-secret")
    monkeypatch.setenv("ISKPI_LTV_MONTHS", "0")
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings_errors(raised.value) == [
        "ISKPI_LTV_MONTHS: Input should be greater than or equal to 1 (got '0')"
    ]
    assert settings_errors(ValueError("not a settings error")) == []


# --- /v1/teams ----------------------------------------------------------------------------------


def test_teams_lists_inside_sales_by_default_with_each_reps_level(client: TestClient) -> None:
    body = get(client, "/v1/teams")
    assert body == {
        "data": [
            {
                "id": "hubspot:t1",
                "name": "Tokyo IS",
                "kind": "is",
                "reps": [
                    {
                        "id": "hubspot:r1",
                        "name": HYPERLINK,
                        "email": "r1@example.com",
                        "level": "senior",
                        "active": True,
                    },
                    {
                        "id": "hubspot:r2",
                        "name": "-5",
                        "email": "r2@example.com",
                        "level": "mid",
                        "active": True,
                    },
                ],
            }
        ]
    }
    assert get(client, "/v1/teams", kind="is") == body


def test_teams_kind_fs_and_all(client: TestClient) -> None:
    fs = get(client, "/v1/teams", kind="fs")["data"]
    assert fs == [
        {
            "id": "hubspot:tf",
            "name": "Field Sales",
            "kind": "fs",
            "reps": [
                {
                    "id": "hubspot:f1",
                    "name": "Fumi",
                    "email": "f1@example.com",
                    "level": "junior",  # no activity, no CRM created date
                    "active": True,
                }
            ],
        }
    ]
    every = get(client, "/v1/teams", kind="all")["data"]
    assert [(t["id"], t["kind"]) for t in every] == [("hubspot:t1", "is"), ("hubspot:tf", "fs")]


def test_teams_without_field_sales_configured_are_all_inside_sales(stored: Engine) -> None:
    with TestClient(create_app(settings_for(), stored)) as plain:
        teams = get(plain, "/v1/teams")["data"]
        assert [(t["id"], t["kind"]) for t in teams] == [("hubspot:t1", "is"), ("hubspot:tf", "is")]
        assert get(plain, "/v1/teams", kind="fs")["data"] == []


def test_field_sales_by_crm_id_and_a_bad_kind(stored: Engine) -> None:
    with TestClient(create_app(settings_for(field_sales_teams=["tf"]), stored)) as by_id:
        assert [t["id"] for t in get(by_id, "/v1/teams", kind="fs")["data"]] == ["hubspot:tf"]
        response = by_id.get(
            "/v1/teams", params={"kind": "outside"}, headers={"Authorization": f"Bearer {READ}"}
        )
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail[0]["loc"] == ["query", "kind"]
        assert detail[0]["msg"].startswith("kind")
        assert by_id.get("/v1/teams").status_code == 401


# --- quarter and fiscal_year --------------------------------------------------------------------


def test_quarters_of_an_april_year_across_the_calendar_year_boundary(client: TestClient) -> None:
    body = get(
        client,
        "/v1/kpis",
        kpi="calls,connect_rate",
        grain="quarter",
        **{"from": "2025-10-01", "to": "2026-06-30"},
    )
    # Oct–Dec 2025: c1 (31 Dec 23:00 JST). Jan–Mar 2026: c2 (1 Jan 00:30 JST, not connected)
    # and c3 (31 Mar 23:59 JST). Apr–Jun 2026: c4 (1 Apr 00:00 JST); c5 is 1 Jul JST.
    assert values(body, "calls") == {"2025-10-01": 1, "2026-01-01": 2, "2026-04-01": 1}
    assert values(body, "connect_rate") == {"2025-10-01": 1.0, "2026-01-01": 0.5, "2026-04-01": 1.0}
    assert {r["grain"] for r in body["data"]} == {"quarter"}
    assert body["meta"]["grain"] == "quarter"


def test_fiscal_years_start_in_april(client: TestClient) -> None:
    # A range inside two fiscal years gives both, each whole.
    body = get(
        client,
        "/v1/kpis",
        kpi="calls,connect_rate",
        grain="fiscal_year",
        **{"from": "2026-02-15", "to": "2026-04-10"},
    )
    # FY2025 (1 Apr 2025 – 31 Mar 2026): c6, c1, c2, c3, 3 of them connected.
    # FY2026 (from 1 Apr 2026): c4, c5, c7, c8, c9.
    assert values(body, "calls") == {"2025-04-01": 4, "2026-04-01": 5}
    assert values(body, "connect_rate") == {"2025-04-01": 0.75, "2026-04-01": 1.0}
    reps = get(
        client,
        "/v1/kpis",
        kpi="calls",
        grain="fiscal_year",
        scope="rep",
        **{"from": "2025-04-01", "to": "2027-03-31"},
    )
    assert values(reps, "calls", "hubspot:r1") == {"2025-04-01": 2, "2026-04-01": 1}
    assert values(reps, "calls", "hubspot:r2") == {"2025-04-01": 2, "2026-04-01": 4}
    # The field-sales rep is not listed at rep scope.
    assert {r["scope_id"] for r in reps["data"]} == {"hubspot:r1", "hubspot:r2"}


def test_a_calendar_fiscal_year_is_the_calendar_year(stored: Engine) -> None:
    with TestClient(create_app(settings_for(), stored)) as calendar:
        body = get(
            calendar,
            "/v1/kpis",
            kpi="calls",
            grain="fiscal_year",
            **{"from": "2025-01-01", "to": "2026-12-31"},
        )
        # 2025: c6, c1. 2026: c2 (1 Jan 00:30 JST), c3, c4, c5, c7, c8, c9.
        assert values(body, "calls") == {"2025-01-01": 2, "2026-01-01": 7}


def test_the_catalog_lists_the_new_grains(client: TestClient) -> None:
    entry = next(e for e in get(client, "/v1/kpis/catalog")["data"] if e["key"] == "calls")
    assert {"quarter", "fiscal_year"} <= set(entry["grains"])


# --- as_of --------------------------------------------------------------------------------------


def test_a_replayed_this_week_never_includes_a_later_record(client: TestClient) -> None:
    week = {"grain": "week", "from": "2026-07-13", "to": "2026-07-19", "kpi": "calls,won_count"}
    live = get(client, "/v1/kpis", **week)
    assert values(live, "calls") == {"2026-07-13": 3}
    assert values(live, "won_count") == {"2026-07-13": 1}  # d1 closed on Wednesday
    replay = get(client, "/v1/kpis", as_of="2026-07-14", **week)
    # As of Tuesday: c7 and c8 (Tue 23:59 JST); c9 (Wed 00:00 JST) and d1's close are later.
    assert values(replay, "calls") == {"2026-07-13": 2}
    assert values(replay, "won_count") == {"2026-07-13": 0}
    assert replay["meta"]["as_of"] == "2026-07-14" and live["meta"]["as_of"] is None
    # Without `to`, a replay ends on its day.
    meta = get(client, "/v1/kpis", kpi="calls", as_of="2026-07-14")["meta"]
    assert meta["to"] == "2026-07-14"
    # The same answer whatever else happened later: a replay as of Monday sees one call.
    monday = get(client, "/v1/kpis", as_of="2026-07-13", **week)
    assert values(monday, "calls") == {"2026-07-13": 1}


def test_a_bad_as_of_is_a_422_naming_it(client: TestClient) -> None:
    response = client.get(
        "/v1/kpis", params={"as_of": "Tuesday"}, headers={"Authorization": f"Bearer {READ}"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "as_of"]


# --- CSV and XLSX -------------------------------------------------------------------------------

MONTH = {"grain": "month", "scope": "rep", "from": "2026-07-01", "to": "2026-07-31"}


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """A JSON row flattened the way CSV and XLSX name the columns."""
    out = {k: v for k, v in row.items() if k not in ("band", "targets")}
    out["band.low"], out["band.high"] = row["band"]["low"], row["band"]["high"]
    for level, value in row["targets"].items():
        out[f"targets.{level}"] = value
    return out


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        (HYPERLINK, "'" + HYPERLINK),
        ("+cmd", "'+cmd"),
        ("-", "'-"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-5", "-5"),
        ("+1.5", "+1.5"),
        ("-1e3", "-1e3"),
        ("Tokyo IS", "Tokyo IS"),
        ("a=b", "a=b"),
        (-5, -5),
        (None, None),
    ],
)
def test_csv_safe_prefixes_formula_looking_text_only(cell: object, written: object) -> None:
    assert csv_safe(cell) == written


def test_csv_is_utf8_with_a_bom_and_quotes_formula_looking_names(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    put_targets(engine, [Target("calls", "month", date(2026, 7, 1), "rep", "hubspot:r2", 40)])
    body = get(client, "/v1/kpis", kpi="calls", **MONTH)
    response = client.get(
        "/v1/kpis",
        params={**MONTH, "kpi": "calls", "format": "csv"},
        headers={"Authorization": f"Bearer {READ}"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="kpis.csv"' in response.headers["content-disposition"]
    raw = response.content
    assert raw.startswith(b"\xef\xbb\xbfkpi,tier,grain,period_start,")
    lines = raw.split(b"\r\n")
    assert lines[0] == b"\xef\xbb\xbf" + ",".join(CSV_COLUMNS).encode()
    r1 = next(line for line in lines if b"hubspot:r1" in line)
    assert b',"\'=HYPERLINK(""http://evil.example/"",""click"")",' in r1
    r2 = next(line for line in lines if b"hubspot:r2" in line)
    assert b",hubspot:r2,-5,," in r2  # a name that is a number is left as it is
    parsed = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [row["scope_name"] for row in parsed] == ["'" + HYPERLINK, "-5"]
    for row, expected in zip(parsed, body["data"], strict=True):
        assert row["targets.achievement"] == (
            "" if expected["target"] is None else str(float(expected["target"]))
        )
    assert parsed[1]["target"] == "40.0" and parsed[1]["value"] == "4"  # c5, c7, c8, c9


WEEKDAYS = {
    "grain": "week",
    "scope": "rep",
    "by": "weekday",
    "from": "2026-07-06",
    "to": "2026-07-19",
}


@pytest.mark.parametrize("params", [MONTH, WEEKDAYS], ids=["month", "week-by-weekday"])
def test_xlsx_is_a_workbook_of_the_same_rows_cell_by_cell(
    client: TestClient, params: dict[str, str]
) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    put_targets(engine, [Target("calls", "month", date(2026, 7, 1), "rep", "hubspot:r2", 40)])
    body = get(client, "/v1/kpis", **params)
    response = client.get(
        "/v1/kpis",
        params={**params, "format": "xlsx"},
        headers={"Authorization": f"Bearer {READ}", "Accept-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX_MEDIA_TYPE
    assert 'filename="kpis.xlsx"' in response.headers["content-disposition"]
    assert "content-encoding" not in response.headers
    assert response.content.startswith(b"PK")  # a zip: an Office Open XML workbook
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = book.active
    assert sheet is not None
    table = list(sheet.iter_rows())
    assert [c.value for c in table[0]] == list(CSV_COLUMNS)
    assert len(table) - 1 == len(body["data"]) > 0
    for cells, expected in zip(table[1:], body["data"], strict=True):
        want = flat(expected)
        for column, cell in zip(CSV_COLUMNS, cells, strict=True):
            value = want[column]
            assert cell.data_type != "f", (column, cell.value)  # nothing runs as a formula
            if column == "period_start":
                assert cell.is_date and cell.value.date() == date.fromisoformat(value)
            elif value is None:
                assert cell.value is None, (column, cell.value)
            elif isinstance(value, str):
                assert (cell.data_type, cell.value) == ("s", value), column
            else:
                assert cell.data_type == "n" and cell.value == pytest.approx(value), column
    names = {cells[CSV_COLUMNS.index("scope_name")].value for cells in table[1:]}
    assert names == {HYPERLINK, "-5"}
    if "by" in params:  # weekdays are integers, as in the JSON
        by_values = {cells[CSV_COLUMNS.index("by_value")].value for cells in table[1:]}
        assert by_values and all(isinstance(v, int) for v in by_values), by_values
        return
    r2_calls = next(
        cells
        for cells in table[1:]
        if cells[0].value == "calls" and cells[CSV_COLUMNS.index("scope_id")].value == "hubspot:r2"
    )
    assert r2_calls[CSV_COLUMNS.index("value")].value == 4  # c5, c7, c8, c9
    assert r2_calls[CSV_COLUMNS.index("targets.achievement")].value == 40
