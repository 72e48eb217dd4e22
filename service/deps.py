"""Request dependencies: settings, the store's engine, the KPI context, as Annotated aliases.

They are ``async`` because they do no I/O: FastAPI runs them in the event loop
instead of handing each to the thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from kpi import KpiContext
from service.cache import DataVersionClock, ResponseCache
from service.limits import BuildGate
from service.meta import RunSummaries
from service.settings import Settings


async def get_app_settings(request: Request) -> Settings:
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    return settings


async def get_engine(request: Request) -> Engine:
    engine = request.app.state.engine
    assert isinstance(engine, Engine)
    return engine


async def get_kpi_context(request: Request) -> KpiContext:
    ctx = request.app.state.kpi
    assert isinstance(ctx, KpiContext)
    return ctx


async def get_kpi_cache(request: Request) -> ResponseCache:
    cache = request.app.state.kpi_cache
    assert isinstance(cache, ResponseCache)
    return cache


async def get_data_version(request: Request) -> DataVersionClock:
    clock = request.app.state.data_version
    assert isinstance(clock, DataVersionClock)
    return clock


async def get_kpi_builds(request: Request) -> BuildGate:
    gate = request.app.state.kpi_builds
    assert isinstance(gate, BuildGate)
    return gate


async def get_run_summaries(request: Request) -> RunSummaries:
    summaries = request.app.state.run_summaries
    assert isinstance(summaries, RunSummaries)
    return summaries


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
KpiContextDep = Annotated[KpiContext, Depends(get_kpi_context)]
KpiCacheDep = Annotated[ResponseCache, Depends(get_kpi_cache)]
DataVersionDep = Annotated[DataVersionClock, Depends(get_data_version)]
KpiBuildsDep = Annotated[BuildGate, Depends(get_kpi_builds)]
RunSummariesDep = Annotated[RunSummaries, Depends(get_run_summaries)]
