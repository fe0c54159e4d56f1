"""The call log's first page with a number filter against the patient panel's query, in a table of 10⁶
calls (bulk-inserted with one INSERT … SELECT), on PostgreSQL; and the EXPLAIN of every filter.

    python -m bench.call_log_bench --explain    # writes bench/call_log_explain.txt

Both sides run the statements their page runs, in one app context, alternated: the log's page of 50
(one statement: the rows, each row's hold, the capped count) and the panel's page of 20 (its rows with
links, holds and the objection). The ratio is their medians'.
"""
import datetime as dt
import os
import sys

import sqlalchemy as sa

from bench.demoapp import demo_app
from bench.timing import Row, side_by_side

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
EXPLAIN_FILE = os.path.join(os.path.dirname(__file__), "call_log_explain.txt")
COLUMNS = ("id, practice_ref, patient_ref, direction, started_at, duration_seconds, external_number, "
           "external_number_rev, staff_user_ref, staff_name, status, short_call, recorded_despite_objection, "
           "approved_for_training, retain_until, plaintext_size, stored_size, source, source_ref, created_at, "
           "audio_format, mime_type")


def _bulk_insert(connection, count, patient_ref, prefix):
    """``count`` calls over 200 days; 100,000 distinct numbers; a tenth matched to no patient."""
    number = "'+4477009' || lpad((i % 100000)::text, 5, '0')"
    started = "now() at time zone 'utc' - (i % 200) * interval '1 day' - (i % 86400) * interval '1 second'"
    patient = f"'{patient_ref}'" if patient_ref else "CASE WHEN i % 10 = 0 THEN NULL ELSE 'bulk-' || (i % 20000) END"
    connection.execute(sa.text(
        f"INSERT INTO callrec_recordings ({COLUMNS}) SELECT '{prefix}' || lpad(i::text, 12, '0'), 'p1', {patient}, "
        f"CASE WHEN i % 3 = 0 THEN 'outbound' ELSE 'inbound' END, {started}, (i % 900)::float, {number}, "
        f"reverse(substr({number}, 2)), 'staff-' || (i % 12), 'Staff ' || (i % 12), 'active', i % 50 = 0, "
        f"i % 500 = 0, false, {started} + interval '183 days', 1000, 1100, 'bulk', '{prefix}' || i, {started}, "
        f"'wav', 'audio/wav' FROM generate_series(1, {count}) AS s(i)"))


def _populate(app, rows, patient_calls):
    from examples.practice_host.models import Patient, db

    with app.app_context():
        patient_ref = db.session.scalar(sa.select(Patient.id).where(Patient.practice_id == "p1").limit(1))
        with db.engine.begin() as connection:
            _bulk_insert(connection, rows - patient_calls, None, "b")
            _bulk_insert(connection, patient_calls, patient_ref, "t")
            # One call in a thousand held, as a practice with open complaints and investigations has.
            connection.exec_driver_sql(
                "INSERT INTO callrec_holds (recording_id, practice_ref, kind, reason, placed_by_ref, placed_at) "
                "SELECT id, practice_ref, 'investigation', 'bench', 'staff-1', now() at time zone 'utc' "
                "FROM callrec_recordings WHERE right(id, 3) = '000'")
            connection.exec_driver_sql("ANALYZE")
        total = db.session.scalar(sa.text("SELECT count(*) FROM callrec_recordings"))
    return patient_ref, total


def _actor(app, username):
    from callrec_plugin.identity import actor_for
    from examples.practice_host.models import Staff, db

    return actor_for(db.session.scalar(db.select(Staff).where(Staff.username == username)))


def _searches():
    from callrec_plugin.call_log import CallSearch, NumberFilter

    today = dt.datetime.now(dt.timezone.utc).date()
    return {
        "number ending": CallSearch(number=NumberFilter(ending="04321")),
        "whole number": CallSearch(number=NumberFilter(e164="+447700904321")),
        "date range": CallSearch(date_from=today - dt.timedelta(days=7), date_to=today - dt.timedelta(days=6)),
        "time of day": CallSearch(date_from=today - dt.timedelta(days=30), date_to=today,
                                  time_from=dt.time(14), time_to=dt.time(15)),
        "direction": CallSearch(direction="outbound"),
        "member of staff": CallSearch(staff_ref="staff-7"),
        "patient": CallSearch(patient_ref="bulk-123"),
        "no patient": CallSearch(no_patient=True),
        "duration": CallSearch(min_seconds=600, max_seconds=700),
        "held": CallSearch(held=True),
        "flag: recorded after objection": CallSearch(flags=frozenset({"after_objection"})),
    }


def run(rows=10**6, patient_calls=500, repeat=30, explain=False):
    database_url = os.environ.get("CALLREC_BENCH_DATABASE_URL") or DEFAULT_DATABASE
    if not database_url.startswith("postgresql"):
        return [Row("call log first page (number filter)", "skipped", "needs PostgreSQL", float("nan"), "≤ 1.5", True)]
    with demo_app(prefix="callrec-call-log-bench-", database_url=database_url) as (app, _state):
        patient_ref, total = _populate(app, rows, patient_calls)
        with app.test_request_context(f"/patients/{patient_ref}"):
            if explain:
                _write_explain(app, total)
            return _measure(app, patient_ref, total, repeat)


def _measure(app, patient_ref, total, repeat):
    from callrec_plugin import call_log, panels
    from examples.practice_host.models import db

    manager, session = _actor(app, "manager"), db.session
    search = _searches()["number ending"]
    today = dt.datetime.now(dt.timezone.utc).date()

    def log_page():
        query = call_log.search_query("p1", search, "Europe/London", today)
        page = call_log.page_of(session, query)
        assert page.rows, "the number filter found nothing: the bench measures nothing"
        session.expunge_all()

    def panel_page():
        page = panels.patient_calls(manager, patient_ref, 1)
        assert page.rows
        session.expunge_all()

    log_page(), panel_page()
    ours, reference = side_by_side(log_page, panel_page, repeat=repeat)
    ratio = ours / reference
    return [Row(f"call log first page, number ending ({total:,} calls, postgresql)", f"{ours * 1000:.2f} ms",
                f"patient panel's query {reference * 1000:.2f} ms", ratio, "≤ 1.5", ratio <= 1.5)]


def _write_explain(app, total):
    from callrec_plugin import call_log
    from examples.practice_host.models import db

    today = dt.datetime.now(dt.timezone.utc).date()
    lines = [f"EXPLAIN ANALYZE of the call log's first page per filter, {total:,} calls, PostgreSQL "
             f"{db.session.scalar(sa.text('SHOW server_version'))}; written by python -m bench.call_log_bench "
             "--explain\n"]
    for name, search in _searches().items():
        search_query = call_log.search_query("p1", search, "Europe/London", today)
        params = dict(search_query.params, page_limit=51, count_limit=call_log.COUNT_CAP + 1)
        query = call_log._page_statement(search_query.shape, False).params(**params)
        compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
        plan = db.session.execute(sa.text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {compiled}"))
        lines.append(f"== {name}\n" + "\n".join(row[0] for row in plan) + "\n")
    with open(EXPLAIN_FILE, "w") as out:
        out.write("\n".join(lines))


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table(run(explain="--explain" in sys.argv))
