"""Settings from the environment (prefix ISKPI_) and a .env file."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kpi import KpiContext
from service.workday import BusinessHours


def _split_tokens(value: object) -> object:
    if isinstance(value, str):
        return [token.strip() for token in value.split(",") if token.strip()]
    return value


class Settings(BaseSettings):
    """Everything the service reads from its environment; secrets are SecretStr."""

    # A validation error's text leaves the values out: one may be a secret (a token, the
    # webhook URL). settings_errors names each bad value that is not.
    model_config = SettingsConfigDict(
        env_prefix="ISKPI_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    database_url: str = Field(
        default="sqlite:///./iskpi.db",
        description="SQLAlchemy URL of the store; PostgreSQL as `postgresql+psycopg://user@host:5432/db`",
    )
    timezone: str = Field(
        default="UTC",
        description="business time zone (IANA name): days, ISO weeks and months are cut in it, and the sync schedule runs in it",
    )
    holidays: str = Field(
        default="",
        description="country code of the `holidays` package (e.g. `JP`); business days are Monday to Friday minus its holidays",
    )

    hubspot_access_token: SecretStr | None = Field(
        default=None, description="HubSpot private-app token; HubSpot is synced when it is set"
    )
    hubspot_base_url: str = Field(default="https://api.hubapi.com", description="HubSpot API host")
    hubspot_archived_sweep_minutes: int = Field(
        default=60,
        ge=0,
        description="an incremental HubSpot sync lists the archived records (one request per 100 archived in the last 90 days, per stream) only if the last sweep is at least this many minutes old; 0 sweeps on every run",
    )

    salesforce_instance_url: str | None = Field(
        default=None,
        description="e.g. `https://acme.my.salesforce.com`; Salesforce is synced when it is set",
    )
    salesforce_session_id: SecretStr | None = Field(
        default=None, description="a Salesforce access token, used as is until it expires"
    )
    salesforce_client_id: str | None = Field(
        default=None,
        description="OAuth connected app: its consumer key (with the secret and a refresh token the service gets and refreshes access tokens itself)",
    )
    salesforce_client_secret: SecretStr | None = Field(
        default=None, description="OAuth connected app: its consumer secret"
    )
    salesforce_refresh_token: SecretStr | None = Field(
        default=None,
        description="OAuth connected app: a refresh token (one the app rotates is kept in the store and used by every process until this one changes)",
    )
    salesforce_login_url: str = Field(
        default="https://login.salesforce.com",
        description="where the OAuth token endpoint lives (`https://test.salesforce.com` for sandboxes)",
    )
    salesforce_api_version: str = Field(default="59.0", description="Salesforce REST API version")
    salesforce_quota_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="share of the org's remaining daily API requests one sync may spend (0 to 1)",
    )
    salesforce_bulk_threshold: int = Field(
        default=200_000,
        ge=0,
        description="rows above which a first sync of a stream uses a Bulk API 2.0 query job",
    )

    sync_cron: str = Field(
        default="0 2 * * *",
        description="when `iskpi serve` syncs: five-field crontab syntax, in the business time zone",
    )
    sync_lookback_minutes: int = Field(
        default=10,
        ge=0,
        description="how far an incremental sync looks back behind its cursor, in minutes",
    )
    sync_intraday_minutes: int = Field(
        default=15,
        ge=0,
        description="`iskpi serve` also syncs every this many minutes within business hours on business days, counted from their start (0: the nightly sync only)",
    )
    business_hours: str = Field(
        default="08:00-20:00",
        description="business hours on business days, `HH:MM-HH:MM` in the business time zone: the intraday syncs run within them, and the end-of-day pacing alert follows their end",
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description='a Slack-compatible incoming webhook (JSON `{"text": ...}`) for the pacing alerts and the weekly digest; unset: no alerts',
    )

    read_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="comma-separated bearer tokens that may read the API; `label:token` names the caller `label` in audit records",
    )
    write_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="comma-separated bearer tokens of members: they read, and write review notes and actions; not targets, costs, sync or push",
    )
    admin_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="comma-separated bearer tokens that may read and write (targets, costs, sync, push); `label:token` names the caller `label` in audit records",
    )

    audit_secret: SecretStr | None = Field(
        default=None,
        description="key of the HMAC that names API callers in audit records; unset: one is generated and kept in the store",
    )

    api_cache_mb: int = Field(
        default=256,
        ge=0,
        description="memory for cached `/v1/kpis` answers, in MB (0 turns the cache off)",
    )
    api_cache_check_seconds: float = Field(
        default=1.0,
        ge=0,
        description="how often the store's data version is re-read, in seconds (writes through the API re-read it at once)",
    )

    api_kpi_builds: int = Field(
        default=2,
        ge=1,
        description="how many large uncached `/v1/kpis` answers (over 20,000 rows) are computed at once; more wait",
    )
    api_kpi_build_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="how long a large `/v1/kpis` answer waits for its turn before a 503 with Retry-After",
    )

    effective_call_seconds: int = Field(
        default=60,
        ge=0,
        description="a connected call at least this many seconds long is an effective contact",
    )
    ltv_months: int = Field(default=12, ge=1, description="months in the LTV formula")
    mapping_file: Path | None = Field(
        default=None, description="TOML file overriding the field, value and write-back mappings"
    )
    now: datetime | None = Field(
        default=None,
        description='fixes "now" (an ISO datetime with offset) for forecasts, suggestions, write-back and default periods; for tests and replays',
    )
    fiscal_year_start_month: int = Field(
        default=1,
        ge=1,
        le=12,
        description="first month of the fiscal year (`4` for an April year): the `quarter` and `fiscal_year` grains start from it",
    )
    field_sales_teams: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description='comma-separated team names or ids (`<source>:<crm id>` or the CRM id) that are field sales, not inside sales: their reps are left out of every "reps in scope", of `GET /v1/teams` (unless `kind=fs` or `all`) and of the dashboard\'s lists',
    )

    _split_read = field_validator(
        "read_tokens", "write_tokens", "admin_tokens", "field_sales_teams", mode="before"
    )(_split_tokens)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("business_hours")
    @classmethod
    def _business_hours(cls, value: str) -> str:
        return str(BusinessHours.parse(value))

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        # The URL is a secret: the message says what is wrong without repeating it.
        if value is None:
            return None
        try:
            parts = urlsplit(value.get_secret_value())
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:  # a malformed host such as "[::1"
            usable = False
        if not usable:
            raise ValueError("not an http:// or https:// URL with a host")
        return value

    @property
    def hours(self) -> BusinessHours:
        """ISKPI_BUSINESS_HOURS, parsed."""
        return BusinessHours.parse(self.business_hours)

    @property
    def tz(self) -> ZoneInfo:
        """The business time zone."""
        return ZoneInfo(self.timezone)

    @property
    def hubspot_enabled(self) -> bool:
        return self.hubspot_access_token is not None

    @property
    def salesforce_enabled(self) -> bool:
        return self.salesforce_instance_url is not None


def settings_errors(exc: BaseException) -> list[str]:
    """One line per bad value when ``exc`` is the Settings' validation error, else none.

    ``ISKPI_FISCAL_YEAR_START_MONTH: Input should be less than or equal to 12 (got '13')``;
    the value of a secret is not repeated.
    """
    if not isinstance(exc, ValidationError) or exc.title != Settings.__name__:
        return []
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = Settings.model_fields.get(name)
        variable = f"ISKPI_{name.upper()}"
        secret = field is not None and "SecretStr" in str(field.annotation)
        message = str(error["msg"]).removeprefix("Value error, ")
        if not secret and "input" in error and str(error["input"]) not in message:
            message += f" (got {str(error['input'])!r})"
        lines.append(f"{variable}: {message}")
    return lines


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


def kpi_context(settings: Settings) -> KpiContext:
    """The KPI engine's view of the settings (ISKPI_TIMEZONE, _HOLIDAYS, … , _FIELD_SALES_TEAMS)."""
    return KpiContext(
        timezone=settings.timezone,
        holidays=settings.holidays,
        effective_call_seconds=settings.effective_call_seconds,
        ltv_months=settings.ltv_months,
        now=settings.now,
        fiscal_year_start_month=settings.fiscal_year_start_month,
        field_sales_teams=tuple(settings.field_sales_teams),
    )
