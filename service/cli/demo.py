"""`iskpi demo`: simulated CRMs, synced through the real connectors over HTTP, and served.

Served, the demo answers at once and runs its first sync in the background (the dashboard
says "syncing…" and fills in as pages commit); with ``--no-serve`` it syncs and exits.

The demo's team is Japanese: it runs in Asia/Tokyo with JP holidays unless ISKPI_TIMEZONE
or ISKPI_HOLIDAYS say otherwise, and its "Field Sales" team is field sales unless
ISKPI_FIELD_SALES_TEAMS says otherwise. It syncs three months of history by default (``--months``
for more), stores this month's suggested targets at all three levels (org, teams, reps) when there
are none, and points
write-back at the simulated CRM, so `iskpi targets push` (dry run and apply) works against it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.common import console, err_console, open_store, setup_logging
from service.cli.sync import serve, sync_all

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from connectors.base import SourceConnector
    from kpi import KpiContext, Level, Scope

# Tokens of the demo's API when none are configured; never used outside `iskpi demo`.
DEMO_READ_TOKEN = "demo-read"
DEMO_WRITE_TOKEN = "demo-write"
DEMO_ADMIN_TOKEN = "demo-admin"
DEMO_HUBSPOT_TOKEN = "demo-token"
DEMO_TIMEZONE = "Asia/Tokyo"
DEMO_HOLIDAYS = "JP"
DEMO_FIELD_SALES_TEAMS = ["Field Sales"]  # the seeded team that receives the deals
# The KPIs the demo enters targets for, at all three levels, so every view shows progress.
DEMO_TARGET_KPIS = (
    "calls",
    "effective_contacts",
    "meetings_set",
    "deals_created",
    "won_count",
    "won_amount",
    "connect_rate",
    "effective_contact_rate",
    "meeting_conversion_rate",
)
DEMO_TARGET_SCOPES: tuple[Scope, ...] = ("org", "team", "rep")
DEMO_WHO = "demo"


def seed_targets(engine: Engine, ctx: KpiContext) -> int:
    """This month's suggested targets at all three levels, confirmed, unless it has some.

    For the main KPIs of the org, each team and each rep: the suggestion's minimum,
    achievement and stretch (0.9×, 1.0×, 1.1× of the trailing three months' pace), stored
    as confirmed targets by "demo", so a new user sees progress against all three at once.
    """
    from kpi import Target, list_targets, put_targets, suggest_targets
    from kpi.periods import period_start

    month = period_start(ctx.today(), "month")
    if list_targets(engine, grain="month", start=month, end=month, level=None):
        return 0
    targets: list[Target] = []
    for scope in DEMO_TARGET_SCOPES:
        for kpi in DEMO_TARGET_KPIS:
            for s in suggest_targets(engine, ctx, kpi=kpi, scope=scope):
                levels: tuple[tuple[Level, float | None], ...] = (
                    ("minimum", s.minimum),
                    ("achievement", s.achievement),
                    ("stretch", s.stretch),
                )
                targets += [
                    Target(
                        kpi,
                        "month",
                        month,
                        scope,
                        s.scope_id,
                        value,
                        level=level,
                        status="confirmed",
                        reason="suggested by the demo",
                    )
                    for level, value in levels
                    if value is not None and value > 0
                ]
    return put_targets(engine, targets, ctx, who=DEMO_WHO)


def demo_command(
    port: Annotated[int, typer.Option(help="port to serve on")] = 8000,
    database: Annotated[str, typer.Option(help="store for the demo")] = "sqlite:///./iskpi-demo.db",
    serve_: Annotated[bool, typer.Option("--serve/--no-serve", help="serve after the sync")] = True,
    months: Annotated[int, typer.Option(help="months of simulated history", min=1, max=24)] = 3,
    source: Annotated[
        str, typer.Option(help="the simulated CRM: hubspot, salesforce or both")
    ] = "hubspot",
) -> None:
    """Start simulated CRMs, sync them through the real connectors into SQLite, serve it."""
    import os
    import threading

    from pydantic import SecretStr

    from connectors.hubspot import HubSpotConnector
    from connectors.mapping import load_mapping
    from service.demo import SalesforceDemo, start_salesforce_demo
    from service.settings import get_settings, kpi_context
    from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
    from simulators.hubspot.seed import generate_dataset

    if source not in ("hubspot", "salesforce", "both"):
        err_console.print(f"[red]unknown source {source!r}: use hubspot, salesforce or both[/red]")
        raise typer.Exit(2)
    setup_logging()
    settings = get_settings()
    update: dict[str, object] = {"database_url": database}
    # Set explicitly (environment or .env), the user's zone and holidays win.
    if "timezone" not in settings.model_fields_set:
        update["timezone"] = DEMO_TIMEZONE
    if "holidays" not in settings.model_fields_set:
        update["holidays"] = DEMO_HOLIDAYS
    if "field_sales_teams" not in settings.model_fields_set:
        update["field_sales_teams"] = DEMO_FIELD_SALES_TEAMS
    settings = settings.model_copy(update=update)
    portal_running: RunningPortal | None = None
    salesforce: SalesforceDemo | None = None
    if source in ("hubspot", "both"):
        portal = HubSpotPortal(DEMO_HUBSPOT_TOKEN)
        # A generous simulated rate limit: the connector paces itself by the portal's
        # rate-limit headers, and the demo should not take minutes.
        portal.burst_limit = 2_000
        console.print(f"generating the demo HubSpot portal (3 teams, 12 reps, {months} months)…")
        portal.load(generate_dataset(end=datetime.now(UTC), months=months))
        portal_running = serve_portal(portal)
        console.print(f"simulated HubSpot portal at {portal_running.url}")
        # Write-back goes to the simulated portal, from the API and from `iskpi targets push`.
        settings = settings.model_copy(
            update={
                "hubspot_access_token": SecretStr(DEMO_HUBSPOT_TOKEN),
                "hubspot_base_url": portal_running.url,
            }
        )
    if source in ("salesforce", "both"):
        console.print(f"generating the demo Salesforce org (3 teams, 12 reps, {months} months)…")
        salesforce = start_salesforce_demo(months=months)
        # Served over HTTPS with a throwaway CA: the connector trusts that CA (verification
        # stays on); REQUESTS_CA_BUNDLE=<this file> does the same for other clients.
        console.print(f"simulated Salesforce org at {salesforce.url} (CA: {salesforce.ca_bundle})")
        # Write-back's connector is built from the settings: it trusts the CA the same way.
        os.environ["REQUESTS_CA_BUNDLE"] = str(salesforce.ca_bundle)
        settings = settings.model_copy(
            update={
                "salesforce_instance_url": salesforce.url,
                "salesforce_session_id": SecretStr(salesforce.session_id),
            }
        )
    if not settings.read_tokens and not settings.write_tokens and not settings.admin_tokens:
        # The demo is for looking around: give it tokens the user can see.
        settings = settings.model_copy(
            update={
                "read_tokens": [SecretStr(DEMO_READ_TOKEN)],
                "write_tokens": [SecretStr(DEMO_WRITE_TOKEN)],
                "admin_tokens": [SecretStr(DEMO_ADMIN_TOKEN)],
            }
        )
        console.print(
            f"demo API tokens: read {DEMO_READ_TOKEN!r}, write {DEMO_WRITE_TOKEN!r}, "
            f"admin {DEMO_ADMIN_TOKEN!r}"
        )
    engine = open_store(settings)
    mapping = load_mapping(settings.mapping_file)
    ctx = kpi_context(settings)

    def connectors() -> list[SourceConnector]:
        out: list[SourceConnector] = []
        if portal_running is not None:
            out.append(
                HubSpotConnector(DEMO_HUBSPOT_TOKEN, host=portal_running.url, mapping=mapping)
            )
        if salesforce is not None:
            out.append(salesforce.connector(mapping=mapping, timezone=settings.tz))
        return out

    def first_sync() -> bool:
        ok = sync_all(engine, connectors(), full=True, trigger="demo", kpi=ctx)
        seeded = seed_targets(engine, ctx)
        if seeded:
            console.print(
                f"stored {seeded} suggested targets for this month (minimum, target, stretch)"
            )
        return ok

    try:
        if not serve_:
            if not first_sync():
                raise typer.Exit(1)
            return
        # Served at once, synced in the background: the dashboard says "syncing…" and shows
        # the numbers as the sync's pages commit (every commit is a consistent store).
        syncing = threading.Thread(target=first_sync, name="demo-sync", daemon=True)
        syncing.start()
        env = [f"ISKPI_DATABASE_URL={database}", f"ISKPI_TIMEZONE={settings.timezone}"]
        if settings.holidays:
            env.append(f"ISKPI_HOLIDAYS={settings.holidays}")
        if portal_running is not None:
            env += [
                f"ISKPI_HUBSPOT_ACCESS_TOKEN={DEMO_HUBSPOT_TOKEN}",
                f"ISKPI_HUBSPOT_BASE_URL={portal_running.url}",
            ]
        if salesforce is not None:
            env += [
                f"ISKPI_SALESFORCE_INSTANCE_URL={salesforce.url}",
                f"ISKPI_SALESFORCE_SESSION_ID={salesforce.session_id}",
                f"REQUESTS_CA_BUNDLE={salesforce.ca_bundle}",
            ]
        console.print(
            "write-back to the simulated CRM while the demo runs, from another terminal "
            "(the plan; then with --apply):"
        )
        # One line however narrow the terminal, so it can be copied as it is.
        console.print(f"  {' '.join(env)} iskpi targets push", soft_wrap=True)
        console.print(
            f"dashboard at http://127.0.0.1:{port}/  (API docs at /docs); "
            "the first sync runs meanwhile"
        )
        serve(settings, engine, connectors, "127.0.0.1", port)
    finally:
        if portal_running is not None:
            portal_running.stop()
        if salesforce is not None:
            salesforce.stop()
