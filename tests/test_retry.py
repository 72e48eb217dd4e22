"""The shared retry loop: classify → wait → count → give up, and refresh once."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from connectors.errors import AuthError, ConnectorError, RateLimited, TransientError
from connectors.retry import (
    Failure,
    Retrier,
    Rule,
    anything,
    classify,
    server_error,
    status_in,
    transport,
)


class Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def describe(exc: BaseException, label: str) -> Failure | None:
    if isinstance(exc, Refused):
        return Failure(label, "http", exc.status)
    if isinstance(exc, TimeoutError):
        return Failure(label, "transport", cause="TimeoutError")
    return None


TABLE = (
    Rule(transport, "retry", lambda f, n, d: TransientError(f"{f.label}: {n} attempts")),
    Rule(status_in(401), "refresh", lambda f, n, d: AuthError(f"refreshed={f.refreshed}")),
    Rule(status_in(429), "retry", lambda f, n, d: RateLimited("429", d), wait=lambda f, n: 2.0),
    Rule(server_error, "retry", lambda f, n, d: TransientError(f"HTTP {f.status}")),
    Rule(anything, "fail", lambda f, n, d: ConnectorError(f"HTTP {f.status}", status=f.status)),
)


def sender(*outcomes: BaseException | str) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def send() -> str:
        calls.append(1)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return calls, send


def retrier(sleeps: list[float], max_retries: int = 3) -> Retrier:
    return Retrier("Test", max_retries=max_retries, sleep=sleeps.append, rng=random.Random(1))


def test_the_first_matching_rule_wins() -> None:
    assert classify(TABLE, Failure("x", "http", 503)).then == "retry"
    assert classify(TABLE, Failure("x", "http", 404)).then == "fail"
    assert classify(TABLE, Failure("x", "transport")).then == "retry"


def test_server_errors_back_off_with_jitter_then_succeed() -> None:
    sleeps: list[float] = []
    calls, send = sender(Refused(503), TimeoutError(), "ok")
    assert retrier(sleeps).run("GET x", send, describe, TABLE) == "ok"
    assert len(calls) == 3
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_a_rule_s_wait_is_honoured_and_retries_run_out() -> None:
    sleeps: list[float] = []
    calls, send = sender(Refused(429))
    with pytest.raises(RateLimited) as raised:
        retrier(sleeps, max_retries=2).run("GET x", send, describe, TABLE)
    assert sleeps == [2.0, 2.0] and len(calls) == 3
    assert raised.value.retry_after == 2.0 and raised.value.status == 429


def test_fail_rules_raise_at_once_with_their_context() -> None:
    sleeps: list[float] = []
    calls, send = sender(Refused(404))
    with pytest.raises(ConnectorError) as raised:
        retrier(sleeps).run("GET x", send, describe, TABLE)
    assert raised.value.status == 404 and len(calls) == 1 and sleeps == []


def test_a_refresh_rule_refreshes_once() -> None:
    sleeps: list[float] = []
    refreshes: list[int] = []
    calls, send = sender(Refused(401), "ok")
    result = retrier(sleeps).run(
        "GET x",
        send,
        describe,
        TABLE,
        refresh=lambda: refreshes.append(1),
    )
    assert result == "ok" and refreshes == [1] and sleeps == []
    calls, send = sender(Refused(401))
    with pytest.raises(AuthError, match="refreshed=True"):
        retrier(sleeps).run("GET x", send, describe, TABLE, refresh=lambda: None)
    with pytest.raises(AuthError, match="refreshed=False"):
        retrier(sleeps).run("GET x", send, describe, TABLE)


def test_exceptions_that_are_not_failures_propagate() -> None:
    calls, send = sender(KeyError("x"))
    with pytest.raises(KeyError):
        retrier([]).run("GET x", send, describe, TABLE)
