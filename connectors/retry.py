"""One retry loop for both CRMs: classify a failure → wait → count → give up.

A client turns each failed attempt into a :class:`Failure` (what came back: an HTTP status and
the CRM's error code, or no answer at all) and hands the loop its classification table: rows of
:class:`Rule`, first match wins, the last row matching everything. A rule's ``then`` says what
becomes of the request:

    fail      raise the rule's error at once (401, a spent quota, a missing scope, other 4xx)
    retry     wait, then send again: the rule's ``wait`` (a 429's Retry-After) or the jittered
              exponential backoff (5xx, timeouts); after ``max_retries`` retries raise the error
    refresh   renew the credentials once and send again (Salesforce INVALID_SESSION_ID); a
              second refusal, or a client that cannot refresh, raises the error

A failure to connect at all (the host's name does not resolve, the connection is refused) is
kind ``unreachable``: a ``retry`` rule gets one retry after UNREACHABLE_WAIT_SECONDS, then its
error, which names the host; backing off for minutes would not bring a missing host back.

Every wait goes through the injected ``sleep``, so tests and the bench run without waiting.
The errors are the operator's messages (connectors/errors.py); none carries a token.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from connectors.errors import ConnectorError

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a failed attempt was: an HTTP answer, no answer (a timeout, a dropped connection), or a
# server whose certificate is not trusted.
# "unreachable": no connection at all (the host's name does not resolve, the connection is
# refused): one short retry, then the error, naming the host; a sync fails in seconds.
FailureKind = Literal["http", "transport", "tls", "unreachable"]
UNREACHABLE_RETRIES = 1
UNREACHABLE_WAIT_SECONDS = 1.0
# What becomes of the request (see the module docstring).
Resolution = Literal["fail", "retry", "refresh"]


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as the classification table reads it."""

    label: str  # the request, e.g. "POST /crm/v3/objects/calls/search"
    kind: FailureKind = "http"
    status: int = 0  # the HTTP status; 0 when there was none
    code: str = ""  # the CRM's error code: Salesforce errorCode, HubSpot's 429 policyName
    message: str = ""  # the CRM's message (never a credential)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased names
    body: Mapping[str, Any] = field(default_factory=dict)  # the parsed JSON error body
    cause: str = ""  # the exception's type name, for transport failures
    refreshed: bool = False  # the credentials were already renewed for this request
    host: str = ""  # the host that could not be reached (kind "unreachable")


@dataclass(frozen=True)
class Rule:
    """One row of a classification table: the failures it matches and what becomes of them."""

    matches: Callable[[Failure], bool]
    then: Resolution
    # The error to raise (at once for ``fail``; when retries run out for ``retry``; on a second
    # refusal for ``refresh``), given the failure, the attempts made and the last wait.
    error: Callable[[Failure, int, float], ConnectorError]
    # Seconds to wait before the retry; None: the jittered exponential backoff.
    wait: Callable[[Failure, int], float] | None = None
    jitter: float = 0.0  # a ``wait`` is stretched by up to this fraction, so clients spread out


def status_in(*statuses: int) -> Callable[[Failure], bool]:
    """A rule's match: an HTTP answer with one of these statuses."""
    return lambda failure: failure.kind == "http" and failure.status in statuses


def server_error(failure: Failure) -> bool:
    """A rule's match: a 5xx answer, or an HTTP error without a status."""
    return failure.kind == "http" and (failure.status == 0 or failure.status >= 500)


def transport(failure: Failure) -> bool:
    """A rule's match: no answer at all (timeout, refused or dropped connection)."""
    return failure.kind in ("transport", "unreachable")


def unreachable(failure: Failure) -> bool:
    """A rule's match: the host could not be reached at all (DNS failure, connection refused)."""
    return failure.kind == "unreachable"


