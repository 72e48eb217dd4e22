"""The HubSpot HTTP client: the token, pacing, rate limits and error classification (docs/sync.md).

Every request of the source and the writer goes through :meth:`HubSpotClient.request`, one
generated-client call at a time. Search requests are paced to ``searches_per_second`` (5,
HubSpot's search limit; search responses carry no rate-limit headers), waiting in real time.
When a response says ``X-HubSpot-RateLimit-Remaining: 0`` the next request waits until the
portal's rolling window (``-Interval-Milliseconds``, ``-Max``) has room.

Failures are classified by :data:`HubSpotClient.failures` (connectors/retry.py runs the loop):
a 429 waits as HubSpot says (``Retry-After``, else the policy in the body: ``SECONDLY`` 1 s,
``TEN_SECONDLY_ROLLING`` the window) and is retried; a ``DAILY`` 429 raises QuotaExhausted at
once. 5xx answers and network errors or timeouts retry with jittered exponential backoff. Every
wait goes through the injected ``sleep``; after ``max_retries`` retries a request raises
RateLimited or TransientError. 401 raises AuthError, 403 PermissionDenied (naming the missing
scope when HubSpot does), other 4xx a ConnectorError naming the endpoint. Every attempt counts
in ``api_calls`` (and calls ``on_request``). The token never appears in a message or a log line.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiError
from hubspot.crm.lists.exceptions import ApiException as ListsApiError
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiError
from hubspot.crm.owners.exceptions import ApiException as OwnersApiError
from hubspot.crm.pipelines.exceptions import ApiException as PipelinesApiError
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiError
from urllib3.util.retry import Retry

from connectors.errors import (
    AuthError,
    ConnectorError,
    PermissionDenied,
    QuotaExhausted,
    RateLimited,
    TransientError,
)
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

SEARCH_PER_SECOND = 5  # HubSpot's search limit per portal
# Each generated package of the client raises its own ApiException (status, headers, body).
API_ERRORS: tuple[type[Exception], ...] = (
    ObjectsApiError,
    OwnersApiError,
    PipelinesApiError,
    AssociationsApiError,
    PropertiesApiError,
    ListsApiError,
)


class HubSpotClient:
    """One HubSpot portal's API: the generated client's endpoints, sent with our retries."""

    def __init__(
        self,
        access_token: str,
        *,
        host: str = "https://api.hubapi.com",
        max_retries: int = 6,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[], None] | None = None,
        searches_per_second: int | None = SEARCH_PER_SECOND,
    ) -> None:
        if not access_token:
            raise AuthError("no HubSpot access token: set ISKPI_HUBSPOT_ACCESS_TOKEN")
        self.api_calls = 0  # HTTP requests made so far, retries included
        self.write_requests = 0  # of those, the record write requests
        self.timeout = timeout
        self._on_request = on_request
        self._retrier = Retrier("HubSpot", max_retries=max_retries, sleep=sleep)
        # Search pacing waits in real time (time.sleep), not through ``sleep``: the limit
        # is the server's wall clock, and a test's instant ``sleep`` cannot satisfy it.
        self._searches_per_second = searches_per_second
        self._search_times: deque[float] = deque(maxlen=searches_per_second or 1)
        self._sent_times: deque[float] = deque(maxlen=1_000)  # for the portal's rolling window
        self._not_before = 0.0
        self.failures: tuple[Rule, ...] = (
            Rule(transport, "retry", _gave_up_transport),
            Rule(status_in(401), "fail", _auth_error),
            Rule(lambda f: status_in(429)(f) and f.code == "DAILY", "fail", _daily_quota),
            Rule(status_in(429), "retry", _rate_limited, wait=self._rate_limit_wait, jitter=0.1),
            Rule(server_error, "retry", _gave_up_server),
            Rule(status_in(403), "fail", _permission_denied),
            Rule(anything, "fail", _refused),
        )
        # Retries are ours (counted, paced, jittered), so urllib3 must not add its own.
        client = HubSpot(access_token=access_token, host=host.rstrip("/"), retry=Retry(0))
        self.objects = client.crm.objects.basic_api
        self.search = client.crm.objects.search_api
        self.owners = client.crm.owners.owners_api
        self.pipelines = client.crm.pipelines.pipelines_api
        self.associations = client.crm.associations.v4.batch_api
        self.batch = client.crm.objects.batch_api
        self.properties = client.crm.properties.core_api
        self.property_groups = client.crm.properties.groups_api
        self.property_batch = client.crm.properties.batch_api
        self.lists = client.crm.lists.lists_api
        self.memberships = client.crm.lists.memberships_api

    def request(
        self,
        label: str,
        send: Callable[[], Any],
        *,
        search: bool = False,
        write: bool = False,
        accept: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        """Send one API request through the client, retrying as HubSpot asks; the JSON body.

        An error status in ``accept`` is not raised: its error body comes back with the status
        under ``"_status"``. ``write`` counts the request in ``write_requests``.
        """

        def attempt() -> dict[str, Any]:
            self._pace(search)
            if self._on_request is not None:
                self._on_request()
            self.api_calls += 1
            if write:
                self.write_requests += 1
            try:
                response = send()
                payload = response.data
                headers = response.headers
                response.release_conn()
            except API_ERRORS as exc:
                status = int(getattr(exc, "status", 0) or 0)
                if status in accept:
                    return {**error_body(getattr(exc, "body", None)), "_status": status}
                raise
            self._note_rate_headers(headers)
            try:
                data = json.loads(payload or b"{}")
            except ValueError:
                raise ConnectorError(f"HubSpot {label} answered with invalid JSON") from None
            if not isinstance(data, dict):
                raise ConnectorError(f"HubSpot {label} answered with unexpected JSON")
            return data

        return self._retrier.run(label, attempt, describe_failure, self.failures)

    def _rate_limit_wait(self, failure: Failure, attempt: int) -> float:
        delay = rate_limit_delay(failure.headers, failure.code, attempt)
        if failure.code == "SECONDLY" and self._searches_per_second:
            # The search window is full (other clients share it): pace from now.
            self._search_times.extend([time.monotonic()] * self._searches_per_second)
        return delay

    def _pace(self, search: bool) -> None:
        now = time.monotonic()
        if self._not_before > now:
            self._retrier.sleep(self._not_before - now)
            self._not_before = 0.0
        if search and self._searches_per_second:
            if len(self._search_times) == self._searches_per_second:
                # A little over the second: the server's clock starts when requests arrive.
                wait = 1.05 - (time.monotonic() - self._search_times[0])
                if wait > 0:
                    time.sleep(wait)
            self._search_times.append(time.monotonic())
        self._sent_times.append(time.monotonic())

    def _note_rate_headers(self, headers: Any) -> None:
        # The portal's rolling window says how many requests are left; at zero, wait until
        # the oldest of our requests in the window has left it (the whole window if unknown).
        try:
            remaining = headers.get("X-HubSpot-RateLimit-Remaining")
            interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            if remaining is None or interval is None or int(remaining) > 0:
                return
            window = int(interval) / 1000.0
            limit = int(headers.get("X-HubSpot-RateLimit-Max") or 0)
        except (TypeError, ValueError, AttributeError):
            return
        oldest = (
            self._sent_times[-limit] if 0 < limit <= len(self._sent_times) else time.monotonic()
        )
        self._not_before = oldest + window + 0.05


# --- the failure table's pieces ------------------------------------------------------------------


def describe_failure(exc: BaseException, label: str) -> Failure | None:
    """A failed attempt as the retry table reads it; None for an exception that is not one."""
    if isinstance(exc, API_ERRORS):
        status = int(getattr(exc, "status", 0) or 0)
        raw_headers = dict(getattr(exc, "headers", None) or {})
        headers = {str(k).lower(): str(v) for k, v in raw_headers.items()}
        body = error_body(getattr(exc, "body", None))
        message = _text(body.get("message")) or _text(getattr(exc, "reason", None)) or ""
        key = "policyName" if status == 429 else "category"
        code = str(body.get(key) or "")
        return Failure(
            label, "http", status, code.upper() if status == 429 else code, message, headers, body
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        cause = unreachable_cause(exc)
        if cause is not None:
            return Failure(label, "unreachable", cause=cause[1], host=cause[0])
        return Failure(label, "transport", cause=type(exc).__name__)
    return None


def _gave_up_transport(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    if failure.kind == "unreachable":
        return TransientError(
            f"HubSpot cannot be reached at {failure.host or 'its host'}: {failure.cause} "
            f"({failure.label}, {attempts} attempts); check ISKPI_HUBSPOT_BASE_URL and the network"
        )
    return TransientError(
        f"HubSpot {failure.label} failed after {attempts} attempts: {failure.cause}"
    )


def _auth_error(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return AuthError(
        f"HubSpot refused the access token (HTTP 401) on {failure.label}: check "
        "ISKPI_HUBSPOT_ACCESS_TOKEN (a private-app token with the CRM read scopes)",
        status=401,
    )


def _daily_quota(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return QuotaExhausted(
        f"HubSpot's daily API limit is spent ({failure.label} answered 429 DAILY); "
        "the sync resumes from its saved state tomorrow",
        status=429,
        code="DAILY",
    )


def _rate_limited(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return RateLimited(
        f"HubSpot kept answering 429 ({failure.code or 'rate limit'}) to {failure.label} "
        f"after {attempts} attempts",
        retry_after=delay,
        code=failure.code,
    )


def _gave_up_server(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return TransientError(
        f"HubSpot {failure.label} failed with HTTP {failure.status or 'error'} "
        f"after {attempts} attempts",
        status=failure.status or None,
    )


def _permission_denied(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    scopes = required_scopes(failure.body)
    if scopes:
        category = failure.code or "MISSING_SCOPES"
        return PermissionDenied(
            f"HubSpot denied {failure.label} (HTTP 403 {category}): "
            f"the private app lacks the scope {' or '.join(scopes)}; add it to the app "
            "(Settings → Integrations → Private apps → Scopes)",
            tuple(scopes),
            status=403,
            code=category,
        )
    return PermissionDenied(
        f"HubSpot denied {failure.label} (HTTP 403): the private app lacks a scope. "
        f"{failure.message[:300]}",
        status=403,
        code=failure.code,
    )


def _refused(failure: Failure, attempts: int, delay: float) -> ConnectorError:
    return ConnectorError(
        f"HubSpot {failure.label} failed with HTTP {failure.status}: {failure.message[:300]}",
        status=failure.status or None,
        code=failure.code,
    )


def required_scopes(body: Any) -> list[str]:
    """The scopes a 403 MISSING_SCOPES body says are required (either spelling of the key)."""
    out: list[str] = []
    for error in body.get("errors") or []:
        context = error.get("context") if isinstance(error, dict) else None
        if not isinstance(context, dict):
            continue
        for key in ("requiredGranularScopes", "requiredScopes"):
            for scope in context.get(key) or []:
                if str(scope) not in out:
                    out.append(str(scope))
    return out


def error_body(body: Any) -> dict[str, Any]:
    """An error response's JSON object; empty when it has none."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def rate_limit_delay(headers: Any, policy: str, attempt: int) -> float:
    """Seconds to wait after a 429, from Retry-After, the policy and the rate-limit headers."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    interval = headers.get("x-hubspot-ratelimit-interval-milliseconds")
    if policy == "SECONDLY":
        return 1.0
    if interval is not None:
        try:
            return max(0.0, int(interval) / 1000.0)
        except ValueError:
            pass
    if policy == "TEN_SECONDLY_ROLLING":
        return 10.0
    return min(10.0, 2.0**attempt)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def after_token(data: dict[str, Any]) -> str | None:
    """The ``after`` token of a list or search page's next page; None on the last page."""
    paging = data.get("paging") or {}
    nxt = paging.get("next") if isinstance(paging, dict) else None
    return _text(nxt.get("after")) if isinstance(nxt, dict) else None
