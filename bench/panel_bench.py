"""The patient page with callrec's panel against the same host page without it, for a patient with
500 calls in a table of 10⁶ (bulk-inserted with one INSERT … SELECT), on PostgreSQL as DESIGN.md §12 has
it (CALLREC_BENCH_DATABASE_URL overrides the database; the bench works in its own schema)."""
import os

import sqlalchemy as sa
from markupsafe import Markup

from bench.demoapp import demo_app, signed_in_client
from bench.timing import Row, side_by_side

COLUMNS = ("id, practice_ref, patient_ref, direction, started_at, duration_seconds, external_number, staff_name, "
           "status, short_call, recorded_despite_objection, approved_for_training, retain_until, plaintext_size, "
           "stored_size, source, source_ref, created_at, audio_format, mime_type")


def _bulk_insert(connection, count, patient_ref, prefix):
    """`count` recordings (patient_ref NULL means spread over 20,000 other patients) in one statement."""
    if connection.dialect.name == "postgresql":
        series = f"generate_series(1, {count}) AS s(i)"
        row_id = f"'{prefix}' || lpad(i::text, 12, '0')"
        started = "now() at time zone 'utc' - (i % 200) * interval '1 day' - (i % 86400) * interval '1 second'"
        retain = f"{started} + interval '183 days'"
        source = "FROM " + series
        i = "i"
    else:
        source = f"FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) SELECT i FROM s)"
        row_id = f"'{prefix}' || printf('%012d', i)"
        started = "datetime('now', '-' || (i % 200) || ' days', '-' || (i % 86400) || ' seconds')"
        retain = "datetime('now', '-' || (i % 200) || ' days', '-' || (i % 86400) || ' seconds', '+183 days')"
        i = "i"
    patient = f"'{patient_ref}'" if patient_ref else f"'bulk-' || ({i} % 20000)"
    connection.execute(sa.text(
        f"INSERT INTO callrec_recordings ({COLUMNS}) SELECT {row_id}, 'p1', {patient}, 'inbound', {started}, "
        f"95.0, '+447700900999', 'Reception', 'active', false, false, false, {retain}, 1000, 1100, 'bulk', "
        f"'{prefix}' || {i}, {started}, 'wav', 'audio/wav' {source}"))


DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def run(rows=10**6, patient_calls=500, repeat=30):
    database_url = os.environ.get("CALLREC_BENCH_DATABASE_URL") or DEFAULT_DATABASE
    with demo_app(prefix="callrec-panel-bench-", database_url=database_url) as (app, _state):
        return _run(app, rows, patient_calls, repeat)


