"""The demo's CLI commands: ``flask --app examples.practice_host init-db`` and ``... seed``."""
import click
import sqlalchemy as sa

from .models import db


def register_commands(app):
    @app.cli.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=5000, show_default=True, type=int)
    @click.option("--scheduler-interval", default=20.0, show_default=True,
                  help="Seconds between rounds of callrec's in-process scheduler.")
    def serve(host, port, scheduler_interval):
        """Serve the demo with callrec's scheduler as a thread of this server: overdue calls are purged
        within a minute of starting, then every CALLREC_PURGE_INTERVAL_MINUTES."""
        import logging

        from flask import current_app

        from callrec_plugin import scheduler_thread

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        app_object = current_app._get_current_object()
        scheduler_thread.start(app_object, interval=scheduler_interval)
        # Not app.run(): inside a flask command Flask ignores it (FLASK_RUN_FROM_CLI), and nothing would listen.
        from werkzeug.serving import run_simple

        run_simple(host, port, app_object, threaded=True, use_reloader=False)

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