def unreachable_cause(exc: BaseException) -> tuple[str, str] | None:
    """(host, what happened) when ``exc`` is a failure to connect at all, else None.

    Walks the exception's causes and the wrappers the HTTP libraries use (requests wraps
    urllib3's MaxRetryError, which holds the NewConnectionError or NameResolutionError).
    """
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or item in seen:
            continue
        seen.append(item)
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    names = {type(e).__name__ for e in seen}
    text = " ".join(str(e) for e in seen).lower()
    if (
        "NameResolutionError" in names
        or "name or service not known" in text
        or ("nodename nor servname" in text)
        or "temporary failure in name resolution" in text
        or "getaddrinfo failed" in text
    ):
        what = "its name does not resolve (DNS)"
    elif "ConnectionRefusedError" in names or "connection refused" in text:
        what = "the connection was refused"
    elif "NewConnectionError" in names or "ConnectError" in names:
        what = "no connection could be made"
    else:
        return None
    host = ""
    for item in seen:
        # urllib3: a NewConnectionError's ``conn``, a MaxRetryError's pool (``__dict__``:
        # its ``pool`` property warns of deprecation).
        for holder in (vars(item).get("pool"), vars(item).get("conn")):
            host = host or str(getattr(holder, "host", "") or "")
        request = getattr(item, "_request", None)
        if request is not None and not host:
            host = str(request.url.host)
    return host, what


def anything(failure: Failure) -> bool:
    """A rule's match: every failure (the table's last row)."""
    return True


def classify(table: Sequence[Rule], failure: Failure) -> Rule:
    """The first rule of the table that matches the failure."""
    for rule in table:
        if rule.matches(failure):
            return rule
    raise ValueError(f"no rule matches {failure.label} (a table ends with a catch-all)")


class Retrier:
    """Sends a request until it succeeds or its failure's rule says to give up."""

    def __init__(
        self,
        crm: str,
        *,
        max_retries: int,
        sleep: Callable[[float], None],
        rng: random.Random | None = None,
    ) -> None:
        self.crm = crm  # "HubSpot", "Salesforce": the log lines' subject
        self.max_retries = max_retries
        self.sleep = sleep
        self.random = rng or random.Random()

    def backoff(self, attempt: int) -> float:
        """The jittered exponential backoff before retry ``attempt`` (0-based): 0.25–30 s."""
        return min(30.0, 0.5 * 2.0**attempt) * (0.5 + 0.5 * self.random.random())

    def run(
        self,
        label: str,
        send: Callable[[], T],
        describe: Callable[[BaseException, str], Failure | None],
        table: Sequence[Rule],
        refresh: Callable[[], None] | None = None,
    ) -> T:
        """``send()`` until it returns, classifying each failure by ``table``.

        ``describe`` turns an exception into a Failure, or None for one that is not a request
        failure (it propagates as it is). ``refresh`` renews the credentials for a ``refresh``
        rule; without it such a rule raises its error at once.
        """
        attempt = 0
        refreshed = False
        while True:
            try:
                return send()
            except Exception as exc:
                failure = describe(exc, label)
                if failure is None:
                    raise
                failure = dataclasses.replace(failure, refreshed=refreshed)
            rule = classify(table, failure)
            if failure.kind == "unreachable" and rule.then == "retry":
                if attempt >= UNREACHABLE_RETRIES:
                    raise rule.error(failure, attempt + 1, 0.0) from None
                log.info("%s %s: %s unreachable, one retry", self.crm, label, failure.host)
                self.sleep(UNREACHABLE_WAIT_SECONDS)
                attempt += 1
                continue
            if rule.then == "fail":
                raise rule.error(failure, attempt + 1, 0.0) from None
            if rule.then == "refresh":
                if refresh is None or refreshed:
                    raise rule.error(failure, attempt + 1, 0.0) from None
                log.info("%s %s: session expired, refreshing the access token", self.crm, label)
                refresh()
                refreshed = True
                continue
            if rule.wait is not None:
                delay = rule.wait(failure, attempt)
            else:
                delay = self.backoff(attempt)
            if attempt >= self.max_retries:
                raise rule.error(failure, attempt + 1, delay) from None
            what = failure.cause or f"HTTP {failure.status} {failure.code}".rstrip()
            log.info("%s %s: %s, retrying in %.1fs", self.crm, label, what, delay)
            if rule.jitter:
                delay *= 1.0 + rule.jitter * self.random.random()
            self.sleep(delay)
            attempt += 1