def _run(app, rows, patient_calls, repeat):
    from examples.practice_host.models import Patient, db

    with app.app_context():
        patient_ref = db.session.scalar(sa.select(Patient.id).where(Patient.practice_id == "p1").limit(1))
        with db.engine.begin() as connection:
            _bulk_insert(connection, rows - patient_calls, None, "b")
            _bulk_insert(connection, patient_calls, patient_ref, "t")
            connection.exec_driver_sql("ANALYZE")
        total = db.session.scalar(sa.text("SELECT count(*) FROM callrec_recordings"))
        dialect = db.engine.dialect.name
    client = signed_in_client(app, "reception")
    url = f"/patients/{patient_ref}"
    real_slot = app.jinja_env.globals["callrec_slot"]

    def with_panel(slot=real_slot):
        app.jinja_env.globals["callrec_slot"] = slot
        response = client.get(url)
        assert response.status_code == 200 and b"callrec-panel" in response.data

    def without_panel():
        app.jinja_env.globals["callrec_slot"] = lambda name, **refs: Markup("")
        response = client.get(url)
        assert response.status_code == 200 and b"callrec-panel" not in response.data

    with_panel(), without_panel()
    ours, host = side_by_side(with_panel, without_panel, repeat=repeat)
    app.jinja_env.globals["callrec_slot"] = real_slot
    ratio = ours / host
    statements = _panel_statements(app, with_panel, without_panel)
    app.jinja_env.globals["callrec_slot"] = real_slot
    inside = _panel_parts_in_page(app, with_panel, repeat * 3)
    alone = _statement_alone(app, patient_ref, repeat * 3)
    floor = host + inside["statement"] + inside["render"]
    return [Row(f"patient page with panel ({patient_calls} calls, {total:,} rows, {dialect})",
                f"{ours * 1000:.2f} ms", f"without panel {host * 1000:.2f} ms", ratio, "≤ 1.2", ratio <= 1.2),
            Row("  (context) the panel's one statement, timed inside the page requests (execute and fetch)",
                f"{inside['statement'] * 1000:.2f} ms", f"the same in a loop of its own {alone * 1000:.2f} ms",
                inside["statement"] / alone, "(in the page / in a loop: caches a page leaves cold)", True),
            Row("  (context) rendering the panel's template, timed inside the page requests (20 rows, forms)",
                f"{inside['render'] * 1000:.2f} ms", f"what the panel adds {(ours - host) * 1000:.2f} ms",
                inside["render"] / max(ours - host, 1e-9), "(share of the panel's cost)", True),
            Row("  (context) the rest of the panel's hook inside the page (decisions, forms, labels)",
                f"{inside['rest'] * 1000:.2f} ms", f"the whole hook {inside['hook'] * 1000:.2f} ms",
                inside["rest"] / max(inside["hook"], 1e-9), "(share of the hook)", True),
            Row("  (floor) the page without the panel + the panel's statement + its rendering, as timed in the page",
                f"{floor * 1000:.2f} ms", f"without panel {host * 1000:.2f} ms", floor / host,
                "(the least the panel can add, as written)", True),
            Row(f"statements per patient panel, counted at the server ({dialect})", str(statements),
                "page with panel − page without", statements, "= 1", statements == 1)]


def _panel_parts_in_page(app, with_panel, repeat):
    """Median seconds of the panel's statement, of its rendering and of its whole hook, each timed inside
    real page requests (an instrumented run of its own, so the figure above is not slowed by it): a
    piece timed in a loop of its own runs with warm caches the page leaves cold, and reads about half."""
    import statistics
    import time

    from callrec_plugin import panels
    from callrec_plugin.defaults import panels as panel_slot

    times = {"statement": [], "render": [], "hook": []}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                times[name].append(time.perf_counter() - started)
        return wrapper

    real_rows, real_render = panels._panel_rows, panel_slot.render_fragment
    real_slot = app.jinja_env.globals["callrec_slot"]
    timed_slot = timed("hook", real_slot)
    panels._panel_rows = timed("statement", real_rows)
    panel_slot.render_fragment = timed("render", real_render)
    try:
        for _ in range(repeat):
            with_panel(lambda name, **refs: timed_slot(name, **refs) if name == "patient_panel"
                       else real_slot(name, **refs))
    finally:
        panels._panel_rows, panel_slot.render_fragment = real_rows, real_render
        app.jinja_env.globals["callrec_slot"] = real_slot
    medians = {name: statistics.median(values) for name, values in times.items()}
    medians["rest"] = max(medians["hook"] - medians["statement"] - medians["render"], 0.0)
    return medians


def _statement_alone(app, patient_ref, repeat):
    """Median seconds of the panel's statement run again and again in one request (warm caches)."""
    from callrec_plugin import panels
    from callrec_plugin.identity import actor_for
    from examples.practice_host.models import Staff, db
    from bench.timing import median_seconds

    with app.test_request_context(f"/patients/{patient_ref}"):
        actor = actor_for(db.session.scalar(sa.select(Staff).where(Staff.username == "reception")))
        size = app.config["CALLREC_PANEL_PAGE_SIZE"]
        seconds = median_seconds(lambda: panels._panel_rows(actor, patient_ref, size, 1), repeat)
        db.session.rollback()
    return seconds


def _panel_statements(app, with_panel, without_panel):
    """What the panel adds to the page's statements, counted at the database server (server_statements)."""
    from bench.server_statements import server_statements
    from examples.practice_host.models import db

    with app.app_context():
        engine = db.engine
    with server_statements(engine) as panel:
        with_panel()
    with server_statements(engine) as bare:
        without_panel()
    return panel.statements - bare.statements
