"""Pacing alerts and the weekly digest, posted to a real local webhook, on both engines.

The store, worked by hand (Asia/Tokyo, UTC+9; JP holidays; December 2026 has 23 business
days, November 19; timestamps below are JST):

Thu 3 Dec 2026, call targets and outbound calls:
  Aiko (r1): a day target of 20 → midday pace 10, end of day 20.
      09:00–11:00 nine calls (9 ≥ 0.8 × 10 = 8: on pace);
      13:00–15:00 seven more: 16 = 0.8 × 20 exactly, which is not below: on pace.
  Ben (r2): a December target of 230 → 230 ÷ 23 = 10 a day, midday pace 5.
      09:00, 10:00, 11:59:59: three calls (3 < 0.8 × 5 = 4: behind, 3 ÷ 5 = 60 %);
      12:00:00 exactly (after the midday check), 14:00, 15:00, 16:00: seven in all
      (7 < 0.8 × 10 = 8: behind, 70 %).
  Chie (r3): no target; her call counts for nobody's pace.

Week 2026-W49 (Mon 30 Nov – Sun 6 Dec) at org scope, with week targets calls 27,
meetings_set 4, won_amount 400,000, connect_rate 0.4, meeting_conversion_rate 0.5,
win_rate 0.25 (the Thursday calls above are in W49: 16 + 7 + 1 = 24, and 3 more on
Mon 30 Nov):
  calls 27 of 27 (100 %); connected: the Monday three, of which two ≥ 60 s (effective),
  so connect_rate 3 ÷ 27 = 0.111 against 0.4 (28 %), meeting_conversion_rate 1 meeting ÷ 2
  effective = 0.5 against 0.5 (100 %); meetings_set 1 of 4 (25 %); deals closed: one won
  (300,000) and one lost, win_rate 0.5 against 0.25 (200 %); won_amount 300,000 of
  400,000 (75 %). The one rate below target is connect_rate: the bottleneck; calls are
  on target but meetings_set is not, so the cause is quality: connect_rate's hint and
  the quality approach.
A call on Mon 7 Dec 08:00 (W50) and one on Tue 24 Nov (W48) are outside the week.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import Engine, inspect, select

from connectors.base import SourceConnector
from connectors.hubspot import HubSpotConnector
from connectors.records import Deal, Meeting, Record, Rep, Team
from kpi import KpiContext, Target, put_targets
from models import Alert, Base, SyncRun
from service.alerts.dispatch import AlertConfig, after_sync_pass, send_due_alerts
from service.alerts.due import AlertKey, due_alerts
from service.alerts.messages import number
from service.alerts.webhook import post
from service.db import downgrade, migrate
from service.settings import Settings
from service.sync.run import SyncReport
from service.sync.scheduler import scheduled_sync
from service.workday import BusinessHours
from simulators.hubspot.portal import HubSpotPortal, serve_portal
from tests.support.db import ENGINES, bare_store
from tests.support.hubspot import TOKEN, small_dataset
from tests.support.kpi_records import H, at, call, put
from tests.support.webhook import SECRET_PATH, refused_url, webhook_receiver

CTX = KpiContext(timezone="Asia/Tokyo", holidays="JP")
HOURS = BusinessHours.parse("08:00-20:00")
DEC_3, W49 = date(2026, 12, 3), date(2026, 11, 30)
R1, R2 = "hubspot:r1", "hubspot:r2"


def utc(jst_text: str) -> str:
    """A JST wall-clock time as the UTC text the record builders take."""
    return (datetime.fromisoformat(jst_text) - timedelta(hours=9)).isoformat()


def jst(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC) - timedelta(hours=9)


def calls(prefix: str, rep: str, times: list[str], **kw: Any) -> list[Record]:
    return [call(f"{prefix}{i}", utc(t), rep_crm_id=rep, **kw) for i, t in enumerate(times)]


FIXTURE: list[Record] = [
    Team(source=H, crm_id="t1", name="Tokyo"),
    Rep(source=H, crm_id="r1", name="Aiko", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Ben", team_crm_id="t1"),
    Rep(source=H, crm_id="r3", name="Chie", team_crm_id="t1"),
    *calls(
        "a",
        "r1",
        [f"2026-12-03T{h:02d}:{m:02d}" for h in (9, 10, 11) for m in (0, 20, 40)]
        + [f"2026-12-03T{h:02d}:{m:02d}" for h in (13, 14) for m in (0, 20, 40)]
        + ["2026-12-03T15:00"],
        outcome="no_answer",
    ),
    *calls(
        "b",
        "r2",
        ["2026-12-03T09:00", "2026-12-03T10:00", "2026-12-03T11:59:59"]
        + ["2026-12-03T12:00:00", "2026-12-03T14:00", "2026-12-03T15:00", "2026-12-03T16:00"],
        outcome="busy",
    ),
    *calls("c", "r3", ["2026-12-03T10:30"], outcome="no_answer"),
    # Mon 30 Nov: three connected calls, two of them effective (≥ 60 s).
    call("m1", utc("2026-11-30T10:00"), duration_ms=120_000, rep_crm_id="r1"),
    call("m2", utc("2026-11-30T11:00"), duration_ms=60_000, rep_crm_id="r1"),
    call("m3", utc("2026-11-30T12:00"), duration_ms=30_000, rep_crm_id="r2"),
    Meeting(source=H, crm_id="mt1", booked_at=at(utc("2026-11-30T15:00")), rep_crm_id="r1"),
    Deal(
        source=H,
        crm_id="d1",
        created_at=at(utc("2026-11-02T10:00")),
        closed_at=at(utc("2026-12-02T10:00")),
        amount=Decimal("300000"),
        is_closed=True,
        is_won=True,
        rep_crm_id="r1",
    ),
    Deal(
        source=H,
        crm_id="d2",
        created_at=at(utc("2026-11-02T10:00")),
        closed_at=at(utc("2026-12-04T10:00")),
        amount=Decimal("500000"),
        is_closed=True,
        is_won=False,
        rep_crm_id="r2",
    ),
    call("w50", utc("2026-12-07T08:00"), rep_crm_id="r1"),
    call("w48", utc("2026-11-24T10:00"), rep_crm_id="r1"),
]

TARGETS = [
    Target("calls", "day", DEC_3, "rep", R1, 20.0),
    Target("calls", "month", date(2026, 12, 1), "rep", R2, 230.0),
    *(
        Target(kpi, "week", W49, "org", "org", value)
        for kpi, value in {
            "calls": 27.0,
            "meetings_set": 4.0,
            "won_amount": 400_000.0,
            "connect_rate": 0.4,
            "meeting_conversion_rate": 0.5,
            "win_rate": 0.25,
        }.items()
    ),
]

MIDDAY_TEXT = "\n".join(
    [
        "*昼の架電ペース* 2026-12-03 (木) 12:00 時点",
        "目標ペースの 80% に届いていない担当者: 1 名 / 架電目標のある 2 名",
        "• Ben: 架電 3 件 / 目標 5 件 (60%)",
        "(目標 = 日次の架電目標の半分)",
    ]
)
END_OF_DAY_TEXT = "\n".join(
    [
        "*終業時の架電ペース* 2026-12-03 (木)",
        "目標ペースの 80% に届いていない担当者: 1 名 / 架電目標のある 2 名",
        "• Ben: 架電 7 件 / 目標 10 件 (70%)",
        "(目標 = 日次の架電目標)",
    ]
)
DIGEST_TEXT = "\n".join(
    [
        "*週次ダイジェスト* 2026-W49 (11/30〜12/06) 組織全体",
        "• 架電数 (calls): 27 / 目標 27 (達成率 100%)",
        "• 商談設定数 (meetings_set): 1 / 目標 4 (達成率 25%)",
        "• 受注金額 (won_amount): 300,000 / 目標 400,000 (達成率 75%)",
        "ボトルネック: 接続率 (connect_rate) 達成率 28%",
        "原因: 質 (率が目標に届いていない)",
        "見直す点: リストの質・架電時間帯",
        "打ち手: スキル向上・トーク改善・ターゲット見直し",
    ]
)


@pytest.fixture
def store(engine: Engine) -> Engine:
    put(engine, FIXTURE)
    put_targets(engine, TARGETS)
    return engine


def config(url: str) -> AlertConfig:
    return AlertConfig(SecretStr(url), HOURS)


def alerts(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Alert).order_by(Alert.id)).mappings().all()
    return [dict(row) for row in rows]


# --- what is due when ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "due"),
    [
        ("2026-12-03T11:59", []),
        ("2026-12-03T12:00", [("midday", DEC_3)]),
        ("2026-12-03T19:59", [("midday", DEC_3)]),
        ("2026-12-03T20:00", [("end_of_day", DEC_3)]),
        ("2026-12-04T02:00", [("end_of_day", DEC_3)]),  # the nightly sync, before 08:00
        ("2026-12-04T08:00", []),
        ("2026-12-05T13:00", []),  # Saturday
        # A holiday Monday has no pacing check; its digest is due into Tuesday, the week's
        # first business day, as no intraday sync runs on the holiday.
        ("2026-11-23T13:00", [("weekly_digest", date(2026, 11, 16))]),
        ("2026-11-24T02:00", [("weekly_digest", date(2026, 11, 16))]),
        (
            "2026-11-24T12:00",
            [("midday", date(2026, 11, 24)), ("weekly_digest", date(2026, 11, 16))],
        ),
        ("2026-11-25T09:00", []),
        ("2026-12-07T08:59", []),
        ("2026-12-07T09:00", [("weekly_digest", W49)]),
        ("2026-12-07T12:30", [("midday", date(2026, 12, 7)), ("weekly_digest", W49)]),
        ("2026-12-08T10:00", []),  # Tuesday after a business Monday: the digest's day is over
    ],
)
def test_what_is_due_when(local: str, due: list[tuple[str, date]]) -> None:
    clock = datetime.fromisoformat(local)
    assert due_alerts(clock.date(), clock.time(), CTX, HOURS) == [AlertKey(*d) for d in due]  # type: ignore[arg-type]


# --- contents -----------------------------------------------------------------------------------


def test_the_midday_alert_lists_the_reps_below_80_percent_of_half_the_day_target(
    store: Engine,
) -> None:
    with webhook_receiver() as hook:
        sent = send_due_alerts(store, CTX, config(hook.url), jst("2026-12-03T12:05"))
        assert sent == [AlertKey("midday", DEC_3)]
        assert hook.texts == [MIDDAY_TEXT]
        assert hook.paths == [SECRET_PATH]
    (record,) = alerts(store)
    assert (record["kind"], record["period_start"], record["status"]) == ("midday", DEC_3, "sent")
    assert (record["attempts"], record["last_error"], record["text"]) == (1, None, MIDDAY_TEXT)
    assert record["sent_at"] is not None and record["delivering_since"] is None


def test_the_end_of_day_alert_compares_the_whole_day_with_the_day_target(store: Engine) -> None:
    with webhook_receiver() as hook:
        send_due_alerts(store, CTX, config(hook.url), jst("2026-12-03T20:00:40"))
        assert hook.texts == [END_OF_DAY_TEXT]


def test_everyone_on_pace_is_said_so(store: Engine) -> None:
    put_targets(store, [Target("calls", "month", date(2026, 12, 1), "rep", R2, 46.0)])  # 2 a day
    with webhook_receiver() as hook:
        send_due_alerts(store, CTX, config(hook.url), jst("2026-12-03T12:05"))
        assert hook.texts == [
            "*昼の架電ペース* 2026-12-03 (木) 12:00 時点\n"
            "架電目標のある 2 名全員が目標ペースの 80% 以上です。\n"
            "(目標 = 日次の架電目標の半分)"
        ]


def test_no_pacing_alert_without_call_targets(engine: Engine) -> None:
    put(engine, FIXTURE)
    with webhook_receiver() as hook:
        assert send_due_alerts(engine, CTX, config(hook.url), jst("2026-12-03T12:05")) == []
        assert hook.texts == []
    assert alerts(engine) == []


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1234.0, "1,234"),
        (800 / 21 / 2, "19"),
        (230 / 19, "12.1"),
        (300_000.5, "300,000.5"),
        (None, "-"),
    ],
)
def test_numbers_read_as_counts_with_at_most_one_decimal(value: float | None, shown: str) -> None:
    assert number(value) == shown


def test_the_monday_digest_reports_last_week_against_target(store: Engine) -> None:
    with webhook_receiver() as hook:
        sent = send_due_alerts(store, CTX, config(hook.url), jst("2026-12-07T09:10"))
        assert sent == [AlertKey("weekly_digest", W49)]
        assert hook.texts == [DIGEST_TEXT]


# --- once only ----------------------------------------------------------------------------------


def test_each_alert_is_sent_once_across_calls_and_replicas(store: Engine) -> None:
    with webhook_receiver() as hook:
        start = threading.Barrier(2)
        results: list[list[AlertKey]] = []

        def replica() -> None:
            start.wait()
            results.append(send_due_alerts(store, CTX, config(hook.url), jst("2026-12-03T12:05")))

        threads = [threading.Thread(target=replica) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == [[], [AlertKey("midday", DEC_3)]]
        # The next sync of the same window sends nothing more.
        assert send_due_alerts(store, CTX, config(hook.url), jst("2026-12-03T12:20")) == []
        assert hook.texts == [MIDDAY_TEXT]
    assert [(a["kind"], a["status"], a["attempts"]) for a in alerts(store)] == [
        ("midday", "sent", 1)
    ]


def test_a_failing_webhook_is_retried_at_the_next_sync_and_delivered_once(
    store: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with webhook_receiver(statuses=[500]) as hook:
        url = hook.url
        assert send_due_alerts(store, CTX, config(url), jst("2026-12-03T12:05")) == []
        (pending,) = alerts(store)
        assert (pending["status"], pending["attempts"]) == ("pending", 1)
        assert pending["last_error"] == "HTTP 500: internal_error"
        assert pending["delivering_since"] is None
        assert send_due_alerts(store, CTX, config(url), jst("2026-12-03T12:20")) == [
            AlertKey("midday", DEC_3)
        ]
        assert hook.texts == [MIDDAY_TEXT]
    (sent,) = alerts(store)
    assert (sent["status"], sent["attempts"], sent["last_error"]) == ("sent", 2, None)
    assert "not delivered (HTTP 500: internal_error)" in caplog.text
    assert SECRET_PATH not in caplog.text and "s3cr3t" not in caplog.text
    assert not any("s3cr3t" in str(value) for value in sent.values())


def test_an_unreachable_webhook_stays_pending_and_a_stale_alert_fails(
    store: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = refused_url()
    send_due_alerts(store, CTX, config(url), jst("2026-12-03T12:05"))
    (pending,) = alerts(store)
    assert pending["status"] == "pending" and pending["attempts"] == 1
    assert pending["last_error"].startswith("ConnectionRefusedError")
    # Still down at 20:00: the midday alert is no longer due and fails; end of day is pending.
    send_due_alerts(store, CTX, config(url), jst("2026-12-03T20:00:30"))
    assert [(a["kind"], a["status"], a["attempts"], a["last_error"]) for a in alerts(store)] == [
        ("midday", "failed", 1, "not delivered while it was due"),
        ("end_of_day", "pending", 1, pending["last_error"]),
    ]
    assert "s3cr3t" not in caplog.text
    assert not any("s3cr3t" in str(v) for a in alerts(store) for v in a.values())


def test_a_webhook_that_answers_too_late_is_a_failed_post() -> None:
    with webhook_receiver(delay=1.0) as hook:
        began = time.monotonic()
        error = post(SecretStr(hook.url), "遅い", timeout=0.2)
        assert time.monotonic() - began < 0.9
    assert error == "no answer within 0.2 s"


def test_the_sync_succeeds_while_the_webhook_is_down(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hub = HubSpotPortal(TOKEN)
    hub.load(small_dataset())
    portal = serve_portal(hub)
    # Monday 26 Oct 2026 10:00 JST, in the portal's month: the digest of W43 is due.
    monday = KpiContext(timezone="Asia/Tokyo", holidays="JP", now=jst("2026-10-26T10:00"))
    try:

        def connectors() -> list[SourceConnector]:
            return [HubSpotConnector(TOKEN, host=portal.url, sleep=lambda _: None)]

        scheduled_sync(engine, connectors, monday, trigger="intraday", alerts=config(refused_url()))
    finally:
        portal.stop()
    with engine.connect() as conn:
        runs = conn.execute(select(SyncRun.trigger, SyncRun.status)).all()
    assert [tuple(r) for r in runs] == [("intraday", "ok")]
    ((kind, period, status, attempts),) = [
        (a["kind"], a["period_start"], a["status"], a["attempts"]) for a in alerts(engine)
    ]
    assert (kind, period, status, attempts) == ("weekly_digest", date(2026, 10, 19), "pending", 1)
    assert "s3cr3t" not in caplog.text


def test_only_a_pass_that_stored_something_sends_alerts(store: Engine) -> None:
    noon = replace(CTX, now=jst("2026-12-03T12:05"))
    with webhook_receiver() as hook:
        after_sync_pass(store, noon, config(hook.url), [])  # every source skipped
        after_sync_pass(store, noon, config(hook.url), [SyncReport(1, "hubspot", "failed")])
        assert hook.texts == []
        after_sync_pass(store, noon, config(hook.url), [SyncReport(2, "hubspot", "ok")])
        assert hook.texts == [MIDDAY_TEXT]


# --- the secret and the table -------------------------------------------------------------------


def test_the_webhook_url_is_a_secret() -> None:
    url = f"https://hooks.slack.com{SECRET_PATH}"
    settings = Settings(alert_webhook_url=url)
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(config(url))):
        assert "s3cr3t" not in shown
    with pytest.raises(ValueError) as caught:
        Settings(alert_webhook_url=f"ftp://hooks.slack.com{SECRET_PATH}")
    assert "s3cr3t" not in str(caught.value)


@pytest.fixture(params=ENGINES)
def bare(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of its own (migrations run on it step by step)."""
    with bare_store(request.param, tmp_path, "alerts") as db:
        yield db


def test_the_alerts_migration_builds_the_model_and_goes_back(bare: Engine) -> None:
    migrate(bare, "0007")
    assert "alerts" not in inspect(bare).get_table_names()
    migrate(bare)
    with bare.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        drift = [d for d in compare_metadata(context, Base.metadata) if "alerts" in repr(d)]
    assert drift == []
    downgrade(bare, "0007")
    assert "alerts" not in inspect(bare).get_table_names()
