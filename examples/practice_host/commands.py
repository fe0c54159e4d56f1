"""The demo's CLI commands: ``flask --app examples.practice_host init-db`` and ``... seed``."""
import click
import sqlalchemy as sa

from .models import db


def register_commands(app):
    @app.cli.command("init-db")
    def init_db():
        """Create the demo PMS's own tables (host_*). callrec's come from `flask callrec db upgrade`."""
        db.create_all()
        click.echo(f"Host tables ready in {db.engine.url.render_as_string(hide_password=True)}.")

    @app.cli.command("seed")
    @click.option("--calls", "call_count", default=300, show_default=True,
                  help="How many demo calls to ingest (0 for none).")
    def seed(call_count):
        """Fill the demo with synthetic practices, staff, patients, complaints and recorded calls.

        Idempotent: what is already there is left alone.
        """
        from .seed import seed_calls, seed_host_data

        inspector = sa.inspect(db.engine)
        if not inspector.has_table("host_practices"):
            raise click.ClickException("the host's tables are missing: run `flask --app examples.practice_host "
                                       "init-db` first.")
        did_host = seed_host_data(echo=click.echo)
        did_calls = 0
        if call_count:
            if not inspector.has_table("callrec_recordings"):
                raise click.ClickException("callrec's tables are missing: run `flask --app examples.practice_host "
                                           "callrec db upgrade` first.")
            did_calls = seed_calls(call_count, echo=click.echo)
        if not did_host and not did_calls:
            click.echo("Already seeded: nothing to do.")
