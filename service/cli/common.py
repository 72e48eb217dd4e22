"""What the commands share: the consoles, logging, and the migrated store."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from service.settings import Settings

console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("iskpi")


class ConfigError(Exception):
    """A setting that cannot work: `iskpi` prints ``error: <variable>: <message>``, exits 2."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


def config_error_line(exc: BaseException) -> str | None:
    """The one line for a settings error (pydantic's ValidationError), or None for another error."""
    from service.settings import settings_errors

    lines = settings_errors(exc)
    return "; ".join(f"error: {line}" for line in lines) if lines else None


def setup_logging() -> None:
    """Log lines on stderr, so stdout keeps the tables."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces its plugins at INFO on every start: noise before a one-line error.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def open_store(settings: Settings) -> Engine:
    """The store's engine, migrated to the latest schema."""
    from sqlalchemy.exc import ArgumentError, OperationalError

    from service.db import make_engine, migrate

    try:
        engine = make_engine(settings.database_url)
    except (
        ArgumentError
    ) as exc:  # NoSuchModuleError too: postgres:// instead of postgresql+psycopg://
        raise ConfigError(
            "ISKPI_DATABASE_URL",
            f"not a usable SQLAlchemy URL ({type(exc).__name__}: {exc}); "
            "e.g. postgresql+psycopg://user@host:5432/db or sqlite:///./iskpi.db",
        ) from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "ISKPI_DATABASE_URL", f"the URL's driver is not installed ({exc.name})"
        ) from None
    try:
        migrate(engine)
    except OperationalError as exc:
        raise ConfigError(
            "ISKPI_DATABASE_URL",
            f"cannot open the store at {engine.url.render_as_string(hide_password=True)} "
            f"({type(exc.orig).__name__ if exc.orig else type(exc).__name__})",
        ) from None
    return engine


def check_mapping(settings: Settings) -> None:
    """Load ISKPI_MAPPING_FILE now, so a bad one stops the command at start with its key."""
    from connectors.mapping import MappingError, load_mapping

    try:
        load_mapping(settings.mapping_file)
    except MappingError as exc:
        raise ConfigError("ISKPI_MAPPING_FILE", str(exc)) from None
