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
which the timed run purges with CALLREC_PURGE_BATCH_SIZE = 500. The bar of DESIGN.md §12: the time
per purged recording stays flat from 10^4 to 10^6 rows, and the statements per batch are a constant.
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


def _measure(url, total, purged, workdir):
    import sqlalchemy as sa

    from callrec_plugin import purge
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

        per_batch, mark = [], {"n": 0}

        def on_batch(report):
            per_batch.append(counter["n"] - mark["n"])
            mark["n"] = counter["n"]

        purge.finish_interrupted()  # warm: connections, statement caches
        sa.event.listen(db_engine, "before_cursor_execute", count)
        mark["n"] = 0
        started = time.perf_counter()
        report = purge.purge(on_batch=on_batch)
        seconds = time.perf_counter() - started
        sa.event.remove(db_engine, "before_cursor_execute", count)
        assert report.purged == purged, report.summary()
        hostapp.db.session.remove()
        db_engine.dispose()
    engine.dispose()
    shutil.rmtree(storage, ignore_errors=True)
    steady = per_batch[1:] or per_batch
    return {"seconds": seconds, "per_recording": seconds / purged, "batches": report.batches,
            "statements_per_batch": max(steady), "first_batch": per_batch[0], "populate": populate_seconds}


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
        rows.append(Row(f"SQL statements per purge batch of {BATCH_SIZE}, {total:,} rows",
                        str(result["statements_per_batch"]),
                        f"{first['statements_per_batch']} at {sizes[0]:,}; {result['batches']} batches",
                        ratio, "O(1): same count", ratio == 1.0))
    return rows


def main():
    for row in run(quick="--quick" in sys.argv or None):
        print(" | ".join(str(cell) for cell in (row.figure, row.measured, row.reference, f"{row.ratio:.2f}", row.bar,
                                                "ok" if row.ok else "MISSED")))


if __name__ == "__main__":
    main()
