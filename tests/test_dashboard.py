"""The dashboard at / end to end: a real headless Chromium against a live server.

The browser is Debian's `chromium` package (scripts/test.sh installs it), driven by
Playwright for Python with ``executable_path``; no browser is downloaded. The
server is the service as `iskpi serve` builds it (uvicorn in a thread), over a
store (SQLite, then PostgreSQL) synced from the simulated HubSpot portal: two
teams of two reps, data up to "now" (Wednesday 28 October 2026, 19:00 JST), and
targets entered for October; the portal's "Field Sales" team is field sales
(ISKPI_FIELD_SALES_TEAMS), which the page's lists leave out. Every number the page
shows is compared with the same REST API read here; screenshots go to
test-artifacts/dashboard/<store>/ (ISKPI_TEST_ARTIFACTS overrides the folder).

Without Chromium or Playwright the browser tests are skipped with the reason named
(scripts/test.sh passes its failed install on as ``ISKPI_TEST_NO_BROWSER``); the skip
summary (``-rs``, on by default in pyproject.toml) shows it, in CI too.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from connectors.hubspot import HubSpotConnector
from kpi import Level, Target, compute, put_targets
from models import Base, SyncRun, store
from service.app import create_app
from service.db import make_engine
from service.routers.dashboard import ASSETS, DASHBOARD_DIR
from service.settings import Settings, kpi_context
from service.sync.run import run_sync
from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
from simulators.hubspot.seed import generate_dataset
from tests.support.db import ENGINES, postgres_engine

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("ISKPI_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("ISKPI_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"
READ, WRITE, ADMIN, PORTAL_TOKEN = "dash-read", "dash-write", "dash-admin", "portal-token"
NOW = datetime(2026, 10, 28, 10, 0, tzinfo=UTC)  # Wednesday 19:00 in Tokyo, the day's work done
TODAY = date(2026, 10, 28)
DATA_END = datetime(2026, 10, 29, tzinfo=UTC)
MONDAY, SUNDAY = date(2026, 10, 26), date(2026, 11, 1)
OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))
# October 2026 in Japan: 22 weekdays less Sports Day (12 Oct); 26–30 Oct are all business days.
MONTH_DAYS, WEEK_DAYS, WEEK_ELAPSED = 21, 5, 3
FIELD_SALES = "Field Sales"  # the simulated portal's field-sales team
DASH = "\u2014"
LEVEL_FACTORS: dict[Level, float] = {"minimum": 0.8, "stretch": 1.25}


# --- the same formatting as format.js (toFixed rounds half away from zero) ---------------------


def _fixed(value: float, digits: int, grouped: bool = True) -> str:
    exact = Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{exact:,.{digits}f}" if grouped else f"{exact:.{digits}f}"


def shown(value: float | None, unit: str, lang: str = "ja") -> str:
    """What the dashboard prints for a value of a unit."""
    if value is None:
        return DASH
    units = {"ja": {"seconds": "秒", "minutes": "分", "days": "日"}, "en": {}}[lang]
    if unit == "ratio":
        return f"{_fixed(value * 100, 1, grouped=False)}%"
    if unit in ("count", "amount"):
        return _fixed(value, 0)
    if unit == "seconds":
        return f"{_fixed(value, 0)} {units.get('seconds', 's')}"
    if unit == "minutes":
        return f"{_fixed(value, 1)} {units.get('minutes', 'min')}"
    if unit == "days":
        return f"{_fixed(value, 1)} {units.get('days', 'days')}"
    return _fixed(value, 2)


def share(value: float | None) -> str:
    return DASH if value is None else f"{_fixed(value * 100, 0, grouped=False)}%"


# --- the store and the server -------------------------------------------------------------------


@dataclass
class Served:
    url: str
    engine: Engine
    teams: list[dict[str, Any]]  # team rows of October's calls, the team with most calls first
    reps: dict[str, str]  # rep id → team id, of the inside-sales teams (GET /v1/teams)
    catalog: dict[str, dict[str, Any]]
    store: str  # sqlite or postgresql
    portal: RunningPortal | None = None  # the simulated portal the store was synced from

    def get(self, path: str, **params: Any) -> Any:
        params = {k.rstrip("_"): v for k, v in params.items() if v is not None}
        response = httpx.get(
            self.url + path, params=params, headers={"Authorization": f"Bearer {READ}"}
        )
        assert response.status_code == 200, response.text
        return response.json()

    def rows(self, **params: Any) -> dict[tuple[str, str], dict[str, Any]]:
        """/v1/kpis rows by (scope_id, kpi)."""
        body = self.get("/v1/kpis", **params)
        return {(row["scope_id"], row["kpi"]): row for row in body["data"]}

    def unit(self, key: str) -> str:
        return str(self.catalog[key]["unit"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(engine: Engine, settings: Settings) -> RunningPortal:
    """Sync the simulated portal, enter October's targets, and record a stale Salesforce sync.

    The portal stays up (the caller stops it): write-back pushes the targets back to it.
    """
    hub = HubSpotPortal(PORTAL_TOKEN)
    hub.load(
        # Activity on the weekdays before ``end`` (exclusive), 9:00–19:00 Tokyo time.
        generate_dataset(
            seed=7, teams=2, reps_per_team=2, months=1, end=DATA_END, calls_per_rep_day=40
        )
    )
    running = serve_portal(hub)
    try:
        connector = HubSpotConnector(PORTAL_TOKEN, host=running.url, sleep=lambda _: None)
        report = run_sync(engine, connector, trigger="test", full=True, kpi=kpi_context(settings))
        assert report.status == "ok", report.error
    except BaseException:
        running.stop()
        raise

    ctx = kpi_context(settings)
    keys = [
        "calls",
        "effective_contacts",
        "emails_sent",
        "meetings_set",
        "deals_created",
        "won_count",
        "won_amount",
        "connect_rate",
        "effective_contact_rate",
        "meeting_conversion_rate",
        "win_rate",
    ]
    targets: list[Target] = []
    for scope in ("org", "team", "rep"):
        rows = compute(engine, ctx, kpis=keys, start=OCTOBER[0], end=OCTOBER[1], scope=scope)
        teams = sorted({r.scope_id for r in rows if r.kpi == "calls" and (r.value or 0) > 0})
        for row in rows:
            if row.value is None or (row.value == 0 and scope != "org"):
                continue
            factor = 0.9  # on track …
            if row.kpi == "meeting_conversion_rate":
                factor = 1.6  # … but converting too few contacts: the seed's quality bottleneck
            if scope == "team" and teams and row.scope_id == teams[-1] and row.kpi == "calls":
                factor = 2.0  # … and one team calling too little: a volume cause
            value = round(row.value * factor, 4 if row.value < 1 else 0) or 1
            targets.append(Target(row.kpi, "month", OCTOBER[0], scope, row.scope_id, value))
            # The three levels: a minimum and a stretch around the target (docs/targets.md).
            for level, times in LEVEL_FACTORS.items():
                other = round(value * times, 4 if row.value < 1 else 0)
                targets.append(
                    Target(row.kpi, "month", OCTOBER[0], scope, row.scope_id, other, level=level)
                )
    # A day target and a week target for single reps: they win over the pro-rated month.
    reps = compute(engine, ctx, kpis=["calls"], start=OCTOBER[0], end=OCTOBER[1], scope="rep")
    active = [r.scope_id for r in reps if (r.value or 0) > 0]
    targets.append(Target("calls", "day", TODAY, "rep", active[0], 33))
    targets.append(Target("calls", "week", MONDAY, "rep", active[1], 150))
    put_targets(engine, targets)

    ago = datetime.now(UTC) - timedelta(days=3)
    with engine.begin() as conn:
        conn.execute(
            SyncRun.__table__.insert().values(
                source="salesforce",
                trigger="nightly",
                full=False,
                started_at=ago - timedelta(minutes=2),
                finished_at=ago,
                status="ok",
                records={},
                quarantined=0,
                api_calls=3,
                error=None,
            )
        )
    return running


def _empty(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="module", params=ENGINES)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The service on a seeded store, on SQLite and on PostgreSQL (as every store test runs)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("dashboard") / "store.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        engine = make_engine(f"sqlite:///{path}")
    else:
        engine = postgres_engine(request.getfixturevalue("postgres_schema"))
    settings = Settings(
        database_url="sqlite://",  # the engine above is the store; this is not read
        timezone="Asia/Tokyo",
        holidays="JP",
        read_tokens=[SecretStr(READ)],
        write_tokens=[SecretStr(WRITE)],
        admin_tokens=[SecretStr(ADMIN)],
        now=NOW,
        field_sales_teams=[FIELD_SALES],
    )
    portal: RunningPortal | None = None
    try:
        portal = _seed(engine, settings)
        # Write-back goes to the simulated portal the store was synced from.
        settings = settings.model_copy(
            update={
                "hubspot_access_token": SecretStr(PORTAL_TOKEN),
                "hubspot_base_url": portal.url,
            }
        )
        yield from _serve(engine, settings, str(request.param), portal)
    finally:
        if portal is not None:
            portal.stop()
        if request.param == "postgresql":
            _empty(engine)
        engine.dispose()


def _serve(
    engine: Engine, settings: Settings, name: str, portal: RunningPortal | None = None
) -> Iterator[Served]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        probe = Served(url, engine, [], {}, {}, name)
        catalog = {e["key"]: e for e in probe.get("/v1/kpis/catalog")["data"]}
        october = {"from": OCTOBER[0].isoformat(), "to": OCTOBER[1].isoformat()}
        team_rows = probe.get("/v1/kpis", kpi="calls", scope="team", **october)["data"]
        teams = sorted(team_rows, key=lambda r: -(r["value"] or 0))
        reps = {
            rep["id"]: team["id"] for team in probe.get("/v1/teams")["data"] for rep in team["reps"]
        }
        # Every listed rep worked in October, under the team the listing names.
        by_team = probe.get("/v1/kpis", kpi="calls", scope="rep", by="team", **october)["data"]
        assert reps == {r["scope_id"]: r["by_value"] for r in by_team if (r["value"] or 0) > 0}
        yield Served(url, engine, teams, reps, catalog, name, portal)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- the browser --------------------------------------------------------------------------------


def _no_browser_reason() -> str | None:
    if reason := os.environ.get("ISKPI_TEST_NO_BROWSER"):
        return reason
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (scripts/test.sh installs Debian's chromium package)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = _no_browser_reason()
    if reason is not None:
        if os.environ.get("CI"):
            reason += " (in CI: the dashboard was not tested in a browser)"
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def screenshots(request: pytest.FixtureRequest) -> Iterator[list[Path]]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []
    yield taken
    if taken:
        # Printed past pytest's capture, so the paths show in a plain run (and in CI's log).
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\ndashboard screenshots ({len(taken)}) in {ARTIFACTS}:")
            for path in taken:
                print(f"  {path}")


def open_page(
    browser: Browser,
    served: Served,
    locale: str = "ja-JP",
    width: int = 1440,
    *,
    fake_clock: bool = False,
) -> tuple[Page, list[str]]:
    """A fresh browser session (its own sessionStorage) on the dashboard, and its JS errors.

    With ``fake_clock`` the page's timers run on Playwright's clock (``page.clock``), which
    the test moves on instead of waiting.
    """
    context = browser.new_context(locale=locale, viewport={"width": width, "height": 1000})
    page = context.new_page()
    if fake_clock:
        page.clock.install()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if _logged(message) else None)
    page.goto(served.url + "/")
    return page, errors


def _logged(message: ConsoleMessage) -> bool:
    """An error the page logged (the browser's own log of a refused request included)."""
    return message.type == "error"


def sign_in(page: Page, token: str = READ) -> None:
    page.wait_for_selector("body[data-state=login]")
    page.fill("#token", token)
    page.click("#login button[type=submit]")


def wait_view(page: Page, view: str, scope_id: str = "org") -> None:
    page.wait_for_selector(
        f'#content > .view[data-view="{view}"][data-id="{scope_id}"]', timeout=15_000
    )
    page.wait_for_selector("body[data-state=ready]")


def snap(page: Page, screenshots: list[Path], served: Served, name: str) -> None:
    path = ARTIFACTS / served.store / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    screenshots.append(path)


def cell(page: Page, table: str, scope_id: str, kpi: str) -> dict[str, str]:
    """A KPI cell of a member table: its data attributes and the value it shows."""
    selector = f'table[data-table="{table}"] tr[data-scope-id="{scope_id}"] td[data-kpi="{kpi}"]'
    found: dict[str, str] = page.eval_on_selector(
        selector,
        """td => ({...td.dataset, shown: td.querySelector('.v').textContent,
                  target_shown: (td.querySelector('.t') || {textContent: ''}).textContent,
                  progress_shown: (td.querySelector('.p') || {textContent: ''}).textContent.trim()})""",
    )
    return found


def field(page: Page, table: str, kpi: str, name: str) -> dict[str, str]:
    selector = f'table[data-table="{table}"] tr[data-kpi="{kpi}"] td[data-field="{name}"]'
    found: dict[str, str] = page.eval_on_selector(
        selector, "td => ({value: td.dataset.value, shown: td.textContent})"
    )
    return found


def number(text: str) -> float | None:
    return None if text == "" else float(text)


# --- tests --------------------------------------------------------------------------------------


def test_dashboard_files_are_served_offline_and_packaged() -> None:
    engine = make_engine("sqlite://")  # the page and its files never touch the store
    with TestClient(create_app(Settings(database_url="sqlite://"), engine)) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        html = page.text
        assert "http://" not in html and "https://" not in html  # nothing from a CDN
        for name, media_type in ASSETS.items():
            asset = client.get(f"/dashboard/{name}")
            assert asset.status_code == 200, name
            assert asset.headers["content-type"] == media_type
            assert "://" not in asset.text.replace("http://www.w3.org/2000/svg", ""), name
        assert client.get("/dashboard/../app.py").status_code == 404
        assert client.get("/dashboard/secret.txt").status_code == 404
        assert "/" not in client.get("/openapi.json").json()["paths"]
    on_disk = {p.name for p in DASHBOARD_DIR.iterdir() if p.name != "index.html"}
    assert on_disk == set(ASSETS)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["service"]
    for name in [*ASSETS, "index.html"]:
        assert any(Path("dashboard", name).match(p) for p in patterns), name


def test_token_form_daily_view_and_freshness(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    page, errors = open_page(browser, served, "ja-JP")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    assert page.get_attribute("html", "lang") == "ja"  # the browser prefers Japanese
    sign_in(page, "not-a-token")
    page.wait_for_selector("#login-error")
    assert "401" in page.inner_text("#login-error")
    errors.clear()  # the browser logs the refused request
    sign_in(page)
    wait_view(page, "daily")
    assert page.evaluate("sessionStorage.getItem('iskpi.token')") == READ
    snap(page, screenshots, served, "01-daily-org-ja")

    day = {"from": TODAY.isoformat(), "to": TODAY.isoformat(), "grain": "day"}
    week = {"from": MONDAY.isoformat(), "to": SUNDAY.isoformat(), "grain": "week"}
    month = {"from": OCTOBER[0].isoformat(), "to": OCTOBER[1].isoformat(), "grain": "month"}
    forecast = served.get("/v1/forecast", kpi="calls")["data"][0]
    assert (forecast["business_days"], forecast["business_days_elapsed"]) == (MONTH_DAYS, 19)
    for scope, ids in (("org", ["org"]), ("team", [t["scope_id"] for t in served.teams])):
        d, w, m = (served.rows(scope=scope, **p) for p in (day, week, month))
        for scope_id in ids:
            for kpi in ("calls", "effective_contacts", "emails_sent"):
                today, this_week, target = d[scope_id, kpi], w[scope_id, kpi], m[scope_id, kpi]
                shown_today = cell(page, "daily-day", scope_id, kpi)
                assert number(shown_today["value"]) == today["value"]
                assert shown_today["shown"] == shown(today["value"], "count")
                assert shown_today["status"] == (today["status"] or "")
                if target["target"] is None:
                    assert shown_today["target"] == ""
                    continue
                # The day's pro-rated target: the month's target over its business days.
                day_target = target["target"] / MONTH_DAYS
                assert number(shown_today["target"]) == pytest.approx(day_target)
                assert shown_today["target_shown"] == f" / {shown(day_target, 'count')}"
                assert shown_today["progress_shown"] == share(today["value"] / day_target)
                shown_week = cell(page, "daily-week", scope_id, kpi)
                assert number(shown_week["value"]) == this_week["value"]
                to_date = target["target"] * WEEK_DAYS / MONTH_DAYS * WEEK_ELAPSED / WEEK_DAYS
                assert number(shown_week["target"]) == pytest.approx(to_date)
                assert shown_week["progress_shown"] == share(this_week["value"] / to_date)
            for kpi in ("connect_rate", "effective_contact_rate", "avg_talk_seconds"):
                for table, rows in (("daily-day", d), ("daily-week", w)):
                    got = cell(page, table, scope_id, kpi)
                    assert number(got["value"]) == rows[scope_id, kpi]["value"], (table, kpi)
                    assert got["shown"] == shown(rows[scope_id, kpi]["value"], served.unit(kpi))
    assert page.inner_text('table[data-table="daily-day"] thead th[data-kpi="calls"]') == "架電数"
    assert page.locator("svg.trend-chart rect.bar-calls[data-day]").count() == TODAY.day

    # Freshness: HubSpot synced just now; the Salesforce run is three days old.
    health = httpx.get(served.url + "/healthz").json()["last_successful_sync"]
    hubspot = page.locator('#freshness li[data-source="hubspot"]')
    assert hubspot.get_attribute("data-stale") == "false"
    assert hubspot.get_attribute("data-last-sync") == health["hubspot"]
    assert health["hubspot"][:16].replace("T", " ") in hubspot.inner_text()
    salesforce = page.locator('#freshness li[data-source="salesforce"]')
    assert salesforce.get_attribute("data-stale") == "true"
    assert "3日前" in salesforce.inner_text()
    assert "Salesforce" in page.inner_text("#stale-warning")
    assert "HubSpot" not in page.inner_text("#stale-warning")

    # Offline: everything came from the service itself.
    assert requests and all(url.startswith(served.url + "/") for url in requests), requests
    assert errors == []


def test_drill_down_org_team_rep_and_back(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    page, errors = open_page(browser, served)
    sign_in(page)
    wait_view(page, "daily")
    team = served.teams[0]
    # A click on the team's row (not only its name) opens the team.
    page.click(
        f'table[data-table="daily-day"] tr[data-scope-id="{team["scope_id"]}"] td[data-kpi="calls"]'
    )
    wait_view(page, "daily", team["scope_id"])
    crumbs = page.locator(".breadcrumbs").inner_text()
    assert "組織全体" in crumbs and team["scope_name"] in crumbs
    snap(page, screenshots, served, "02-daily-team")

    members = sorted(rep for rep, of in served.reps.items() if of == team["scope_id"])
    shown_ids = page.eval_on_selector_all(
        'table[data-table="daily-week"] tbody tr.member', "trs => trs.map(tr => tr.dataset.scopeId)"
    )
    assert sorted(shown_ids) == members and members
    week = {"from": MONDAY.isoformat(), "to": SUNDAY.isoformat(), "grain": "week"}
    rep_rows = served.rows(scope="rep", kpi="calls", **week)
    team_rows = served.rows(scope="team", id=team["scope_id"], kpi="calls", **week)
    for rep in members:
        assert (
            number(cell(page, "daily-week", rep, "calls")["value"])
            == rep_rows[rep, "calls"]["value"]
        )
    # The team's reps add up to the team.
    total = cell(page, "daily-week", team["scope_id"], "calls")
    assert number(total["value"]) == team_rows[team["scope_id"], "calls"]["value"]
    assert sum(rep_rows[rep, "calls"]["value"] for rep in members) == number(total["value"])

    # A rep with a day target of 33 calls: it wins over the pro-rated month target.
    day_target_rep = next(
        t["id"] for t in served.get("/v1/targets", grain="day")["data"] if t["kpi"] == "calls"
    )
    page.goto(f"{served.url}/#/daily?scope=rep&id={day_target_rep}")
    wait_view(page, "daily", day_target_rep)
    got = cell(page, "daily-day", day_target_rep, "calls")
    today = served.rows(
        scope="rep",
        id=day_target_rep,
        kpi="calls",
        grain="day",
        **{"from": "2026-10-28", "to": "2026-10-28"},
    )[day_target_rep, "calls"]
    assert number(got["target"]) == 33 == today["target"]
    assert got["progress_shown"] == share(today["value"] / 33)
    assert page.locator('table[data-table="daily-day"] tbody tr').count() == 1  # a rep is a leaf
    # A rep with a week target of 150 calls: 30 a business day, 90 by Wednesday.
    week_target_rep = next(
        t["id"] for t in served.get("/v1/targets", grain="week")["data"] if t["kpi"] == "calls"
    )
    page.goto(f"{served.url}/#/daily?scope=rep&id={week_target_rep}")
    wait_view(page, "daily", week_target_rep)
    assert number(cell(page, "daily-day", week_target_rep, "calls")["target"]) == 30
    assert number(cell(page, "daily-week", week_target_rep, "calls")["target"]) == 90
    page.goto(f"{served.url}/#/daily?scope=rep&id={day_target_rep}")
    wait_view(page, "daily", day_target_rep)
    crumbs = page.locator(".breadcrumbs a")
    assert crumbs.count() == 2  # org › team › (this rep)
    snap(page, screenshots, served, "03-daily-rep")
    page.click('.breadcrumbs a[data-scope="org"]')
    wait_view(page, "daily")
    assert page.locator('table[data-table="daily-day"] tbody tr.member').count() == len(
        served.teams
    )
    assert errors == []


def test_weekly_funnel_bottleneck_and_cause(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    page, errors = open_page(browser, served)
    sign_in(page)
    wait_view(page, "daily")
    page.click('#views a[data-view="weekly"]')
    wait_view(page, "weekly")
    snap(page, screenshots, served, "04-weekly-org")

    week = {"from": MONDAY.isoformat(), "to": SUNDAY.isoformat(), "grain": "week"}
    month = {"from": OCTOBER[0].isoformat(), "to": OCTOBER[1].isoformat(), "grain": "month"}
    w, m = served.rows(scope="org", **week), served.rows(scope="org", **month)
    for kpi in ("calls", "connect_rate", "effective_contacts", "meetings_set", "deals_created"):
        actual = field(page, "week-funnel", kpi, "actual")
        assert number(actual["value"]) == w["org", kpi]["value"]
        assert actual["shown"] == shown(w["org", kpi]["value"], served.unit(kpi))
        target = m["org", kpi]["target"]
        if served.unit(kpi) == "count":
            target = target * WEEK_DAYS / MONTH_DAYS  # the month's target over the week
        assert number(field(page, "week-funnel", kpi, "target")["value"]) == pytest.approx(target)
    bars = page.locator("svg.funnel-chart g.bar-row")
    assert bars.count() == 4

    funnel = served.get("/v1/funnel", month="2026-10")
    assert funnel["bottleneck"] == "meeting_conversion_rate" and funnel["cause"] == "quality"
    verdict = page.locator("dl.verdict")
    assert verdict.get_attribute("data-bottleneck") == funnel["bottleneck"]
    assert served.catalog[funnel["bottleneck"]]["names"]["ja"] in verdict.inner_text()
    assert share(funnel["bottleneck_achievement"]) in verdict.inner_text()
    assert page.inner_text("dl.verdict dd.cause") == "質の問題"
    assert page.inner_text("dl.verdict dd.hint") == funnel["hint"]["ja"]
    for stage in funnel["stages"]:
        got = field(page, "month-funnel", stage["stage"], "actual")
        assert number(got["value"]) == stage["actual"]

    # Each team's bottleneck, then one team's own review.
    causes = {}
    for team in served.teams:
        expected = served.get("/v1/funnel", month="2026-10", scope="team", id=team["scope_id"])
        row = f'table[data-table="week-members"] tr[data-scope-id="{team["scope_id"]}"]'
        assert page.get_attribute(f"{row} td.bottleneck", "data-bottleneck") == (
            expected["bottleneck"] or ""
        )
        assert page.get_attribute(f"{row} td.cause", "data-cause") == (expected["cause"] or "")
        causes[team["scope_id"]] = expected["cause"]
    assert {"quality", "volume"} <= set(causes.values())
    # The week before, through the period buttons.
    page.click(".period button.step >> nth=0")
    page.wait_for_selector('#content > .view[data-view="weekly"]')
    page.wait_for_function("location.hash.includes('week=2026-10-19')")
    wait_view(page, "weekly")
    before = served.rows(scope="org", grain="week", **{"from": "2026-10-19", "to": "2026-10-25"})
    assert page.inner_text(".view-title") == "2026-10-19 〜 2026-10-25 の週次レビュー"
    got = field(page, "week-funnel", "calls", "actual")
    assert number(got["value"]) == before["org", "calls"]["value"] > 0
    page.go_back()
    page.wait_for_function("!location.hash.includes('week=')")
    wait_view(page, "weekly")

    volume_team = next(team for team, cause in causes.items() if cause == "volume")
    page.click(f'table[data-table="week-members"] a.drill[data-id="{volume_team}"]')
    wait_view(page, "weekly", volume_team)
    assert page.inner_text("dl.verdict dd.cause") == "行動量の問題"
    snap(page, screenshots, served, "05-weekly-team-volume")
    assert errors == []


def test_monthly_tiers_forecast_phase_and_reps(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    page, errors = open_page(browser, served)
    sign_in(page)
    wait_view(page, "daily")
    page.click('#views a[data-view="monthly"]')
    wait_view(page, "monthly")

    month = {"from": OCTOBER[0].isoformat(), "to": OCTOBER[1].isoformat(), "grain": "month"}
    org = served.rows(scope="org", **month)
    for key in served.catalog:
        value = field(page, "month-kpis", key, "value")
        assert number(value["value"]) == org["org", key]["value"], key
        assert value["shown"] == shown(org["org", key]["value"], served.unit(key)), key
        assert (
            number(field(page, "month-kpis", key, "target")["value"]) == org["org", key]["target"]
        )
        assert field(page, "month-kpis", key, "achievement")["shown"] == share(
            org["org", key]["achievement"]
        )

    forecast = served.get("/v1/forecast", month="2026-10")
    assert forecast["meta"]["as_of"] == TODAY.isoformat()
    for row in forecast["data"]:
        for name in ("actual", "forecast", "target", "pipeline"):
            got = field(page, "forecast", row["kpi"], name)
            assert number(got["value"]) == row[name], (row["kpi"], name)
            assert got["shown"] == shown(row[name], served.unit(row["kpi"]))
        run_rate = field(page, "forecast", row["kpi"], "run_rate")
        if row["kpi"] == "won_amount":
            assert row["pipeline"] is not None and run_rate["value"] == ""
        else:
            assert number(run_rate["value"]) == pytest.approx(row["forecast"] - row["actual"])
    assert page.locator("svg.forecast-chart g.bar-row").count() == len(forecast["data"])

    # Per rep: every rep with a team, with its numbers and its won-amount landing.
    reps = served.rows(scope="rep", **month)
    landing = {
        r["scope_id"]: r
        for r in served.get("/v1/forecast", month="2026-10", scope="rep", kpi="won_amount")["data"]
    }
    shown_reps = page.eval_on_selector_all(
        'table[data-table="month-reps"] tbody tr', "trs => trs.map(tr => tr.dataset.scopeId)"
    )
    assert sorted(shown_reps) == sorted(served.reps)
    for rep in served.reps:
        for kpi in ("calls", "meetings_set", "won_amount", "win_rate"):
            got = cell(page, "month-reps", rep, kpi)
            assert number(got["value"]) == reps[rep, kpi]["value"]
            assert got["shown"] == shown(reps[rep, kpi]["value"], served.unit(kpi))
        assert number(cell(page, "month-reps", rep, "landing")["value"]) == landing[rep]["forecast"]
    snap(page, screenshots, served, "06-monthly-org-growth")

    # The phase's priority KPIs first, most stars first.
    page.select_option('select[name="phase"]', "mature")
    page.wait_for_selector('.cards[data-phase="mature"]')
    page.wait_for_selector("body[data-state=ready]")
    mature = [e["key"] for e in served.get("/v1/kpis/catalog", phase="mature")["data"]]
    cards = page.eval_on_selector_all(".cards .card[data-kpi]", "cs => cs.map(c => c.dataset.kpi)")
    assert cards == mature and served.catalog[mature[0]]["phase_priority"]["mature"] == 3
    first_rows = page.eval_on_selector_all(
        'table[data-table="month-kpis"] tbody tr[data-kpi]', "trs => trs.map(tr => tr.dataset.kpi)"
    )
    assert first_rows[: len(mature)] == mature
    assert sorted(first_rows) == sorted(served.catalog)  # every KPI once
    header = page.eval_on_selector_all(
        'table[data-table="month-reps"] thead th[data-kpi]', "ths => ths.map(th => th.dataset.kpi)"
    )
    assert header[: len(mature)] == mature
    assert page.evaluate("localStorage.getItem('iskpi.phase')") == "mature"
    snap(page, screenshots, served, "07-monthly-org-mature")
    assert errors == []


def test_language_switch_and_session_token(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    page, errors = open_page(browser, served, "en-US")
    assert page.get_attribute("html", "lang") == "en"  # the browser prefers English
    sign_in(page)
    wait_view(page, "daily")
    team = served.teams[0]["scope_id"]
    page.goto(f"{served.url}/#/monthly?scope=team&id={team}")
    wait_view(page, "monthly", team)
    head = 'table[data-table="month-reps"] thead th[data-kpi="calls"]'
    assert page.inner_text(head) == served.catalog["calls"]["names"]["en"] == "Calls"
    assert page.inner_text('#views a[data-view="monthly"]') == "Monthly"
    snap(page, screenshots, served, "08-monthly-team-en")

    page.click('#lang button[data-lang="ja"]')
    page.wait_for_function("document.documentElement.lang === 'ja'")
    wait_view(page, "monthly", team)
    assert page.inner_text(head) == served.catalog["calls"]["names"]["ja"] == "架電数"
    assert page.inner_text('#views a[data-view="monthly"]') == "月次"
    names = page.eval_on_selector_all(
        'table[data-table="month-kpis"] tbody tr[data-kpi] th',
        "ths => ths.map(th => [th.parentElement.dataset.kpi, th.firstChild.textContent])",
    )
    assert all(name == served.catalog[key]["names"]["ja"] for key, name in names)

    # A reload keeps the token (this tab's session) and the language chosen.
    page.reload()
    wait_view(page, "monthly", team)
    assert page.locator("#login").is_hidden()
    assert page.get_attribute("html", "lang") == "ja"
    page.click('#lang button[data-lang="en"]')
    page.wait_for_function("document.documentElement.lang === 'en'")
    wait_view(page, "monthly", team)
    assert page.inner_text(head) == "Calls"
    page.click("#sign-out")
    page.wait_for_selector("body[data-state=login]")
    assert page.evaluate("sessionStorage.getItem('iskpi.token')") is None
    assert errors == []


def test_team_and_rep_lists_come_from_v1_teams_without_field_sales(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    page, errors = open_page(browser, served)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    sign_in(page)
    wait_view(page, "daily")
    assert served.url + "/v1/teams?kind=is" in requests
    # Nothing of the lists is derived from KPI rows by team any more.
    assert not any("by=team" in url for url in requests), requests

    listing = served.get("/v1/teams")["data"]
    field_sales = served.get("/v1/teams", kind="fs")["data"]
    assert [t["name"] for t in field_sales] == [FIELD_SALES] and field_sales[0]["reps"]
    fs_team = field_sales[0]["id"]
    fs_reps = {r["id"] for r in field_sales[0]["reps"]}
    shown_teams = page.eval_on_selector_all(
        'table[data-table="daily-day"] tbody tr.member', "trs => trs.map(tr => tr.dataset.scopeId)"
    )
    assert sorted(shown_teams) == sorted(t["id"] for t in listing)
    assert fs_team not in shown_teams

    page.click('#views a[data-view="monthly"]')
    wait_view(page, "monthly")
    levels = {"junior": "初級", "mid": "中級", "senior": "上級"}
    badges = page.eval_on_selector_all(
        'table[data-table="month-reps"] tbody tr th .level',
        "spans => spans.map(s => [s.closest('tr').dataset.scopeId, s.dataset.level, s.textContent])",
    )
    expected = [
        [rep["id"], rep["level"], levels[rep["level"]]] for team in listing for rep in team["reps"]
    ]
    assert sorted(badges) == sorted(expected) and expected
    assert not fs_reps & {rep for rep, _, _ in badges}
    shown = page.inner_text("#content")
    assert FIELD_SALES not in shown
    assert not any(r["name"] in shown for r in field_sales[0]["reps"])
    # A team's own list: its reps with their levels.
    team = listing[0]
    page.goto(f"{served.url}/#/monthly?scope=team&id={team['id']}")
    wait_view(page, "monthly", team["id"])
    shown_reps = page.eval_on_selector_all(
        'table[data-table="month-reps"] tbody tr', "trs => trs.map(tr => tr.dataset.scopeId)"
    )
    assert sorted(shown_reps) == sorted(r["id"] for r in team["reps"])
    snap(page, screenshots, served, "09-monthly-team-levels")
    assert errors == []


# --- three target levels, and the targets page -------------------------------------------------


def _http_errors(errors: list[str]) -> list[str]:
    """The page's errors less the browser's own log of a refused request (403, 409, 422)."""
    return [e for e in errors if "Failed to load resource" not in e]


def test_three_levels_as_ticks_at_their_positions(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    page, errors = open_page(browser, served)
    sign_in(page)
    wait_view(page, "daily")
    page.click('#views a[data-view="monthly"]')
    wait_view(page, "monthly")
    month = {"from": OCTOBER[0].isoformat(), "to": OCTOBER[1].isoformat(), "grain": "month"}
    org = served.rows(scope="org", **month)
    pace = 19 / MONTH_DAYS  # the running month: business days elapsed ÷ the month's
    for kpi in ("calls", "meetings_set", "connect_rate"):
        row = org["org", kpi]
        levels = row["targets"]
        assert None not in levels.values() and levels["achievement"] == row["target"]
        bar = f'table[data-table="month-kpis"] tr[data-kpi="{kpi}"] td[data-field="levels"] svg'
        got = page.eval_on_selector(
            bar,
            """svg => ({scale: Number(svg.dataset.scale), reached: svg.dataset.reached,
                       fill: Number(svg.querySelector('rect.fill').getAttribute('width')),
                       ticks: [...svg.querySelectorAll('line.tick')].map(l => [l.dataset.level,
                               Number(l.getAttribute('x1'))])})""",
        )
        scale = max(row["value"], *levels.values())
        assert got["scale"] == pytest.approx(scale)
        assert got["fill"] == pytest.approx(row["value"] / scale * 100)
        expected = [(level, levels[level] / scale * 100) for level in levels]
        assert [level for level, _ in got["ticks"]] == ["minimum", "achievement", "stretch"]
        for (level, x), (want, at) in zip(got["ticks"], expected, strict=True):
            assert level == want and x == pytest.approx(at), (kpi, level)
        # Coloured by the level reached: counts against their pace in the running month.
        factor = pace if served.unit(kpi) == "count" else 1
        reached = "below"
        for level in ("minimum", "achievement", "stretch"):
            if row["value"] >= levels[level] * factor:
                reached = level
        assert got["reached"] == reached, kpi
        shown_levels = page.eval_on_selector_all(
            f'table[data-table="month-kpis"] tr[data-kpi="{kpi}"] .lv',
            "spans => spans.map(s => [s.dataset.level, Number(s.dataset.value), s.textContent])",
        )
        assert shown_levels == [
            [level, levels[level], shown(levels[level], served.unit(kpi))] for level in levels
        ]
    # The landing forecast's bars carry the month's minimum and stretch beside the target.
    ticks = page.eval_on_selector_all(
        'svg.forecast-chart g.bar-row[data-kpi="won_amount"] line[data-level]',
        "ls => ls.map(l => l.dataset.level)",
    )
    assert sorted(ticks) == ["achievement", "minimum", "stretch"]
    snap(page, screenshots, served, "10-monthly-three-levels")

    # The daily view pro-rates all three levels as it does the target: the month's ÷ 21.
    page.click('#views a[data-view="daily"]')
    wait_view(page, "daily")
    team = served.teams[0]["scope_id"]
    levels = org["org", "calls"]["targets"]
    team_levels = served.rows(scope="team", id=team, kpi="calls", **month)[team, "calls"]
    for scope_id, of in (("org", levels), (team, team_levels["targets"])):
        ticks = page.eval_on_selector_all(
            f'table[data-table="daily-day"] tr[data-scope-id="{scope_id}"] '
            'td[data-kpi="calls"] svg line.tick',
            "ls => ls.map(l => [l.dataset.level, Number(l.dataset.value)])",
        )
        assert ticks == [[level, pytest.approx(value / MONTH_DAYS)] for level, value in of.items()]
    # The daily trend draws the day's three levels as lines (the org's: the month's ÷ 21).
    lines = page.eval_on_selector_all(
        "svg.trend-chart line[data-level]", "ls => ls.map(l => l.dataset.level)"
    )
    assert sorted(lines) == ["achievement", "minimum", "stretch"]
    # The weekly funnel chart carries the minimum and the stretch as ticks beside the target.
    page.click('#views a[data-view="weekly"]')
    wait_view(page, "weekly")
    ticks = page.eval_on_selector_all(
        'svg.funnel-chart g.bar-row[data-kpi="calls"] line[data-level]',
        "ls => ls.map(l => l.dataset.level)",
    )
    assert sorted(ticks) == ["achievement", "minimum", "stretch"]
    assert errors == []


OVERFLOWING = """() => [...document.querySelectorAll('table.grid')]
    .filter(t => t.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5
                 || t.closest('.panel').scrollWidth > t.closest('.panel').clientWidth + 0.5)
    .map(t => t.dataset.table)"""


def test_tables_fit_a_1366_pixel_screen(browser: Browser, served: Served) -> None:
    """With the bars of three levels in them, and the sheets' notes and action forms of a
    member, no table and no page is wider than a 1366-px screen."""
    team = served.teams[0]["scope_id"]
    rep = sorted(r for r, of in served.reps.items() if of == team)[0]
    for locale, token in (("ja-JP", WRITE), ("en-US", READ)):
        page, errors = open_page(browser, served, locale, width=1366)
        sign_in(page, token)
        wait_view(page, "daily")
        for view in ("daily", "weekly", "monthly", "targets"):
            for scope, scope_id in (("", "org"), (f"?scope=team&id={team}", team)):
                page.goto(f"{served.url}/#/{view}{scope}")
                wait_view(page, view, scope_id)
                assert page.evaluate(OVERFLOWING) == [], (locale, view, scope)
                assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        for view in ("daily", "weekly", "monthly"):
            page.goto(f"{served.url}/#/{view}?scope=rep&id={rep}")
            wait_view(page, view, rep)
            assert page.locator("table[data-table^=sheet-]").count() >= 2
            assert page.evaluate(OVERFLOWING) == [], (locale, view, rep)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        if token == WRITE:  # the member's forms are on the page
            assert page.locator('textarea[name="note-what"]').count() == 1
        assert _http_errors(errors) == []
        page.context.close()


def test_targets_page_is_read_only_without_the_admin_role(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    page, errors = open_page(browser, served, "en-US")
    sign_in(page, READ)
    wait_view(page, "daily")
    page.click('#views a[data-view="targets"]')
    wait_view(page, "targets")
    assert page.get_attribute("#content > .view", "data-admin") == "false"
    assert page.is_visible("#read-only")
    names = page.eval_on_selector_all(
        "#content button", "bs => bs.map(b => b.getAttribute('name')).filter(Boolean)"
    )
    assert names == ["plan"]  # the plan is a read; every write is an admin's
    for absent in ("preview", "allocate", "save", "push-dry-run", "push-apply"):
        assert page.locator(f'button[name="{absent}"]').count() == 0
    assert page.locator('[name^="confirm-"], [name="edit-value"]').count() == 0
    # The reps' three levels (of the KPI chosen) and the history are there to read.
    page.select_option('select[name="targets-kpi"]', "calls")
    page.wait_for_selector('table[data-table="rep-targets"][data-kpi="calls"]')
    page.wait_for_selector("body[data-state=ready]")
    stored = served.get("/v1/targets", kpi="calls", grain="month", scope="rep")["data"]
    levels = {(t["id"], t["level"]): (t["value"], t["status"]) for t in stored}
    shown_levels = page.eval_on_selector_all(
        'table[data-table="rep-targets"] tbody tr[data-scope="rep"] td[data-level]',
        "tds => tds.map(td => [td.closest('tr').dataset.scopeId, td.dataset.level,"
        " Number(td.dataset.value), td.dataset.status])",
    )
    assert {(rep, level): (value, status) for rep, level, value, status in shown_levels} == {
        key: value for key, value in levels.items() if key[0] in served.reps
    }
    assert len(shown_levels) == 3 * len(served.reps)
    assert "Revision history" in page.inner_text("#content")
    snap(page, screenshots, served, "11-targets-read-only-en")
    assert _http_errors(errors) == []


def test_targets_page_runs_the_loop_as_admin(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    """Revenue target → plan → allocate (dry run, then drafts) → confirm → revise → push."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    page, errors = open_page(browser, served)
    sign_in(page, ADMIN)
    wait_view(page, "daily")
    page.click('#views a[data-view="targets"]')
    wait_view(page, "targets")
    assert page.get_attribute("#content > .view", "data-admin") == "true"
    team = served.teams[0]["scope_id"]
    page.select_option('select[name="parent"]', team)
    page.wait_for_selector(f'table[data-table="rep-targets"] tr.total[data-scope-id="{team}"]')
    page.wait_for_selector("body[data-state=ready]")

    # 1. The plan (逆算) from a revenue target, as POST /v1/plan answers it.
    rates = {"meeting_win_rate": 25, "meeting_conversion_rate": 10, "effective_contact_rate": 30}
    page.select_option('select[name="plan-mode"]', "amount")
    page.fill('input[name="plan-target"]', "3000000")
    for key, percent in rates.items():
        page.fill(f'input[name="{key}"]', str(percent))
    page.fill('input[name="avg_deal_size"]', "400000")
    page.click('button[name="plan"]')
    page.wait_for_selector('table[data-table="plan"]')
    body = {
        "won_amount_target": 3_000_000,
        "avg_deal_size": 400_000,
        "month": "2026-10",
        "scope": "team",
        "id": team,
        **{key: percent / 100 for key, percent in rates.items()},
    }
    plan = httpx.post(served.url + "/v1/plan", json=body, headers=admin).json()
    assert plan["won_target"] == 8  # 3,000,000 ÷ 400,000 = 7.5 → 8
    assert page.get_attribute(".plan-facts", "data-won-target") == "8"
    steps = {s["stage"]: s for s in plan["steps"]}
    assert steps["meetings_set"]["value"] == 32 and steps["calls"]["value"] == 1067
    for stage, step in steps.items():
        for name in ("value", "per_business_day", "per_rep", "per_rep_per_business_day"):
            got = page.get_attribute(
                f'table[data-table="plan"] tr[data-stage="{stage}"] td[data-field="{name}"]',
                "data-value",
            )
            assert number(got or "") == step[name], (stage, name)

    # 2. Allocate the plan's meetings over the team's reps by skill: a dry run, then drafts.
    page.click('button[name="use-meetings_set"]')
    # (A selector, not a function: the page's CSP forbids the eval a polled function needs.)
    page.wait_for_selector('input[name="allocate-value"][value="32"]')
    page.select_option('select[name="allocate-method"]', "skill")
    page.click('button[name="preview"]')
    page.wait_for_selector('table[data-table="allocation"][data-dry-run="true"]')
    split = {
        "kpi": "meetings_set",
        "grain": "month",
        "period_start": "2026-10-01",
        "scope": "team",
        "id": team,
        "value": 32,
        "method": "skill",
        "dry_run": True,
    }
    expected = httpx.post(served.url + "/v1/targets/allocate", json=split, headers=admin).json()
    shares = {r["id"]: r["value"] for r in expected["reps"]}
    assert sum(shares.values()) == 32 and len(shares) >= 2
    shown_split = page.eval_on_selector_all(
        'table[data-table="allocation"] tbody tr[data-scope-id]',
        "trs => trs.map(tr => [tr.dataset.scopeId,"
        " Number(tr.querySelector('[data-field=value]').dataset.value)])",
    )
    assert dict(shown_split) == shares
    page.click('button[name="allocate"]')
    page.wait_for_selector('table[data-table="allocation"][data-dry-run="false"]')
    stored = {
        t["id"]: t
        for t in served.get(
            "/v1/targets", kpi="meetings_set", scope="rep", grain="month", level="achievement"
        )["data"]
        if t["id"] in shares
    }
    assert {rep: t["value"] for rep, t in stored.items()} == shares
    assert {t["status"] for t in stored.values()} == {"draft"}
    rep = sorted(shares)[0]
    cell_at = (
        f'table[data-table="rep-targets"] tr[data-scope-id="{rep}"] td[data-level="achievement"]'
    )
    assert page.get_attribute(cell_at, "data-status") == "draft"
    assert number(page.get_attribute(cell_at, "data-value") or "") == shares[rep]

    # 3. Confirm one rep's drafts.
    page.click(f'button[name="confirm-{rep}"]')
    page.wait_for_selector(f'{cell_at}[data-status="confirmed"]')
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator(f'button[name="confirm-{rep}"]').count() == 0

    # 4. Change the confirmed value without a reason: the API's 422, shown as it says it.
    new_value = int(shares[rep]) + 1
    page.select_option('select[name="edit-rep"]', rep)
    page.select_option('select[name="edit-level"]', "achievement")
    page.fill('input[name="edit-value"]', str(new_value))
    page.click('button[name="save"]')
    page.wait_for_selector('#targets-message[data-status="422"]')
    change = {
        "kpi": "meetings_set",
        "grain": "month",
        "period_start": "2026-10-01",
        "scope": "rep",
        "id": rep,
        "level": "achievement",
        "value": new_value,
    }
    refused = httpx.put(served.url + "/v1/targets", json=[change], headers=admin)
    assert refused.status_code == 422
    message = refused.json()["detail"]
    message = message if isinstance(message, str) else "; ".join(d["msg"] for d in message)
    assert message in page.inner_text("#targets-message")
    assert number(page.get_attribute(cell_at, "data-value") or "") == shares[rep]  # unchanged

    # … and with a reason: stored, and the revision in the history (who, old → new, reason).
    reason = "a bigger list from marketing <b>not markup</b>"
    page.fill('input[name="edit-value"]', str(new_value))
    page.fill('input[name="edit-reason"]', reason)
    page.click('button[name="save"]')
    page.wait_for_selector(f'{cell_at}[data-value="{new_value}"]')
    page.wait_for_selector("body[data-state=ready]")
    history = served.get("/v1/targets/history", kpi="meetings_set", scope="rep", id=rep)["data"]
    latest = history[0]
    assert (latest["old_value"], latest["new_value"], latest["reason"]) == (
        shares[rep],
        new_value,
        reason,
    )
    row = page.locator(
        f'table[data-table="history"] tr[data-scope-id="{rep}"][data-kpi="meetings_set"]'
    ).first
    assert number(row.get_attribute("data-old") or "") == shares[rep]
    assert number(row.get_attribute("data-new") or "") == new_value
    assert row.locator("td.reason").inner_text() == reason  # text, not markup
    assert row.locator("td.who").inner_text() == latest["who"] and "dash-admin" not in latest["who"]
    assert row.locator("td.change").inner_text() == f"{shares[rep]:.0f} → {new_value:.0f}"
    snap(page, screenshots, served, "12-targets-admin-ja")

    # 5. Push to the simulated portal: the dry run's plan of field changes, then apply it.
    page.select_option('select[name="push-level"]', "achievement")
    page.click('button[name="push-dry-run"]')
    page.wait_for_selector('table[data-table="push"][data-dry-run="true"]')
    planned = httpx.post(served.url + "/v1/targets/push", headers=admin)
    assert planned.status_code == 200, planned.text
    (plan_out,) = planned.json()["data"]
    assert plan_out["dry_run"] and plan_out["status"] == "planned" and plan_out["rows"]
    shown_rows = page.eval_on_selector_all(
        'table[data-table="push"] tbody tr',
        "trs => trs.map(tr => [tr.dataset.rep, tr.dataset.kpi, tr.dataset.action,"
        " Number(tr.querySelector('[data-value]').dataset.value)])",
    )
    assert sorted(shown_rows) == sorted(
        [r["rep_id"], r["kpi"], r["action"], r["new_value"]] for r in plan_out["rows"]
    )
    # The rep confirmed and revised above goes out at its new value.
    assert [rep, "meetings_set", "write", new_value] in shown_rows
    summary = page.locator(".push-summary")
    assert summary.get_attribute("data-status") == "planned"
    page.click('button[name="push-apply"]')
    page.wait_for_selector('table[data-table="push"][data-dry-run="false"]')
    applied = summary.get_attribute("data-status")
    assert applied == "ok", page.inner_text("#content")
    assert number(summary.get_attribute("data-written") or "") == len(
        [r for r in plan_out["rows"] if r["action"] == "write"]
    )
    again = httpx.post(served.url + "/v1/targets/push", headers=admin).json()["data"][0]
    assert again["planned"] == 0  # written: nothing left to change
    snap(page, screenshots, served, "13-targets-push-ja")

    page.click('#lang button[data-lang="en"]')
    page.wait_for_function("document.documentElement.lang === 'en'")
    wait_view(page, "targets")
    assert "Revision history" in page.inner_text("#content")
    snap(page, screenshots, served, "14-targets-admin-en")
    assert _http_errors(errors) == []


POLL_MS = 10_000  # live.js: how often a visible page asks /v1/meta whether the data moved
CONNECTED = "f240bbac-87c9-4f6e-bf70-924b57d47db7"  # HubSpot's "Connected" call outcome


def _sync_portal(served: Served) -> None:
    """An incremental sync of the portal, as the scheduler runs it between nightly syncs."""
    assert served.portal is not None
    connector = HubSpotConnector(PORTAL_TOKEN, host=served.portal.url, sleep=lambda _: None)
    settings = Settings(
        database_url="sqlite://",
        timezone="Asia/Tokyo",
        holidays="JP",
        now=NOW,
        field_sales_teams=[FIELD_SALES],
    )
    ctx = kpi_context(settings)
    report = run_sync(served.engine, connector, trigger="test", kpi=ctx)
    assert report.status == "ok", report.error


def test_page_refreshes_itself_when_a_sync_brings_new_calls(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    assert served.portal is not None
    hub = served.portal.portal
    page, errors = open_page(browser, served, fake_clock=True)
    kpi_requests: list[str] = []
    page.on("request", lambda r: kpi_requests.append(r.url) if "/v1/kpis?" in r.url else None)
    sign_in(page)
    wait_view(page, "daily")
    rep = sorted(served.reps)[0]
    team = served.reps[rep]
    before = {
        scope_id: number(cell(page, "daily-day", scope_id, "calls")["value"])
        for scope_id in ("org", team)
    }
    assert before["org"] and before[team]
    page.evaluate("window.beforeTheSync = true")  # a reload would lose it

    # Nothing moved: a poll asks /v1/meta and the numbers are not read again.
    kpi_requests.clear()
    with page.expect_response(lambda r: r.url.endswith("/v1/meta")):
        page.clock.fast_forward(POLL_MS)
    page.wait_for_timeout(500)
    assert kpi_requests == []

    # Three outbound calls today (14:00–14:02 in Tokyo) by one rep, synced in.
    contact = hub.ids("contacts")[0]
    made = [
        hub.create(
            "calls",
            {
                "hs_timestamp": f"2026-10-28T05:0{n}:00.000Z",
                "hs_call_direction": "OUTBOUND",
                "hs_call_disposition": CONNECTED,
                "hs_call_status": "COMPLETED",
                "hs_call_duration": "90000",
                "hubspot_owner_id": rep.removeprefix("hubspot:"),
            },
            associations={"contacts": [contact]},
        )
        for n in range(3)
    ]
    try:
        _sync_portal(served)
        day = {"from": TODAY.isoformat(), "to": TODAY.isoformat(), "grain": "day", "kpi": "calls"}
        assert served.rows(scope="org", **day)["org", "calls"]["value"] == before["org"] + 3
        page.clock.fast_forward(POLL_MS)
        for scope_id in ("org", team):
            expected = before[scope_id] + 3
            selector = (
                f'table[data-table="daily-day"] tr[data-scope-id="{scope_id}"] td[data-kpi="calls"]'
            )
            page.wait_for_function(
                "([selector, expected]) => document.querySelector(selector)?.dataset.value"
                " === String(expected)",
                arg=[selector, expected],
                timeout=20_000,
            )
            assert cell(page, "daily-day", scope_id, "calls")["shown"] == shown(expected, "count")
        assert page.evaluate("window.beforeTheSync") is True  # the same page: no reload
        # The sync just finished: the header says so, and its tooltip names each source.
        updated = page.locator("#updated")
        assert updated.inner_text() == "たった今更新"
        tooltip = updated.get_attribute("title") or ""
        assert "HubSpot: 最終同期" in tooltip and "Salesforce: 最終同期" in tooltip
        snap(page, screenshots, served, "15-daily-refreshed-by-itself")
    finally:
        # The CRM deletes them again and the next sync takes them out: the store's numbers
        # are back where the other tests expect them.
        for crm_id in made:
            hub.archive("calls", crm_id)
        _sync_portal(served)
    day = {"from": TODAY.isoformat(), "to": TODAY.isoformat(), "grain": "day", "kpi": "calls"}
    assert served.rows(scope="org", **day)["org", "calls"]["value"] == before["org"]
    assert _http_errors(errors) == []


def test_freshness_ticks_and_the_poll_speeds_up_backs_off_and_pauses(
    browser: Browser, served: Served
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # /v1/meta as the test says: the last sync 150 s old, a run in progress or not, or failing.
    meta = served.get("/v1/meta")
    answer: dict[str, Any] = {"fail": False, "running": False, "today": meta["today"]}
    polls: list[float] = []

    def is_meta(request: Any) -> bool:
        return bool(request.url.endswith("/v1/meta"))

    def fake_meta(route: Any) -> None:
        polls.append(time.monotonic())
        if answer["fail"]:
            route.fulfill(status=503, json={"detail": "down for a moment"})
            return
        syncs = [{**sync, "running": answer["running"]} for sync in meta["syncs"]]
        route.fulfill(
            json={**meta, "syncs": syncs, "freshness_seconds": 150, "today": answer["today"]}
        )

    page, errors = open_page(browser, served, fake_clock=True)
    page.route("**/v1/meta", fake_meta)
    kpi_requests: list[str] = []
    page.on("request", lambda r: kpi_requests.append(r.url) if "/v1/kpis?" in r.url else None)
    sign_in(page)
    wait_view(page, "daily")
    updated = page.locator("#updated")
    assert updated.inner_text() == "2分前に更新"
    assert updated.get_attribute("data-freshness-seconds") == "150"
    kpi_requests.clear()

    def polled_after(ms: int, *, expected: bool) -> bool:
        """Whether moving the page's clock on by ``ms`` makes it ask /v1/meta. An expected
        poll is waited for (5 s, real time) until the page has its answer and has planned
        the next one; a request not made within 0.5 s is taken as not made."""
        before = len(polls)
        if not expected:
            page.clock.fast_forward(ms)
            page.wait_for_timeout(500)
            return len(polls) > before
        try:
            with page.expect_event("requestfinished", is_meta, timeout=5_000):
                page.clock.fast_forward(ms)
        except PlaywrightTimeout:
            return False
        page.wait_for_timeout(200)  # the answer read, the next poll planned
        return True

    # The next poll fails: the freshness goes on counting from the last answer (150 s + 60 s).
    answer["fail"] = True
    assert polled_after(60_000, expected=True)
    page.wait_for_function("() => document.querySelector('#updated').dataset.failing === 'true'")
    assert updated.inner_text() == "3分前に更新"
    assert "更新を確認できません" in (updated.get_attribute("title") or "")
    # Backing off: 20 s after the first failure, 40 s after the second.
    assert not polled_after(15_000, expected=False)
    assert polled_after(6_000, expected=True)
    assert not polled_after(35_000, expected=False)
    assert polled_after(6_000, expected=True)
    # Answering again, with a sync running: every 3 s; once it ends, every 10 s.
    answer["fail"], answer["running"] = False, True
    assert polled_after(80_000, expected=True)
    page.wait_for_function("() => document.querySelector('#updated').dataset.failing === 'false'")
    assert updated.inner_text() == "2分前に更新"
    assert "同期中" in (updated.get_attribute("title") or "")
    assert polled_after(3_500, expected=True)
    answer["running"] = False
    assert polled_after(3_500, expected=True)
    assert not polled_after(5_000, expected=False)
    assert polled_after(6_000, expected=True)
    # A hidden tab does not ask; shown again, it asks at once.
    page.evaluate(
        """() => {
            Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
            document.dispatchEvent(new Event('visibilitychange'));
        }"""
    )
    assert not polled_after(60_000, expected=False)
    before = len(polls)
    page.evaluate(
        """() => {
            Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
            document.dispatchEvent(new Event('visibilitychange'));
        }"""
    )
    page.wait_for_timeout(300)
    assert len(polls) == before + 1
    # Four minutes of polls and the same data version: the numbers were never read again.
    assert kpi_requests == []
    # The business day turned (the version did not): the page reads its numbers again.
    answer["today"] = (TODAY + timedelta(days=1)).isoformat()
    with page.expect_request(lambda r: "/v1/kpis?" in r.url, timeout=10_000):
        assert polled_after(POLL_MS, expected=True)
    wait_view(page, "daily")
    # English.
    page.click('#lang button[data-lang="en"]')
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert updated.inner_text() == "updated 2 min ago"
    assert _http_errors(errors) == []


def test_new_numbers_wait_while_a_member_types_a_note(browser: Browser, served: Served) -> None:
    page, errors = open_page(browser, served, fake_clock=True)
    reads: list[str] = []  # what the page asks the API, besides /v1/meta

    def read(request: Any) -> None:
        if "/v1/" in request.url and not request.url.endswith("/v1/meta"):
            reads.append(request.url)

    page.on("request", read)
    sign_in(page, WRITE)
    wait_view(page, "daily")
    note = page.locator('textarea[name="note-tomorrow"]')
    note.click()
    page.keyboard.type("途中まで")
    # A sync page with nothing new in it (the cursor saved again) moves the data version.
    version = served.get("/v1/meta")["data_version"]
    with served.engine.begin() as conn:
        state = store.load_state(conn, "hubspot", "calls")
        assert state is not None
        store.save_state(conn, "hubspot", "calls", state, datetime.now(UTC))
    # The server re-reads the version within ISKPI_API_CACHE_CHECK_SECONDS (1 s).
    deadline = time.monotonic() + 5
    while served.get("/v1/meta")["data_version"] == version:
        assert time.monotonic() < deadline, "the data version did not move"
        time.sleep(0.1)
    reads.clear()
    with page.expect_response(lambda r: r.url.endswith("/v1/meta")):
        page.clock.fast_forward(POLL_MS)
    page.wait_for_timeout(1500)
    assert reads == []  # nothing read again, nothing redrawn under the typing member
    assert page.evaluate("document.activeElement.name") == "note-tomorrow"
    # Leaving the field brings the new numbers, and what was typed stays.
    with page.expect_request(lambda r: "/v1/kpis?" in r.url, timeout=10_000):
        note.blur()
    wait_view(page, "daily")
    assert page.input_value('textarea[name="note-tomorrow"]') == "途中まで"
    assert _http_errors(errors) == []


# --- the review sheets: numbers, notes, actions, printing ------------------------------------


def write_as_member(served: Served, method: str, path: str, body: dict[str, Any]) -> Any:
    """A write of the API with the member (write) token, as a BI tool or a script would."""
    response = httpx.request(
        method, served.url + path, json=body, headers={"Authorization": f"Bearer {WRITE}"}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def sheet_cells(page: Page, table: str) -> dict[tuple[str, str], str]:
    """A sheet table's cells by (kpi, field): their data-value."""
    found = page.eval_on_selector_all(
        f'table[data-table="{table}"] tbody tr[data-kpi] td[data-field]',
        "tds => tds.map(td => [td.closest('tr').dataset.kpi, td.dataset.field, td.dataset.value])",
    )
    return {(kpi, name): value for kpi, name, value in found}


def test_sheets_show_their_numbers(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    page, errors = open_page(browser, served)
    sign_in(page)
    wait_view(page, "daily")
    assert page.get_attribute(".sheet-view", "data-sheet") == "daily"
    month = {"from": OCTOBER[0].isoformat(), "to": OCTOBER[1].isoformat(), "grain": "month"}
    org_month = served.rows(scope="org", **month)
    daily = served.get("/v1/sheets/daily", date=TODAY.isoformat())
    cells = sheet_cells(page, "sheet-daily")
    for item in daily["counts"]:
        kpi = item["kpi"]
        for name, value in (
            ("midday_actual", item["midday"]["actual"]),
            ("midday_target", item["midday"]["target"]),
            ("actual", item["end_of_day"]["actual"]),
            ("target", item["end_of_day"]["target"]),
            ("progress", item["end_of_day"]["progress"]),
        ):
            assert number(cells[kpi, name]) == (None if value is None else pytest.approx(value))
    # The day's calls target: October's org target ÷ its 21 business days; half of it at noon.
    day_target = org_month["org", "calls"]["target"] / MONTH_DAYS
    assert number(cells["calls", "target"]) == pytest.approx(day_target)
    assert number(cells["calls", "midday_target"]) == pytest.approx(day_target / 2)
    assert cells["connects", "target"] == ""  # connects has no target of its own

    page.click('#views a[data-view="weekly"]')
    wait_view(page, "weekly")
    assert page.get_attribute(".sheet-view", "data-period") == "2026-W44"
    weekly = served.get("/v1/sheets/weekly", week="2026-W44")
    cells = sheet_cells(page, "sheet-weekly")
    for item in weekly["kpis"]:
        for name in ("target", "actual", "achievement", "pace_target", "previous_actual"):
            want = item[name]
            assert number(cells[item["kpi"], name]) == (
                None if want is None else pytest.approx(want)
            ), (item["kpi"], name)
    last_week = served.rows(scope="org", grain="week", **{"from": "2026-10-19", "to": "2026-10-25"})
    assert number(cells["calls", "previous_actual"]) == last_week["org", "calls"]["value"] > 0
    verdict = page.locator(".sheet-verdict")
    assert verdict.get_attribute("data-bottleneck") == (weekly["funnel"]["bottleneck"] or "")

    page.click('#views a[data-view="monthly"]')
    wait_view(page, "monthly")
    monthly = served.get("/v1/sheets/monthly", month="2026-10")
    cells = sheet_cells(page, "sheet-monthly")
    assert {kpi for kpi, _ in cells} == set(served.catalog)  # every KPI
    for item in monthly["kpis"]:
        assert number(cells[item["kpi"], "actual"]) == org_month["org", item["kpi"]]["value"]
        assert number(cells[item["kpi"], "target"]) == org_month["org", item["kpi"]]["target"]
    landing = sheet_cells(page, "sheet-monthly-forecast")
    for row in monthly["forecast"]["rows"]:
        assert number(landing[row["kpi"], "forecast"]) == pytest.approx(row["forecast"])
        # The landing against the full month's target, not its pace.
        assert number(landing[row["kpi"], "achievement"]) == pytest.approx(
            row["forecast"] / row["target"] if row["target"] else None
        )
    basis = page.locator(".forecast-basis")
    assert (basis.get_attribute("data-elapsed"), basis.get_attribute("data-days")) == ("19", "21")
    reps = page.eval_on_selector_all(
        'table[data-table="sheet-monthly-reps"] tbody tr',
        "trs => trs.map(tr => tr.dataset.scopeId)",
    )
    assert sorted(reps) == sorted(served.reps)
    snap(page, screenshots, served, "15-monthly-sheet")
    assert errors == []


def test_running_week_is_coloured_by_pace(browser: Browser, served: Served) -> None:
    """Wednesday of a five-day week: the calls are behind the whole week's target, on pace."""
    page, errors = open_page(browser, served)
    sign_in(page)
    wait_view(page, "daily")
    page.click('#views a[data-view="weekly"]')
    wait_view(page, "weekly")
    week = served.rows(scope="org", grain="week", **{"from": "2026-10-26", "to": "2026-11-01"})
    month = served.rows(scope="org", grain="month", **{"from": "2026-10-01", "to": "2026-10-31"})
    actual, month_target = week["org", "calls"]["value"], month["org", "calls"]["target"]
    week_target = month_target * WEEK_DAYS / MONTH_DAYS  # no week target: October's, pro-rated
    pace_target = week_target * WEEK_ELAPSED / WEEK_DAYS  # Mon–Wed of Mon–Fri
    assert actual / week_target < 0.8 <= 1 <= actual / pace_target  # red by target, on pace
    row = page.locator('table[data-table="sheet-weekly"] tr[data-kpi="calls"]')
    assert row.get_attribute("data-tone") == "tone-good"
    cells = sheet_cells(page, "sheet-weekly")
    assert number(cells["calls", "pace_target"]) == pytest.approx(pace_target)
    assert number(cells["calls", "pace_achievement"]) == pytest.approx(actual / pace_target)
    assert number(cells["calls", "achievement"]) == pytest.approx(actual / week_target)
    assert row.locator('td[data-field="achievement"]').get_attribute("class") == "num tone-good"
    assert row.locator('td[data-field="achievement"]').inner_text() == share(actual / week_target)
    # A row with no activity is never green: deals created this week, none yet.
    assert week["org", "deals_created"]["value"] == 0
    idle = page.locator('table[data-table="sheet-weekly"] tr[data-kpi="deals_created"]')
    assert idle.get_attribute("data-tone") == "tone-bad"
    assert errors == []


def test_member_writes_notes_and_an_action_that_a_reload_reads_back(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    team = served.teams[0]["scope_id"]
    rep = sorted(r for r, of in served.reps.items() if of == team)[0]
    page, errors = open_page(browser, served, "en-US")
    sign_in(page, WRITE)
    wait_view(page, "daily")
    page.goto(f"{served.url}/#/weekly?scope=team&id={team}")
    wait_view(page, "weekly", team)
    assert page.get_attribute(".sheet-view", "data-write") == "true"
    hypothesis = f"{served.store}: the connect rate drops after 17:00\n→ lists by time zone"
    page.fill('textarea[name="note-hypotheses"]', hypothesis)
    page.fill('textarea[name="note-next_focus"]', "ヒアリング項目を3つに絞る")
    page.click('button[name="save-notes"]')
    page.wait_for_selector("#notes-message.ok")
    page.wait_for_selector("body[data-state=ready]")

    # An action without a title: the API's 422, its message next to the form.
    page.fill('input[name="action-due"]', "2026-10-30")
    page.click('button[name="add-action"]')
    page.wait_for_selector('#actions-message[data-status="422"]')
    body = {"title": "", "owner": rep, "due": "2026-10-30", "week": "2026-W44"}
    refused = httpx.post(
        served.url + "/v1/actions", json=body, headers={"Authorization": f"Bearer {WRITE}"}
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["msg"] in page.inner_text("#actions-message")
    title = f"{served.store}: call 10:00–12:00, the list sorted by region"
    page.fill('input[name="action-title"]', title)
    page.select_option('select[name="action-owner"]', rep)
    page.select_option('select[name="action-kpi"]', "connect_rate")
    page.click('button[name="add-action"]')
    page.wait_for_selector("#actions-message.ok")
    page.wait_for_selector("body[data-state=ready]")

    page.reload()
    wait_view(page, "weekly", team)
    assert page.input_value('textarea[name="note-hypotheses"]') == hypothesis
    assert page.input_value('textarea[name="note-next_focus"]') == "ヒアリング項目を3つに絞る"
    who = page.get_attribute('.note-field[data-field="hypotheses"] .who-when', "data-by") or ""
    assert who.startswith("write#1 (hmac:") and WRITE not in who
    row = page.locator('table[data-table="sheet-actions"] tr', has_text=title)
    assert row.get_attribute("data-status") == "open" and row.get_attribute("data-owner") == rep
    assert row.locator("td.owner").inner_text() == next(
        r["name"] for t in served.get("/v1/teams")["data"] for r in t["reps"] if r["id"] == rep
    )
    assert row.locator("td.due").inner_text() == "2026-10-30"
    assert row.locator("td.kpi-name").inner_text() == served.catalog["connect_rate"]["names"]["en"]
    # … and through the API.
    sheet = served.get("/v1/sheets/weekly", week="2026-W44", scope="team", id=team)
    assert sheet["notes"]["hypotheses"] == hypothesis
    assert sheet["notes"]["next_focus"] == "ヒアリング項目を3つに絞る"
    (action,) = [a for a in sheet["actions"] if a["title"] == title]
    assert (action["owner"], action["due"], action["kpi"], action["week"]) == (
        rep,
        "2026-10-30",
        "connect_rate",
        "2026-W44",
    )
    assert (action["scope"], action["scope_id"], action["status"]) == ("team", team, "open")
    snap(page, screenshots, served, "16-weekly-sheet-member-en")
    # The team's daily sheet lists it too, while it is open.
    page.goto(f"{served.url}/#/daily?scope=team&id={team}")
    wait_view(page, "daily", team)
    daily_row = page.locator('table[data-table="sheet-actions"] tr', has_text=title)
    assert daily_row.get_attribute("data-action-id") == str(action["id"])
    page.goto(f"{served.url}/#/weekly?scope=team&id={team}")
    wait_view(page, "weekly", team)

    # Done, with its result.
    page.fill(f'input[name="result-{action["id"]}"]', "connect rate 27 % → 31 %")
    page.click(f'button[name="done-{action["id"]}"]')
    page.wait_for_selector(f'tr[data-action-id="{action["id"]}"][data-status="done"]')
    page.wait_for_selector("body[data-state=ready]")
    done = [a for a in served.get("/v1/actions", owner=rep)["data"] if a["id"] == action["id"]]
    assert (done[0]["status"], done[0]["result"]) == ("done", "connect rate 27 % → 31 %")
    assert page.locator(f'button[name="done-{action["id"]}"]').count() == 0
    assert _http_errors(errors) == []


HOSTILE = {
    "went_well": '<img src=x onerror="window.__pwned=1">',
    "issues": "<script>window.__pwned=2</script>",
    "tomorrow": "</textarea><b>bold?</b>",
}


def test_hostile_notes_are_shown_as_text(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    day = TODAY.isoformat()
    write_as_member(
        served, "PUT", "/v1/sheets/daily/notes", {"period": day, "scope": "org", "notes": HOSTILE}
    )
    title = f'{served.store}: <img src=x onerror="window.__pwned=3">'
    owner = sorted(served.reps)[0]
    action = {"title": title, "owner": owner, "due": day, "week": "2026-W44"}
    write_as_member(served, "POST", "/v1/actions", action)
    for token in (READ, WRITE):
        page, errors = open_page(browser, served)
        sign_in(page, token)
        wait_view(page, "daily")
        notes = page.locator(".panel.notes")
        for field, written in HOSTILE.items():
            if token == READ:
                shown_text = notes.locator(f'.note-text[data-field="{field}"]').text_content()
            else:
                shown_text = page.input_value(f'textarea[name="note-{field}"]')
            assert shown_text == written, (token, field)
        assert notes.locator("img, script, b").count() == 0
        row = page.locator('table[data-table="sheet-actions"] tr', has_text=title)
        assert row.locator("td.title").text_content() == title
        assert page.locator("#content img").count() == 0
        assert page.evaluate("typeof window.__pwned") == "undefined"
        if token == READ:
            snap(page, screenshots, served, "17-daily-hostile-notes-read")
        assert errors == []
        page.context.close()


def test_a_reader_sees_notes_and_actions_but_cannot_edit_them(
    browser: Browser, served: Served, screenshots: list[Path]
) -> None:
    team = served.teams[-1]["scope_id"]
    rep = sorted(r for r, of in served.reps.items() if of == team)[0]
    notes = {"successes": f"{served.store}: the new opener", "next_focus": "follow-ups in 24 h"}
    period = {"period": "2026-W44", "scope": "team", "id": team}
    written = write_as_member(served, "PUT", "/v1/sheets/weekly/notes", {**period, "notes": notes})
    title = f"{served.store}: pair calls on Thursday"
    body = {"title": title, "owner": rep, "due": "2026-10-29", "week": "2026-W44"}
    write_as_member(served, "POST", "/v1/actions", {**body, "scope": "team", "id": team})
    page, errors = open_page(browser, served)
    sign_in(page, READ)
    wait_view(page, "daily")
    page.goto(f"{served.url}/#/weekly?scope=team&id={team}")
    wait_view(page, "weekly", team)
    assert page.get_attribute(".sheet-view", "data-write") == "false"
    for field, note in notes.items():
        assert page.locator(f'.note-text[data-field="{field}"]').text_content() == note
    assert written["notes"]["hypotheses"] is None
    assert page.locator('.note-text[data-field="hypotheses"]').text_content() == DASH
    row = page.locator('table[data-table="sheet-actions"] tr', has_text=title)
    assert row.get_attribute("data-status") == "open"
    # Nothing to edit: no textarea, no Save, no add-action form, no Done or Drop.
    assert page.locator("#content textarea").count() == 0
    assert page.locator('[data-form="add-action"], button[name="save-notes"]').count() == 0
    assert page.locator('button[name^="done-"], button[name^="drop-"]').count() == 0
    assert page.locator('input[name^="result-"]').count() == 0
    snap(page, screenshots, served, "18-weekly-sheet-read-only")

    # Printed: the sheet's numbers, notes and actions; no navigation, no other panel.
    page.emulate_media(media="print")
    assert page.locator("#views").is_hidden() and page.locator("#freshness").is_hidden()
    assert page.locator('button[name="print"]').is_hidden()
    assert page.locator('table[data-table="sheet-weekly"]').is_visible()
    assert page.locator('.note-text[data-field="successes"]').is_visible()
    assert row.is_visible()
    assert page.locator("svg.funnel-chart").is_hidden()  # the dashboard's own panels
    snap(page, screenshots, served, "19-weekly-sheet-print")
    assert errors == []


def test_a_member_prints_the_notes_as_text(browser: Browser, served: Served) -> None:
    page, errors = open_page(browser, served)
    sign_in(page, WRITE)
    wait_view(page, "daily")
    page.goto(f"{served.url}/#/monthly")
    wait_view(page, "monthly")
    assert page.is_visible('button[name="print"]')
    page.fill('textarea[name="note-what"]', "meetings 12 of 20\nconversion 3.3 %")
    # A refresh (every few seconds while a sync runs) keeps what is typed and not yet saved.
    with page.expect_response(lambda response: "/v1/sheets/monthly" in response.url):
        page.click("#refresh")
    page.wait_for_selector("body[data-state=ready]")
    assert page.input_value('textarea[name="note-what"]') == "meetings 12 of 20\nconversion 3.3 %"
    assert served.get("/v1/sheets/monthly", month="2026-10")["notes"]["what"] is None
    page.emulate_media(media="print")
    assert page.locator('textarea[name="note-what"]').is_hidden()
    mirror = page.locator('.note-field[data-field="what"] .print-text')
    assert mirror.is_visible() and mirror.text_content() == "meetings 12 of 20\nconversion 3.3 %"
    assert page.locator('button[name="save-notes"]').is_hidden()
    assert page.locator('[data-form="add-action"]').count() == 0  # the monthly sheet has none
    # A note per rep, one for each rep of the sheet.
    rep_fields = page.eval_on_selector_all(
        ".rep-notes .note-field", "fs => fs.map(f => f.dataset.field)"
    )
    assert sorted(rep_fields) == sorted(f"rep_notes.{rep}" for rep in served.reps)
    assert _http_errors(errors) == []
