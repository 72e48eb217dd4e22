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


def setup_logging() -> None:
    """Log lines on stderr, so stdout keeps the tables."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def open_store(settings: Settings) -> Engine:
    """The store's engine, migrated to the latest schema."""
    from service.db import make_engine, migrate

    engine = make_engine(settings.database_url)
    migrate(engine)
    return engine
