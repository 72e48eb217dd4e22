"""The Salesforce HTTP client: auth, the quota guard and error classification (docs/configuration.md, docs/sync.md).

Every request of the source and the writer goes through :meth:`SalesforceClient.call`, one
simple-salesforce call at a time, over a requests session whose every request has a timeout.

The quota guard: every REST response carries ``Sforce-Limit-Info: api-usage=used/max``
(without it the client asks ``/limits`` once a run). On the first figure of a run the client
fixes the run's budget, ``quota_share`` (default 25%) of the requests the org had left when
the run started; before each request past the budget it raises QuotaExhausted with a message
saying so. Salesforce's own 403 REQUEST_LIMIT_EXCEEDED raises QuotaExhausted too, unless its
message names a concurrency limit (``ConcurrentPerOrgLongTxn Limit exceeded.``: too many
requests of the org running longer than 20 s at once; ``ConcurrentRequests``): that one is
not the daily quota, and is retried with backoff like a 5xx. A run is what the caller says it
is: :meth:`SalesforceClient.begin_run` with the run's ``until``.

Auth: with an OAuth connected app (client id, secret, refresh token) a 401 INVALID_SESSION_ID
gets one refresh (POST ``{login_url}/services/oauth2/token``, grant_type=refresh_token, with
httpx) and the request is repeated; a rotated refresh token (in the token response) is kept
and handed to ``on_refresh_token``. With only a session id a 401 raises AuthError saying the
session expired; the run fails with its pages stored, resumable. TLS is always verified:
``verify`` (a CA bundle path), else the standard ``REQUESTS_CA_BUNDLE`` (for the token
endpoint too); an untrusted certificate fails the run with AuthError, without retries.

Failures are classified by :data:`SalesforceClient.failures` (connectors/retry.py runs the
loop): 5xx answers, timeouts and dropped connections are retried with jittered exponential
backoff through the injected ``sleep``; after ``max_retries`` they raise TransientError. Other
4xx raise a ConnectorError naming the error code. Every API request counts in ``api_calls``;
token requests do not (they are not API calls), they count in ``token_refreshes``. No token or
secret appears in a message or a log line.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlsplit

import httpx
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from connectors.errors import AuthError, ConnectorError, QuotaExhausted, TransientError
from connectors.retry import (
    Failure,
    Retrier,
    Rule,
    anything,
    server_error,
    status_in,
    transport,
    unreachable_cause,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
COMPOSITE_QUERIES = 5  # query subrequests Salesforce allows in one composite request


@dataclass(frozen=True)
class OAuthApp:
    """An OAuth connected app: the service gets and refreshes access tokens itself."""

    client_id: str
    client_secret: str
    refresh_token: str
    login_url: str = "https://login.salesforce.com"

    def __repr__(self) -> str:  # never show the secrets
        return f"OAuthApp(client_id={self.client_id!r}, login_url={self.login_url!r})"


class LocatorExpired(ConnectorError):
    """A query locator expired (INVALID_QUERY_LOCATOR): restart the query from the cursor."""


class NotFound(ConnectorError):
    """A resource answered 404 (e.g. a bulk job that no longer exists)."""


class _TokenAnswer(Exception):
    """The token endpoint answered without an access token."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body if isinstance(body, dict) else {}


class _Session(requests.Session):
    """A requests session whose own ``verify`` (a CA bundle given to the connector) wins over
    REQUESTS_CA_BUNDLE; with ``verify=True`` the environment's bundle applies as usual."""

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        if verify is None and self.verify is not True:
            settings["verify"] = self.verify
        return settings


