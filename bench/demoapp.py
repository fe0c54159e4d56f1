"""The demo practice host in a scratch directory, for benchmarks that need the whole stack."""
import contextlib
import datetime as dt
import io
import os
import shutil
import tempfile

TMPFS = "/dev/shm"


def scratch_base():
    """Where CPU-bound figures keep their files: CALLREC_BENCH_DIR, else tmpfs (so a figure measures the
    pipeline and not the disk), else the default temporary directory."""
    return os.environ.get("CALLREC_BENCH_DIR") or (TMPFS if os.path.isdir(TMPFS) else None)


def where(directory):
    """The kind of place ``directory`` is on, for a figure's label: tmpfs or disk."""
    return "tmpfs" if os.path.realpath(directory).startswith(TMPFS + os.sep) else "disk"


def bench_database_url(default_sqlite_path):
    """CALLREC_BENCH_DATABASE_URL, or SQLite in the scratch directory."""
    return os.environ.get("CALLREC_BENCH_DATABASE_URL") or f"sqlite:///{default_sqlite_path}"


def engine_options(database_url):
    """PostgreSQL benchmarks work in their own schema, so they never touch the tests' tables."""
    if not database_url.startswith("postgresql"):
        return {}
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS callrec_bench")
    engine.dispose()
    return {"connect_args": {"options": "-csearch_path=callrec_bench"}}


@contextlib.contextmanager
def demo_app(prefix="callrec-bench-", base=None, database_url=None):
    """(app, state directory) of a fresh demo host; the directory (database, keys, blobs, audio files) is
    removed afterwards, whatever happens, so no figure leaves gigabytes behind in /tmp or /dev/shm."""
    state = tempfile.mkdtemp(prefix=prefix, dir=base)
    app = None
    try:
        app, _ = make_demo_app(state, database_url or bench_database_url(os.path.join(state, "bench.db")))
        yield app, state
    finally:
        if app is not None:
            _dispose(app)
        shutil.rmtree(state, ignore_errors=True)


def _dispose(app):
    """Close the app's database connections (SQLite keeps its file open otherwise)."""
    from examples.practice_host.models import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def demo_config(state, database_url):
    """The bench's demo config (also read by the gunicorn workers of the HTTP bench: bench/http_app.py)."""
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        "SECRET_KEY": "bench",
        "CALLREC_STORAGE_DIR": os.path.join(state, "storage"),
        "CALLREC_KEY_FILE": os.path.join(state, "keys.txt"),
        "CALLREC_AUDIT_SIGNING_KEY_FILE": os.path.join(state, "audit.pem"),
        "CALLREC_LOAD_ENTRY_POINTS": False,
        "CALLREC_MAX_AUDIO_BYTES": 2**31,
    }


def make_demo_app(state_dir, database_url=None):
    """The demo host with its state in ``state_dir`` (the caller removes it: see demo_app)."""
    from callrec_plugin import migrate
    from examples.practice_host import create_app
    from examples.practice_host.models import db
    from examples.practice_host.seed import seed_host_data

    state = state_dir
    database_url = database_url or f"sqlite:///{os.path.join(state, 'bench.db')}"
    app = create_app(demo_config(state, database_url))
    with app.app_context():
        db.drop_all()
        from callrec_plugin.models import metadata
        metadata.drop_all(db.engine)
        with db.engine.begin() as connection:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {migrate.VERSION_TABLE}")
        db.create_all()
        migrate.upgrade(db.engine)
        seed_host_data(echo=lambda message: None)
    return app, state


def add_decision_only_route(app, plain):
    """``/bench/decided/<recording_id>``: the seekable plaintext ``plain`` served after the decision every
    audio request must make again (the actor from the host's hooks, the one statement of grants.py), with
    no cryptography: the floor of a Range request (the HTTP bench and the test-client bench alike)."""
    from flask import abort, request
    from flask_login import login_required
    from werkzeug.utils import send_file as werkzeug_send_file

    @app.route("/bench/decided/<recording_id>")
    @login_required
    def plain_after_decision(recording_id):
        from callrec_plugin.grants import recording_with_grant
        from callrec_plugin.identity import current_actor

        recording, granted = recording_with_grant(current_actor(), recording_id, "play")
        if recording is None or not granted:
            abort(403)
        # Werkzeug's own file wrapper (a server's may not seek): a Range seeks to its start.
        environ = {key: value for key, value in request.environ.items() if key != "wsgi.file_wrapper"}
        return werkzeug_send_file(plain, environ, mimetype="audio/wav", conditional=True)


def signed_in_client(app, username):
    """A test client signed in through the demo's login form (its session protection is "strong")."""
    import re

    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": username, "password": "demo", "csrf_token": token})
    assert response.status_code == 302, "bench sign-in failed"
    return client


def staff(app, username):
    from examples.practice_host.models import Staff, db

    with app.app_context():
        return db.session.scalar(db.select(Staff).where(Staff.username == username))


def ingest(app, data, source_ref, patient_phone="+447700900100"):
    from callrec_plugin.ingest import ingest_audio

    with app.app_context():
        return ingest_audio(io.BytesIO(data), practice_ref="p1", started_at=dt.datetime.now(dt.timezone.utc),
                            direction="inbound", from_number=patient_phone, to_number="201", source="bench",
                            source_ref=source_ref).recording_id
