"""The demo practice host in a scratch directory, for benchmarks that need the whole stack."""
import datetime as dt
import io
import os
import tempfile



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


def make_demo_app(state_dir=None, database_url=None):
    from callrec_plugin import migrate
    from examples.practice_host import create_app
    from examples.practice_host.models import db
    from examples.practice_host.seed import seed_host_data

    state = state_dir or tempfile.mkdtemp(prefix="callrec-bench-")
    database_url = database_url or f"sqlite:///{os.path.join(state, 'bench.db')}"
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        "SECRET_KEY": "bench",
        "CALLREC_STORAGE_DIR": os.path.join(state, "storage"),
        "CALLREC_KEY_FILE": os.path.join(state, "keys.txt"),
        "CALLREC_AUDIT_SIGNING_KEY_FILE": os.path.join(state, "audit.pem"),
        "CALLREC_LOAD_ENTRY_POINTS": False,
        "CALLREC_MAX_AUDIO_BYTES": 2**31,
    })
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
