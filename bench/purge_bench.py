"""Purge time per recording at 10^4, 10^5 and 10^6 rows on PostgreSQL, and SQL statements per batch.

    python -m bench.purge_bench                         # 10^4, 10^5, 10^6 rows
    CALLREC_BENCH_PURGE_SIZES=10000,100000 python -m bench.purge_bench
    CALLREC_BENCH_QUICK=1 python -m bench.purge_bench   # 10^4 and 10^5 rows, fewer purged

``run()`` returns rows (figure, measured, reference, ratio, bar) for ``python -m bench``.

Each size gets a fresh table in a schema of its own (``callrec_bench_purge``, dropped afterwards) in the
database of CALLREC_BENCH_DATABASE_URL (default: CALLREC_TEST_DATABASE_URL, else
postgresql+psycopg://postgres@127.0.0.1:5432/test). The rows are made by one INSERT ... SELECT over
generate_series: active calls within retention, a fixed number of expired calls under a hold, and a
fixed number (CALLREC_BENCH_PURGED, default 5,000) of expired, unheld calls with small real CRE1 blobs,
which the timed run purges with CALLREC_PURGE_BATCH_SIZE = 500, as a purge job (so each batch also
records the job's heartbeat). The bar of DESIGN.md §12: the time per purged recording stays flat from
10^4 to 10^6 rows, and the statements per batch are a constant, at most 10.

Statements are counted AT THE SERVER: pg_stat_statements is not loaded on this server (it needs
shared_preload_libraries and a restart), so every database connection of the run is traced with
libpq's protocol trace (psycopg's ``pgconn.trace``) and the bench counts the server's own
``CommandComplete`` replies: one per statement the server executed, so a driver's executemany counts
once per row, as it runs. Transaction control (BEGIN, COMMIT, ROLLBACK) is counted apart. A marker
query sent between batches splits the trace into batches; the first batch also carries the run's
set-up, so the figure is the largest of the others. SQLAlchemy's own count of calls is printed beside
it, to show how far a client-side count can be from the server's.
"""
import datetime as dt
import os
import shutil
import sys
import tempfile
import time

SCHEMA = "callrec_bench_purge"  # its own schema: the panel bench uses callrec_bench
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
BATCH_SIZE = 500
HELD = 300


