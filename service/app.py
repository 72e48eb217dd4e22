"""The FastAPI application: routers, health, and the scheduled sync's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Engine

from connectors.base import SourceConnector
from service.api_docs import add_docs
from service.auth import AuthBeforeBody
from service.cache import DataVersionClock, ResponseCache, WritesInvalidate
from service.errors import handle_error, handled_errors
from service.limits import BodyLimit, BuildGate, HeaderLimit
from service.meta import RunSummaries
from service.routers import (
    caller,
    dashboard,
    kpis,
    meta,
    planning,
    push,
    sheets,
    sync,
    targets,
    teams,
)
from service.routers.common import last_successful_sync
from service.settings import Settings, kpi_context
from service.sync.scheduler import start_scheduler
from service.sync.sources import configured_sources


class Health(BaseModel):
    status: str
    last_successful_sync: dict[str, datetime]


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    connectors: Callable[[], list[SourceConnector]] | None = None,
) -> FastAPI:
    """The service; with ``connectors`` it also runs the scheduled sync while it is up."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler = start_scheduler(settings, engine, connectors) if connectors else None
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)

    app = FastAPI(
        title="iskpi",
        summary="Inside-sales KPIs from HubSpot and Salesforce",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from the installed package, below: no CDN
        redoc_url=None,  # ReDoc would load from a CDN, and no Python package ships its bundle
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.kpi = kpi_context(settings)
    app.state.kpi_cache = ResponseCache(settings.api_cache_mb * 2**20)
    app.state.data_version = DataVersionClock(engine, settings.api_cache_check_seconds)
    app.add_middleware(WritesInvalidate, clock=app.state.data_version)
    app.state.run_summaries = RunSummaries(engine, configured_sources(settings))
    app.state.kpi_builds = BuildGate(settings.api_kpi_builds, settings.api_kpi_build_wait_seconds)
    app.add_middleware(BodyLimit)
    app.add_middleware(AuthBeforeBody, settings=settings)  # before any body is read
    app.add_middleware(HeaderLimit)  # outermost
    app.state.connectors = connectors
    for error in handled_errors():
        app.add_exception_handler(error, handle_error)
    for module in (kpis, teams, planning, targets, push, sync, meta, caller, sheets, dashboard):
        app.include_router(module.router)
    add_docs(app)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """Liveness, and how fresh the data is per source."""
        return Health(status="ok", last_successful_sync=last_successful_sync(engine))

    return app
