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

    def with_panel():
        app.jinja_env.globals["callrec_slot"] = real_slot
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
    statement, render = _panel_parts(app, patient_ref, repeat)
    return [Row(f"patient page with panel ({patient_calls} calls, {total:,} rows, {dialect})",
                f"{ours * 1000:.2f} ms", f"without panel {host * 1000:.2f} ms", ratio, "≤ 1.2", ratio <= 1.2),
            Row("  (context) the panel's one statement alone (execute and fetch, no rendering)",
                f"{statement * 1000:.2f} ms", f"without panel {host * 1000:.2f} ms", (host + statement) / host,
                "(page without + this) / page without", True),
            Row("  (context) rendering the panel's template alone (its context built once, 20 rows)",
                f"{render * 1000:.2f} ms", f"what the panel adds {(ours - host) * 1000:.2f} ms",
                render / max(ours - host, 1e-9), "(share of the panel's cost)", True),
            Row("  (floor) the page without the panel + the panel's statement + its rendering, nothing else",
                f"{(host + statement + render) * 1000:.2f} ms", f"without panel {host * 1000:.2f} ms",
                (host + statement + render) / host, "(the least the panel can add, as written)", True),
            Row(f"statements per patient panel, counted at the server ({dialect})", str(statements),
                "page with panel − page without", statements, "= 1", statements == 1)]


def _panel_parts(app, patient_ref, repeat):
    """Median seconds of the panel's statement alone and of its template's rendering alone, so that the
    figure above shows where the panel's time goes."""
    from callrec_plugin import panels
    from callrec_plugin.defaults import panels as panel_slot
    from callrec_plugin.identity import actor_for
    from examples.practice_host.models import Staff, db
    from bench.timing import median_seconds

    captured = {}
    real_render = panel_slot.render_fragment

    def capture(template_name, **context):
        captured.update(context, template_name=template_name)
        return real_render(template_name, **context)

    with app.test_request_context(f"/patients/{patient_ref}"):
        user = db.session.scalar(sa.select(Staff).where(Staff.username == "reception"))
        actor = actor_for(user)
        size = app.config["CALLREC_PANEL_PAGE_SIZE"]
        statement = median_seconds(lambda: panels._panel_rows(actor, patient_ref, size, 1), repeat * 3)
        panel_slot.render_fragment = capture
        try:
            panel_slot.callrec_slot_patient_panel(patient_ref, user)
        finally:
            panel_slot.render_fragment = real_render
        template = app.jinja_env.get_template(captured.pop("template_name"))
        render = median_seconds(lambda: template.render(**captured), repeat * 3)
        db.session.rollback()
    return statement, render


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
