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


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_an_unreachable_crm_fails_after_one_short_retry_naming_the_host(crm: str) -> None:
    import time

    from connectors.hubspot.client import HubSpotClient
    from connectors.salesforce.client import SalesforceClient

    waits: list[float] = []
    url = f"http://127.0.0.1:{closed_port()}"
    began = time.monotonic()
    with pytest.raises(TransientError) as caught:
        if crm == "hubspot":
            hub = HubSpotClient("pat-x", host=url, sleep=waits.append)
            hub.request("GET owners", lambda: hub.owners.get_page(limit=1, _preload_content=False))
        else:
            SalesforceClient(url, session_id="x", sleep=waits.append).query(
                "GET query", "SELECT Id FROM User", include_deleted=False
            )
    message = str(caught.value)
    assert "cannot be reached at 127.0.0.1" in message and "refused" in message
    assert "MaxRetryError" not in message
    # One short retry per request, not six backoffs (Salesforce's quota check asks twice).
    assert waits in ([1.0], [1.0, 1.0])
    assert time.monotonic() - began < 5


def test_connection_failures_are_told_apart_from_other_transport_failures() -> None:
    from connectors.retry import unreachable_cause

    assert unreachable_cause(TimeoutError("read timed out")) is None
    refused = OSError("x")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert unreachable_cause(refused) == ("", "the connection was refused")
    assert unreachable_cause(OSError("Temporary failure in name resolution")) == (
        "",
        "its name does not resolve (DNS)",
    )
