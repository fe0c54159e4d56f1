"""``flask callrec …``: the command group added to the host's CLI by init_app."""
import click
from flask import current_app
from flask.cli import AppGroup

from callrec_plugin import audit, migrate
from callrec_plugin.extension import get_state
from callrec_plugin.manager import describe_plugins


def _engine():
    return get_state().db.engine


def make_cli():
    """A fresh group per app, so plugins' commands (callrec_register_commands) stay with their app."""
    group = AppGroup("callrec", help="callrec: call recordings, retention and audit.")
    group.add_command(db_group())
    group.add_command(plugins_command)
    group.add_command(audit_group())
    return group


def db_group():
    db = AppGroup("db", help="callrec's database migrations (own version table alembic_version_callrec).")

    @db.command("upgrade")
    @click.argument("revision", default="head")
    def upgrade(revision):
        """Create or upgrade callrec's tables."""
        migrate.upgrade(_engine(), revision)
        click.echo(f"callrec database at revision {migrate.current_revision(_engine())}")

    @db.command("downgrade")
    @click.argument("revision")
    def downgrade(revision):
        """Downgrade callrec's tables to REVISION ("base" removes them)."""
        migrate.downgrade(_engine(), revision)
        click.echo(f"callrec database at revision {migrate.current_revision(_engine())}")

    @db.command("current")
    def current():
        """Show the revision the database is at and the newest one shipped."""
        click.echo(f"current: {migrate.current_revision(_engine())}  head: {migrate.head_revision()}")

    return db


@click.command("plugins")
def plugins_command():
    """List loaded plugins and the hooks each implements."""
    state = get_state()
    for row in describe_plugins(state.pm):
        click.echo(f"{row['name']}: {', '.join(row['hooks']) or '(no hooks)'}")
    for name in state.failed_plugins:
        click.echo(f"{name}: FAILED TO LOAD (see the log)")


def audit_group():
    group = AppGroup("audit", help="The tamper-evident audit trail.")

    @group.command("verify")
    def verify():
        """Recompute every link of the audit chain; exit 1 and name the first bad seq."""
        result = audit.verify(get_state().session)
        if result.ok:
            click.echo(f"audit chain intact: {result.checked} events, head seq {result.head_seq}")
            return
        click.echo(f"audit chain BROKEN at seq {result.first_bad_seq}: {result.problem}", err=True)
        raise SystemExit(1)

    return group