class _TimeoutAdapter(HTTPAdapter):
    """A transport adapter giving every request a timeout (simple-salesforce sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)  # retries are ours: counted, paced, jittered
        self._timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


class SalesforceClient:
    """One org's REST API through simple-salesforce: auth, the quota guard, our retries."""

    def __init__(
        self,
        instance_url: str,
        *,
        session_id: str | None = None,
        oauth: OAuthApp | None = None,
        api_version: str = "59.0",
        page_size: int = 2_000,
        quota_share: float = 0.25,
        max_retries: int = 6,
        timeout: float = 60.0,
        verify: bool | str = True,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[], None] | None = None,
        on_refresh_token: Callable[[str], None] | None = None,
        latest_refresh_token: Callable[[], str | None] | None = None,
    ) -> None:
        if not instance_url:
            raise AuthError("no Salesforce instance: set ISKPI_SALESFORCE_INSTANCE_URL")
        if not session_id and oauth is None:
            raise AuthError(
                "no Salesforce credentials: set ISKPI_SALESFORCE_SESSION_ID, or the OAuth "
                "connected app (ISKPI_SALESFORCE_CLIENT_ID, _CLIENT_SECRET, _REFRESH_TOKEN)"
            )
        if not 0 < quota_share <= 1:
            raise ValueError("quota_share must be in (0, 1]")
        if not 200 <= page_size <= 2_000:
            raise ValueError("page_size must be between 200 and 2,000 (Salesforce's batch sizes)")
        self.api_calls = 0  # API requests made so far, retries included
        self.write_requests = 0  # record write requests (sObject Collections), retries included
        self.token_refreshes = 0  # token endpoint requests (not API calls)
        self.version = api_version
        self.instance_url = instance_url.rstrip("/")
        self._session_id = session_id or None
        self._oauth = oauth
        self._refresh_token_value = oauth.refresh_token if oauth else None
        self._page_size = page_size
        self._quota_share = quota_share
        self._timeout = timeout
        self._verify = verify
        self._sleep = sleep
        self._on_request = on_request
        self._on_refresh_token = on_refresh_token
        self._latest_refresh_token = latest_refresh_token
        self._retrier = Retrier("Salesforce", max_retries=max_retries, sleep=sleep)
        self._http = _Session()
        adapter = _TimeoutAdapter(timeout)
        self._http.mount("https://", adapter)
        self._http.mount("http://", adapter)
        if verify is not True:
            self._http.verify = verify
        self._client: Any = None
        # The quota guard, per run (the run the caller named with begin_run).
        self._run: datetime | None = None
        self._run_calls = 0
        self._budget: int | None = None
        self._budget_basis: tuple[int, int, int] | None = None  # (remaining, used, max)
        self._usage: tuple[int, int] | None = None  # (used, max) as last reported
        self._asked_limits = False
        self.failures: tuple[Rule, ...] = (
            Rule(lambda f: f.kind == "tls", "fail", self._tls_error),
            Rule(transport, "retry", _gave_up_transport),
            Rule(status_in(401), "refresh", _auth_error),
            Rule(concurrent_limit, "retry", _gave_up_concurrent),
            Rule(
                lambda f: status_in(403)(f) and f.code == "REQUEST_LIMIT_EXCEEDED",
                "fail",
                _request_limit,
            ),
            Rule(
                lambda f: status_in(400)(f) and f.code == "INVALID_QUERY_LOCATOR",
                "fail",
                _locator_expired,
            ),
            Rule(status_in(404), "fail", _not_found),
            Rule(server_error, "retry", _gave_up_server),
            Rule(status_in(403), "fail", _forbidden),
            Rule(anything, "fail", _refused),
        )
        self._token_failures: tuple[Rule, ...] = (
            Rule(lambda f: f.kind == "tls", "fail", _token_tls_error),
            Rule(status_in(400, 401, 403), "fail", _token_refused),
            Rule(anything, "retry", _token_gave_up),
        )

    def __repr__(self) -> str:
        return f"SalesforceClient({self.instance_url!r})"

    @property
    def refresh_token(self) -> str | None:
        """The refresh token in use (the latest one, when the connected app rotates them)."""
        return self._refresh_token_value

    # -- runs and the quota guard -------------------------------------------------------------

    def begin_run(self, run: datetime) -> None:
        """Start the quota budget of the run named by ``run`` (its ``until``); same run: no-op."""
        if run == self._run:
            return
        self._run = run
        self._run_calls = 0
        self._budget = None
        self._budget_basis = None
        self._asked_limits = False

    def _note_usage(self, client: Any) -> None:
        usage = (getattr(client, "api_usage", None) or {}).get("api-usage")
        if usage is not None:
            self._usage = (int(usage.used), int(usage.total))
        if self._budget is None and self._usage is not None:
            used, total = self._usage
            before = max(0, used - self._run_calls)
            remaining = max(0, total - before)
            self._budget = int(remaining * self._quota_share)
            self._budget_basis = (remaining, before, total)

    def _check_budget(self, label: str) -> None:
        if self._budget is None and self._run_calls > 0 and not self._asked_limits:
            self._asked_limits = True
            self._read_limits()
        if self._budget is not None and self._run_calls >= self._budget:
            remaining, used, total = self._budget_basis or (0, 0, 0)
            raise QuotaExhausted(
                f"Salesforce quota guard: stopped before {label} after {self._run_calls} API "
                f"requests, this run's share ({self._quota_share:.0%}) of the {remaining:,} "
                f"daily API requests the org had left ({used:,} of {total:,} used); the next "
                "sync resumes from the saved position",
                code="QUOTA_GUARD",
            )

    def _read_limits(self) -> None:
        """Without Sforce-Limit-Info, read DailyApiRequests from /limits once per run."""
        data = self.call("GET limits", lambda c: c.limits())
        daily = data.get("DailyApiRequests") if isinstance(data, dict) else None
        if isinstance(daily, dict) and "Max" in daily and "Remaining" in daily:
            total, remaining = int(daily["Max"]), int(daily["Remaining"])
            self._usage = (total - remaining, total)
            self._note_usage(None)

    # -- requests -------------------------------------------------------------------------------

    def _ensure_client(self) -> Any:
        if self._session_id is None:
            self._refresh()
        if self._client is None:
            self._client = Salesforce(
                instance_url=self.instance_url,
                session_id=self._session_id,
                version=self.version,
                session=self._http,
                object_pairs_hook=dict,
            )
        return self._client

    def call(self, label: str, send: Callable[[Any], T]) -> T:
        """Send one API request through simple-salesforce, retrying as Salesforce allows."""

        def attempt() -> T:
            self._check_budget(label)
            client = self._ensure_client()
            if self._on_request is not None:
                self._on_request()
            self.api_calls += 1
            self._run_calls += 1
            result = send(client)
            self._note_usage(client)
            return result

        refresh = self._refresh if self._oauth is not None else None
        return self._retrier.run(label, attempt, describe_failure, self.failures, refresh)

    def _query_header(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={self._page_size}"}

    def query(self, soql: str, label: str, *, include_deleted: bool) -> dict[str, Any]:
        """One SOQL query (``queryAll`` with ``include_deleted``): its first page."""
        data: dict[str, Any] = self.call(
            label,
            lambda c: c.query(soql, include_deleted=include_deleted, headers=self._query_header()),
        )
        return data

    def query_more(self, url: str, label: str) -> dict[str, Any]:
        """The next page of a query, by its relative ``nextRecordsUrl``."""
        data: dict[str, Any] = self.call(
            label,
            lambda c: c.query_more(url, identifier_is_url=True, headers=self._query_header()),
        )
        return data

    def composite(self, label: str, body: dict[str, Any]) -> Any:
        """One composite request (up to 25 subrequests, one API call)."""
        return self.call(label, partial(_composite, body))

    def lookup(self, queries: list[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
        """Run (key, SOQL) queries batched in composite requests; records per key."""
        out: dict[str, list[dict[str, Any]]] = {key: [] for key, _ in queries}
        base = f"/services/data/v{self.version}"
        for start in range(0, len(queries), COMPOSITE_QUERIES):
            batch = queries[start : start + COMPOSITE_QUERIES]
            body = {
                "allOrNone": False,
                "compositeRequest": [
                    {
                        "method": "GET",
                        "url": f"{base}/queryAll/?q={quote_plus(soql)}",
                        "referenceId": f"q{start + i}",
                    }
                    for i, (_, soql) in enumerate(batch)
                ],
            }
            data = self.composite("POST composite (look-ups)", body)
            responses = {
                item.get("referenceId"): item
                for item in (data or {}).get("compositeResponse") or []
            }
            for i, (key, soql) in enumerate(batch):
                item = responses.get(f"q{start + i}") or {}
                status = item.get("httpStatusCode")
                result = item.get("body")
                if status != 200 or not isinstance(result, dict):
                    code, message = body_detail(result)
                    raise ConnectorError(
                        f"Salesforce look-up failed with HTTP {status} {code}: {message[:300]} "
                        f"({soql[:120]}…)",
                        status=status if isinstance(status, int) else None,
                        code=code,
                    )
                out[key].extend(r for r in result.get("records") or [] if isinstance(r, dict))
                while not result.get("done", True) and result.get("nextRecordsUrl"):
                    result = self.query_more(str(result["nextRecordsUrl"]), "query more (look-up)")
                    out[key].extend(r for r in result.get("records") or [] if isinstance(r, dict))
        return out

    # -- auth -----------------------------------------------------------------------------------

    def _tls_error(self, failure: Failure, attempts: int, delay: float) -> ConnectorError:
        # The server could not prove it is the org: no retry, and no other stream.
        return AuthError(
            f"TLS verification of {urlsplit(self.instance_url).netloc} failed on "
            f"{failure.label}: its certificate is not trusted. If the org is reached through a "
            "TLS-inspecting proxy or is a test server, point REQUESTS_CA_BUNDLE at the "
            "CA bundle that signs it (verification is never turned off)"
        )

    def _httpx_verify(self) -> ssl.SSLContext | bool:
        bundle: str | None = None
        if isinstance(self._verify, str):
            bundle = self._verify
        elif self._verify is True:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        else:
            return False
        return ssl.create_default_context(cafile=bundle) if bundle else True

    def _refresh(self) -> None:
        """Get a new access token with the refresh token (OAuth 2.0 refresh token flow)."""
        oauth = self._oauth
        if oauth is None:
            raise AuthError("no Salesforce session: set ISKPI_SALESFORCE_SESSION_ID")
        url = oauth.login_url.rstrip("/") + "/services/oauth2/token"
        form = {
            "grant_type": "refresh_token",
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
            "refresh_token": self._refresh_token_value or "",
        }
        with httpx.Client(verify=self._httpx_verify(), timeout=self._timeout) as http:

            def attempt() -> dict[str, Any]:
                self.token_refreshes += 1
                response = http.post(url, data=form, headers={"Accept": "application/json"})
                try:
                    body = response.json()
                except ValueError:
                    body = {}
                if response.status_code == 200 and isinstance(body, dict):
                    if body.get("access_token"):
                        return body
                raise _TokenAnswer(response.status_code, body)

            try:
                body = self._retrier.run(
                    url, attempt, _describe_token_failure, self._token_failures
                )
            except AuthError:
                # With rotation, another process may have used (and so retired) this token
                # and kept its successor where ``latest_refresh_token`` finds it: one more try.
                newer = self._latest_refresh_token() if self._latest_refresh_token else None
                if not newer or newer == form["refresh_token"]:
                    raise
                self._refresh_token_value = form["refresh_token"] = newer
                body = self._retrier.run(
                    url, attempt, _describe_token_failure, self._token_failures
                )
        self._session_id = str(body["access_token"])
        instance = body.get("instance_url")
        if isinstance(instance, str) and instance.startswith("https://"):
            self.instance_url = instance.rstrip("/")
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token_value:
            self._refresh_token_value = rotated
            log.info("Salesforce rotated the refresh token; keeping the new one")
            if self._on_refresh_token is not None:
                self._on_refresh_token(rotated)
        self._client = None


# --- the failure tables' pieces ------------------------------------------------------------------


def describe_failure(exc: BaseException, label: str) -> Failure | None:
    """A failed API attempt as the retry table reads it; None for an exception that is not one."""
    if isinstance(exc, SalesforceError):
        status = 401 if isinstance(exc, SalesforceExpiredSession) else exc_status(exc)
        code, message = body_detail(getattr(exc, "content", None))
        return Failure(label, "http", status, code, message)
    if isinstance(exc, requests.exceptions.SSLError):
        return Failure(label, "tls", cause=type(exc).__name__)
    if isinstance(exc, requests.exceptions.Timeout | requests.exceptions.ConnectionError):
        cause = None if isinstance(exc, requests.exceptions.Timeout) else unreachable_cause(exc)
        if cause is not None:
            return Failure(label, "unreachable", cause=cause[1], host=cause[0])
        return Failure(label, "transport", cause=type(exc).__name__)
    return None


def exc_status(exc: BaseException) -> int:
    """The HTTP status a simple-salesforce error carries (0 when none)."""
    return int(getattr(exc, "status", 0) or 0)


def _describe_token_failure(exc: BaseException, url: str) -> Failure | None:
    if isinstance(exc, _TokenAnswer):
        error = str(exc.body.get("error", ""))
        description = str(exc.body.get("error_description", ""))
        return Failure(url, "http", exc.status, error, description)
    if isinstance(exc, httpx.TransportError):
        if isinstance(exc, httpx.ConnectError) and "CERTIFICATE" in str(exc).upper():
            return Failure(url, "tls", cause=type(exc).__name__)
        cause = unreachable_cause(exc) if isinstance(exc, httpx.ConnectError) else None
        if cause is not None:
            return Failure(url, "unreachable", cause=cause[1], host=cause[0])
        return Failure(url, "transport", cause=type(exc).__name__)
    return None


def concurrent_limit(failure: Failure) -> bool:
    """A rule's match: 403 REQUEST_LIMIT_EXCEEDED for a concurrency limit, not the daily quota."""
    return (
        status_in(403)(failure)
        and failure.code == "REQUEST_LIMIT_EXCEEDED"
        and "concurrent" in failure.message.lower()
    )


def _gave_up_concurrent(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return TransientError(
        f"Salesforce refused {failure.label} with REQUEST_LIMIT_EXCEEDED ({failure.message}) "
        f"{attempts} times: the org runs too many long requests at once (other integrations, "
        "reports, Apex); the next sync resumes from the saved position",
        status=403,
        code=failure.code,
    )


def _gave_up_transport(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    if failure.kind == "unreachable":
        return TransientError(
            f"Salesforce cannot be reached at {failure.host or 'its host'}: {failure.cause} "
            f"({failure.label}, {attempts} attempts); check ISKPI_SALESFORCE_INSTANCE_URL, "
            "ISKPI_SALESFORCE_LOGIN_URL and the network"
        )
    return TransientError(
        f"Salesforce {failure.label} failed after {attempts} attempts: {failure.cause}"
    )


def _auth_error(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    detail = f"HTTP 401 {failure.code}: {failure.message}" if failure.code else "HTTP 401"
    if failure.refreshed:
        return AuthError(
            f"Salesforce refused a freshly refreshed access token ({detail}) on "
            f"{failure.label}: check the connected app's OAuth scopes (api, refresh_token) and "
            "that the user has the API Enabled permission",
            status=401,
            code=failure.code,
        )
    return AuthError(
        f"Salesforce refused the session ({detail}) on {failure.label}: the access token in "
        "ISKPI_SALESFORCE_SESSION_ID has expired or was revoked. Set a fresh one, or "
        "configure the OAuth connected app (ISKPI_SALESFORCE_CLIENT_ID, _CLIENT_SECRET, "
        "_REFRESH_TOKEN) so the service refreshes it itself; the next sync resumes from "
        "the last stored page",
        status=401,
        code=failure.code,
    )


def _request_limit(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return QuotaExhausted(
        f"Salesforce refused {failure.label} with REQUEST_LIMIT_EXCEEDED ({failure.message}): "
        "the org's API allowance is spent; the next sync resumes from the saved position once "
        "it is available again",
        status=403,
        code=failure.code,
    )


def _locator_expired(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return LocatorExpired(
        f"Salesforce {failure.label}: the query locator expired", status=400, code=failure.code
    )


def _not_found(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return NotFound(
        f"Salesforce {failure.label} answered 404 {failure.code}: {failure.message[:300]}",
        status=404,
        code=failure.code,
    )


def _gave_up_server(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return TransientError(
        f"Salesforce {failure.label} failed with HTTP {failure.status or 'error'} after "
        f"{attempts} attempts",
        status=failure.status or None,
        code=failure.code,
    )


def _forbidden(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return ConnectorError(
        f"Salesforce refused {failure.label} (HTTP 403 {failure.code}): "
        f"{failure.message[:300]}; check the integration user's object and field permissions",
        status=403,
        code=failure.code,
    )


def _refused(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return ConnectorError(
        f"Salesforce {failure.label} failed with HTTP {failure.status} {failure.code}: "
        f"{failure.message[:300]}",
        status=failure.status or None,
        code=failure.code,
    )


def _token_tls_error(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return AuthError(
        f"TLS verification of {urlsplit(failure.label).netloc} failed: its "
        "certificate is not trusted; point REQUESTS_CA_BUNDLE at the CA "
        "bundle that signs it"
    )


def _token_refused(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return AuthError(
        f"Salesforce refused the refresh token at {failure.label} "
        f"({failure.code or failure.status}: {failure.message}): check "
        "ISKPI_SALESFORCE_CLIENT_ID, ISKPI_SALESFORCE_CLIENT_SECRET and "
        "ISKPI_SALESFORCE_REFRESH_TOKEN (with refresh token rotation, the latest token issued)",
        status=failure.status,
        code=failure.code,
    )


def _token_gave_up(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    reason = failure.cause or f"HTTP {failure.status}"
    return TransientError(
        f"Salesforce token endpoint {failure.label} failed after {attempts} attempts: {reason}",
        status=failure.status or None,
    )


def _composite(body: dict[str, Any], client: Any) -> Any:
    return client.restful("composite", method="POST", json=body)


def body_detail(body: Any) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error body ``[{"message", "errorCode"}]``."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        message = str(first.get("message") or "").strip()
        # INVALID_FIELD and MALFORMED_QUERY messages echo the query first; keep the reason.
        if "\n" in message:
            message = message.splitlines()[-1]
        return str(first.get("errorCode") or ""), message
    if isinstance(body, dict):
        return str(body.get("errorCode") or body.get("error") or ""), str(
            body.get("message") or body.get("error_description") or ""
        )
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip()
    return "", re.sub(r"<[^>]+>", " ", text)[:200].strip()
