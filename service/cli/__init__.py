"""The `iskpi` command line (SPEC §3), one module per command group.

- sync.py: `sync`, `serve`, `migrate`;
- demo.py: `demo`;
- kpis.py: `kpis`;
- targets.py: `targets push`, `targets allocate`.

Only typer and rich load before a command runs, so `iskpi --help` answers at once.
"""

from __future__ import annotations

import typer

from service.cli import demo, kpis, sync, targets

app = typer.Typer(help="iskpi: inside-sales KPIs from HubSpot and Salesforce", no_args_is_help=True)
app.command("migrate")(sync.migrate_command)
app.command("sync")(sync.sync_command)
app.command("serve")(sync.serve_command)
app.command("demo")(demo.demo_command)
kpis.register(app)
targets.register(app)


def main() -> None:
    """Run the command line."""
    app()
