"""The `iskpi` command line (docs/cli.md), one module per command group.

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
    """Run the command line; a configuration mistake is one line and exit 2."""
    from service.cli.common import ConfigError, config_error_line

    try:
        app()
    except ConfigError as exc:
        print(f"error: {exc.variable}: {exc.message}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        line = config_error_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        sys.exit(2)
