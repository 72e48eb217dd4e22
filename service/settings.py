"""Settings from the environment (prefix ISKPI_) and a .env file, per SPEC §2."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kpi import KpiContext


def _split_tokens(value: object) -> object:
    if isinstance(value, str):
        return [token.strip() for token in value.split(",") if token.strip()]
    return value


class Settings(BaseSettings):
    """Everything the service reads from its environment; secrets are SecretStr."""

    model_config = SettingsConfigDict(
        env_prefix="ISKPI_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///./iskpi.db"
    timezone: str = "UTC"
    holidays: str = ""

    hubspot_access_token: SecretStr | None = None
    hubspot_base_url: str = "https://api.hubapi.com"

    salesforce_instance_url: str | None = None
    salesforce_session_id: SecretStr | None = None
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_refresh_token: SecretStr | None = None
    salesforce_login_url: str = "https://login.salesforce.com"
    salesforce_api_version: str = "59.0"
    # Share of the org's remaining daily API requests one sync may spend.
    salesforce_quota_share: float = Field(default=0.25, gt=0, le=1)
    # Rows above which a first sync of a stream uses a Bulk API 2.0 query job.
    salesforce_bulk_threshold: int = Field(default=200_000, ge=0)

    sync_cron: str = "0 2 * * *"
    sync_lookback_minutes: int = Field(default=10, ge=0)

    read_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    admin_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    # Memory for cached /v1/kpis answers (0 turns the cache off); see service/cache.py.
    api_cache_mb: int = Field(default=256, ge=0)
    # How often the store's data version is re-read (writes through this API re-read at once).
    api_cache_check_seconds: float = Field(default=1.0, ge=0)

    effective_call_seconds: int = Field(default=60, ge=0)
    ltv_months: int = Field(default=12, ge=1)
    mapping_file: Path | None = None
    now: datetime | None = None

    _split_read = field_validator("read_tokens", "admin_tokens", mode="before")(_split_tokens)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

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


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


def kpi_context(settings: Settings) -> KpiContext:
    """The KPI engine's view of the settings (ISKPI_TIMEZONE, _HOLIDAYS, … , _NOW)."""
    return KpiContext(
        timezone=settings.timezone,
        holidays=settings.holidays,
        effective_call_seconds=settings.effective_call_seconds,
        ltv_months=settings.ltv_months,
        now=settings.now,
    )
