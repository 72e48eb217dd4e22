"""The `iskpi` command line (SPEC §3), one module per command group.

- sync.py: `sync`, `serve`, `migrate`;
- demo.py: `demo`;
- kpis.py: `kpis`;
- targets.py: `targets push`, `targets allocate`.

Only typer and rich load before a command runs, so `iskpi --help` answers at once.
"""

from __future__ import annotations

import sys

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
    """Run the command line; a bad setting is one line per value on stderr, and exit 2."""
    try:
        app()
    except Exception as exc:
        from service.settings import settings_errors

        lines = settings_errors(exc)
        if not lines:
            raise
        for line in lines:
            print(f"iskpi: {line}", file=sys.stderr)
        raise SystemExit(2) from None
