"""Errors a connector raises, as one small tree.

    ConnectorError            anything a CRM connector cannot recover from by itself
    ├── AuthError             credentials missing, invalid or expired (HTTP 401): the run fails
    ├── PermissionDenied      the token or user lacks a scope or permission for an operation (403)
    ├── DestinationMissing    a field, property or object a target is written to does not exist
    ├── QuotaExhausted        the CRM's API allowance is spent or would be: stop cleanly, resume later
    └── TransientError        a retryable failure (5xx, timeout) that outlived its retries
        └── RateLimited       HTTP 429 that outlived its retries; carries the server's retry-after

Each error carries its context as attributes, not only in its message: ``status`` (the HTTP
status that caused it, None when there was none), ``code`` (the CRM's error code or policy),
``RateLimited.retry_after`` and ``PermissionDenied.missing``. No message or attribute holds a
token.

RecordRejected is not a failure of the run: a mapping function raises it for one
record that cannot be normalized, and the sync quarantines that record and goes on.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """A CRM connector failed in a way the sync run must record."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status  # the HTTP status behind the error; None: no answer, or none
        self.code = code  # the CRM's error code (REQUEST_LIMIT_EXCEEDED, MISSING_SCOPES, DAILY)


class AuthError(ConnectorError):
    """The CRM refused our credentials (HTTP 401); retrying will not help."""


class PermissionDenied(ConnectorError):
    """The CRM refused an operation for lack of a scope or permission; the message names it."""

    def __init__(
        self,
        message: str,
        missing: tuple[str, ...] = (),
        *,
        status: int | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.missing = missing  # the scopes or permissions the CRM said are required


class DestinationMissing(ConnectorError):
    """A field, property or object to write to does not exist in the CRM (or cannot be written)."""


class QuotaExhausted(ConnectorError):
    """The CRM's API allowance is spent (or this run's share of it is)."""


class TransientError(ConnectorError):
    """A retryable failure that kept failing after all retries."""


class RateLimited(TransientError):
    """HTTP 429 that persisted after backing off as the server asked."""

    def __init__(self, message: str, retry_after: float | None = None, *, code: str = "") -> None:
        super().__init__(message, status=429, code=code)
        self.retry_after = retry_after  # seconds the server asked us to wait


class RecordRejected(ValueError):
    """One CRM record cannot be mapped to a normalized record; the reason says why."""