def database_url():
    return (os.environ.get("CALLREC_BENCH_DATABASE_URL") or os.environ.get("CALLREC_TEST_DATABASE_URL")
            or "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _sizes(quick):
    text = os.environ.get("CALLREC_BENCH_PURGE_SIZES")
    if text:
        return tuple(int(part) for part in text.split(",") if part.strip())
    return QUICK_SIZES if quick else DEFAULT_SIZES


def _engine(url):
    import sqlalchemy as sa

    return sa.create_engine(url, connect_args={"options": f"-csearch_path={SCHEMA}"})


def _fresh_schema(url):
    import sqlalchemy as sa

    from callrec_plugin.models import metadata

    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
    admin.dispose()
    engine = _engine(url)
    metadata.create_all(engine)
    return engine


def _drop_schema(url):
    import sqlalchemy as sa

    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    admin.dispose()


BULK_INSERT = """
INSERT INTO callrec_recordings (id, practice_ref, patient_ref, direction, started_at, duration_seconds,
    external_number, status, short_call, recorded_despite_objection, approved_for_training, retain_until,
    storage_key, wrapped_key, key_id, audio_format, mime_type, plaintext_size, stored_size, source, source_ref,
    created_at)
SELECT 'r' || lpad(g::text, 12, '0'), 'pA', 'pat' || (g % 20000), 'inbound',
       :now - make_interval(days => (g % 170), secs => g % 86400), 60.0,
       '+4477009' || lpad((g % 100000)::text, 5, '0'), 'active', false, false, false,
       :now - make_interval(days => (g % 170), secs => g % 86400) + interval '183 days',
       NULL, '\\x00'::bytea, 'bench', 'wav', 'audio/wav', 0, 0, 'bench', 'r' || g, :now
FROM generate_series(1, :count) AS g
"""
HELD_INSERT = """
INSERT INTO callrec_recordings (id, practice_ref, patient_ref, direction, started_at, duration_seconds, status,
    short_call, recorded_despite_objection, approved_for_training, retain_until, wrapped_key, key_id,
    plaintext_size, stored_size, source, source_ref, created_at)
SELECT 'h' || lpad(g::text, 12, '0'), 'pA', NULL, 'inbound', :now - interval '250 days', 60.0, 'active',
       false, false, false, :now - interval '67 days', '\\x00'::bytea, 'bench', 0, 0, 'bench', 'h' || g, :now
FROM generate_series(1, :count) AS g;
INSERT INTO callrec_holds (recording_id, practice_ref, kind, reason, placed_by_ref, placed_at)
SELECT 'h' || lpad(g::text, 12, '0'), 'pA', 'investigation', 'bench', 'owner', :now - interval '90 days'
FROM generate_series(1, :count) AS g;
"""


def _populate(engine, app, total, purged):
    """total rows: the eligible ones (real blobs), HELD held ones, the rest within retention."""
    import sqlalchemy as sa

    from callrec_plugin.models import Recording, utcnow
    from tests.jobs_support import Blobs, recording_row

    now = utcnow().replace(tzinfo=None)
    bulk = max(0, total - purged - HELD)
    with engine.begin() as connection:
        connection.execute(sa.text(BULK_INSERT), {"now": now, "count": bulk})
        for statement in HELD_INSERT.strip().split(";\n"):
            if statement.strip():
                connection.execute(sa.text(statement), {"now": now, "count": HELD})
    blobs, rows = Blobs(app), []
    aware_now = utcnow()
    for n in range(purged):
        row = recording_row(aware_now - dt.timedelta(days=200, seconds=n), id=f"e{n:012d}", patient_ref=f"pat{n % 50}")
        row.update(blobs.write(row["id"], b"x" * 200))
        rows.append(row)
    with app.app_context():
        from tests import hostapp

        for start in range(0, len(rows), 1000):
            hostapp.db.session.execute(sa.insert(Recording), rows[start:start + 1000])
        hostapp.db.session.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE callrec_recordings"))
        connection.execute(sa.text("VACUUM ANALYZE callrec_holds"))


MARKER = "callrec-bench-batch-marker"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


class ServerStatementTrace:
    """libpq protocol trace of every connection an engine opens; counts the server's CommandComplete."""

    def __init__(self, engine, path):
        import sqlalchemy as sa

        self.engine, self.path, self.traced = engine, path, []
        self.file = open(path, "w")
        sa.event.listen(engine, "connect", self._trace)
        engine.dispose()  # every connection from now on is a new, traced one

    def _trace(self, dbapi_connection, _record):
        from psycopg import pq

        dbapi_connection.pgconn.trace(self.file.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        self.traced.append(dbapi_connection)

    def mark(self):
        """A marker between batches (autocommit: no BEGIN of its own), excluded from the counts."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f"SELECT '{MARKER}'")

    def stop(self):
        import sqlalchemy as sa

        sa.event.remove(self.engine, "connect", self._trace)
        for connection in self.traced:
            try:
                connection.pgconn.untrace()  # flushes libpq's buffer
            except Exception:
                pass
        self.file.close()

    def per_batch(self):
        """[(statements, transaction control)] between consecutive markers, in order."""
        segments, statements, control, skip = [], 0, 0, False
        with open(self.path) as trace:
            for line in trace:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3:
                    continue
                if parts[0] == "F" and parts[2] == "Query" and MARKER in line:
                    segments.append((statements, control))
                    statements, control, skip = 0, 0, True
                elif parts[0] == "B" and parts[2] == "CommandComplete":
                    if skip:
                        skip = False
                    elif parts[3].strip().strip('"').split(" ")[0] in TRANSACTION_CONTROL:
                        control += 1
                    else:
                        statements += 1
        return segments


def _measure(url, total, purged, workdir):
    import sqlalchemy as sa

    from callrec_plugin import purge, queueing
    from callrec_plugin.keyring import generate_key_file
    from tests import hostapp

    engine = _fresh_schema(url)
    key_file = os.path.join(workdir, f"keys-{total}.txt")
    generate_key_file(key_file)
    storage = os.path.join(workdir, f"storage-{total}")
    app = hostapp.create_app({
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-csearch_path={SCHEMA}"}},
        "CALLREC_STORAGE_DIR": storage, "CALLREC_KEY_FILE": key_file, "CALLREC_PURGE_BATCH_SIZE": BATCH_SIZE,
    })
    started = time.perf_counter()
    _populate(engine, app, total, purged)
    populate_seconds = time.perf_counter() - started
    with app.app_context():
        db_engine = hostapp.db.engine
        counter = {"n": 0}

        def count(*args, **kwargs):
            counter["n"] += 1

        client_per_batch, mark = [], {"n": 0}
        purge.finish_interrupted()  # warm: connections, statement caches
        job = queueing.create_job("purge", requested_by_ref="bench")
        trace = ServerStatementTrace(db_engine, os.path.join(workdir, f"trace-{total}.txt"))

        def on_batch(report):
            client_per_batch.append(counter["n"] - mark["n"])
            trace.mark()
            mark["n"] = counter["n"]

        sa.event.listen(db_engine, "before_cursor_execute", count)
        started = time.perf_counter()
        report = purge.purge(on_batch=on_batch, job_id=job.id)
        seconds = time.perf_counter() - started
        sa.event.remove(db_engine, "before_cursor_execute", count)
        trace.stop()
        assert report.purged == purged, report.summary()
        hostapp.db.session.remove()
        db_engine.dispose()
    engine.dispose()
    shutil.rmtree(storage, ignore_errors=True)
    server = trace.per_batch()
    steady = server[1:] or server
    return {"seconds": seconds, "per_recording": seconds / purged, "batches": report.batches,
            "statements_per_batch": max(n for n, _ in steady), "control_per_batch": max(c for _, c in steady),
            "constant": len({n for n, _ in steady}) == 1,
            "client_per_batch": max(client_per_batch[1:] or client_per_batch), "first_batch": server[0][0],
            "populate": populate_seconds}


def run(quick=None, sizes=None, purged=None):
    import sqlalchemy as sa

    from bench.timing import Row

    quick = os.environ.get("CALLREC_BENCH_QUICK") == "1" if quick is None else quick
    sizes = sizes or _sizes(quick)
    purged = purged or int(os.environ.get("CALLREC_BENCH_PURGED", 2000 if quick else 5000))
    url = database_url()
    if not url.startswith("postgresql"):
        return [Row("purge time per recording", "skipped", "needs PostgreSQL", float("nan"), "flat", False)]
    try:
        sa.create_engine(url).connect().close()
    except sa.exc.OperationalError as exc:
        return [Row("purge time per recording", "skipped", f"PostgreSQL unreachable: {str(exc).splitlines()[0]}",
                    float("nan"), "flat", False)]
    results = {}
    with tempfile.TemporaryDirectory(prefix="callrec-purge-bench-") as workdir:
        try:
            for total in sizes:
                results[total] = _measure(url, max(total, purged + HELD), purged, workdir)
        finally:
            _drop_schema(url)
    first = results[sizes[0]]
    rows = []
    for total in sizes:
        result = results[total]
        ratio = result["per_recording"] / first["per_recording"]
        rows.append(Row(f"purge time per recording, {total:,} rows ({purged:,} purged, batches of {BATCH_SIZE})",
                        f"{result['per_recording'] * 1e6:.0f} µs", f"{first['per_recording'] * 1e6:.0f} µs at {sizes[0]:,}",
                        ratio, "flat: <= 1.5", ratio <= 1.5))
    for total in sizes:
        result = results[total]
        ratio = result["statements_per_batch"] / first["statements_per_batch"]
        rows.append(Row(f"statements at the server per purge batch of {BATCH_SIZE}, {total:,} rows "
                        "(libpq trace, CommandComplete)",
                        f"{result['statements_per_batch']} + {result['control_per_batch']} BEGIN/COMMIT",
                        f"{first['statements_per_batch']} at {sizes[0]:,}; {result['batches']} batches, "
                        f"every batch the same: {'yes' if result['constant'] else 'no'}; "
                        f"SQLAlchemy counts {result['client_per_batch']}",
                        ratio, "constant, <= 10", ratio == 1.0 and result["constant"]
                        and result["statements_per_batch"] <= 10))
    return rows


def main():
    for row in run(quick="--quick" in sys.argv or None):
        print(" | ".join(str(cell) for cell in (row.figure, row.measured, row.reference, f"{row.ratio:.2f}", row.bar,
                                                "ok" if row.ok else "MISSED")))


if __name__ == "__main__":
    main()
