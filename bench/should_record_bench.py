"""The should-record answer to the PBX against a minimal signed Flask endpoint, same run, interleaved.

The reference checks the same HMAC signature, timestamp and nonce and remembers the nonce in the same
database with one INSERT and a commit (replay protection that holds across server processes is part of
a minimal signed endpoint). It is mounted twice: on the demo host itself (the bar's reference: the same
host's per-request hooks, its session, CSRF, Flask-Limiter and Flask-Login, run for both, as they do for
any endpoint an integrator adds), and on a plain Flask app with no hooks at all (printed beside it, so
the host's share is visible). All through Flask's test client, with headers signed beforehand; every
response body is read. One patient of the demo practice p1 has a standing objection (as in the demo), so
callrec's answer takes its full path: the practice's standing objections, then the host's patient lookup
for the number (another patient's, so the answer is true; the objector's number is checked to be refused
first).

Rows beside the figure:
* floor: the in-host reference plus the two reads the answer cannot skip: the patient with this number,
  asked of the host through its ``callrec_resolve_patient`` hook (what that costs is the host's: the
  demo builds an ORM query each time), and the practice's standing objections in Core on the
  reference's own connection and transaction. The least any implementation could do in this host;
* the same answer against the plain Flask app, and the demo host's no-op JSON route against that app:
  the host's own per-request work, which every endpoint in the host pays and a bare Flask app does not.
"""
import statistics
import time

import sqlalchemy as sa
from flask import Flask, jsonify, request

from bench.demoapp import demo_app, scratch_base
from bench.timing import Row
from callrec_plugin.ingest import signing

SECRET = "bench-pbx-secret"
PATH = "/callrec/api/should-record"
HOST_REFERENCE = "/bench/signed-reference"
HOST_FLOOR = "/bench/signed-floor"
HOST_NOOP = "/bench/noop"


def add_reference(app, engine, rule, reads=None, table="bench_reference_nonces"):
    """Mount the least a signed endpoint can do on ``app`` at ``rule``: verify, remember the nonce in the
    database, answer JSON. ``reads(connection, number)`` runs in the nonce's transaction, before the
    INSERT, and decides the answer (the floor row)."""
    nonces = sa.Table(table, sa.MetaData(), sa.Column("nonce", sa.String(64), primary_key=True))
    nonces.create(engine, checkfirst=True)

    def answer():
        headers = request.headers
        timestamp = signing.check_timestamp(headers.get(signing.HEADER_TIMESTAMP), time.time())
        nonce = signing.check_nonce(headers.get(signing.HEADER_NONCE))
        digest = signing.check_digest_matches(signing.check_digest_header(headers.get(signing.HEADER_CONTENT_SHA256)),
                                              signing.body_sha256(b""))
        path = request.path + "?" + request.query_string.decode()
        if not signing.verify(SECRET, "GET", path, timestamp, nonce, digest, 0, headers.get(signing.HEADER_SIGNATURE, "")):
            return jsonify(error="bad signature"), 401
        record = True
        try:
            with engine.begin() as connection:
                if reads is not None:
                    record = reads(connection, request.args["number"])
                connection.execute(nonces.insert().values(nonce=nonce))
        except sa.exc.IntegrityError:
            return jsonify(error="replay"), 409
        return jsonify(record=record, reason="no objection to recording for this number")

    app.add_url_rule(rule, f"bench_signed_{rule.strip('/').replace('/', '_')}", answer, methods=["GET"])
    return app


def reference_app(engine, reads=None):
    """The reference on a plain Flask app of its own (no host hooks)."""
    return add_reference(Flask("reference"), engine, PATH, reads)


def answer_reads(app, practice_ref):
    """The floor's reads: the patient with this number, asked of the host through its own
    ``callrec_resolve_patient`` (the host's cost, whoever asks), and the practice's standing objections in
    Core on the reference's connection. The practice's existence is not read: callrec remembers it."""
    from callrec_plugin.defaults.objections import STANDING_OBJECTORS

    hook = app.extensions["callrec"].pm.hook

    def reads(connection, number):
        objectors = set(connection.execute(STANDING_OBJECTORS, {"practice_ref": practice_ref}).scalars())
        if not objectors:
            return True
        patient = hook.callrec_resolve_patient(phone_e164=number, practice_ref=practice_ref, started_at=None)
        return patient is None or str(patient) not in objectors

    return reads


def _signed(number, count, rule=PATH):
    """The path asked and ``count`` fresh signed header sets for it (signed before timing)."""
    path = f"{rule}?number={number.replace('+', '%2B')}"
    return path, iter([signing.signed_headers(SECRET, "p1", "GET", path, b"") for _ in range(count)])


def run(repeat=200, rounds=3):
    with demo_app(prefix="callrec-should-record-bench-", base=scratch_base()) as (app, _state):
        return _run(app, repeat, rounds)


def interleaved(functions, repeat, rounds):
    """(wall, CPU) median seconds of each function, called in turn one call at a time (A, B, C, A, B, C,
    ...), so a burst of load on this shared machine falls on all of them alike. CPU time (this process's)
    is kept beside the wall clock: on this VM a deep call stack costs fresh pages (CPython 3.11 maps and
    unmaps a 16 KiB frame-stack chunk each time the stack crosses a chunk boundary, and a fresh page is
    a host page fault here), which shows as wall time the process did not spend computing."""
    wall, cpu = [[] for _ in functions], [[] for _ in functions]
    for _ in range(repeat * rounds):
        for spent_wall, spent_cpu, function in zip(wall, cpu, functions):
            start, start_cpu = time.perf_counter(), time.process_time()
            function()
            spent_cpu.append(time.process_time() - start_cpu)
            spent_wall.append(time.perf_counter() - start)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu)]


def _statements_per_answer(app, ask):
    """SQL statements the database receives for one answer (counted at the cursor)."""
    with app.app_context():
        engine = app.extensions["sqlalchemy"].engine
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        ask()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def _run(app, repeat, rounds):
    from callrec_plugin.defaults.objections import objecting_patients
    from callrec_plugin.models import PatientObjection
    from examples.practice_host.models import Patient, PatientPhone, db
    from examples.practice_host.seed import OBJECTING_PATIENT

    app.config["CALLREC_API_SECRETS"] = {"p1": SECRET}

    @app.get(HOST_NOOP)
    def bench_noop():
        return jsonify(record=True)

    with app.app_context():
        db.session.add(PatientObjection(practice_ref="p1", patient_ref=OBJECTING_PATIENT, recorded_by_ref="bench",
                                        method="phone"))
        db.session.commit()
        objectors = objecting_patients("p1")
        assert objectors == {OBJECTING_PATIENT}
        number = db.session.scalar(db.select(PatientPhone.e164).join(Patient).where(
            Patient.practice_id == "p1", Patient.id.not_in(objectors)).order_by(PatientPhone.e164).limit(1))
        objector_number = db.session.scalar(db.select(PatientPhone.e164).where(
            PatientPhone.patient_id.in_(objectors)).limit(1))
        engine = db.engine

    add_reference(app, engine, HOST_REFERENCE)
    add_reference(app, engine, HOST_FLOOR, answer_reads(app, "p1"))
    client = app.test_client()
    plain_client = reference_app(engine).test_client()
    calls = repeat * rounds + 20

    def asking(test_client, rule, answer=True):
        """One signed request as the timed function: the status and the answer checked, the body read."""
        path, headers = _signed(objector_number if answer is False else number, calls, rule)

        def ask():
            response = test_client.get(path, headers=next(headers))
            assert response.status_code == 200 and response.json["record"] is answer, response.data

        return ask

    def host_noop():
        response = client.get(HOST_NOOP)
        assert response.status_code == 200 and response.json["record"] is True

    # The answers are right before they are timed: the objector is refused, by callrec and by the floor.
    asking(client, PATH, answer=False)()
    asking(client, HOST_FLOOR, answer=False)()
    timed = (asking(client, PATH), asking(client, HOST_REFERENCE), asking(client, HOST_FLOOR),
             asking(plain_client, PATH), host_noop)
    for warm_up in timed:
        for _ in range(5):
            warm_up()
    statements = _statements_per_answer(app, asking(client, PATH))
    (measured, measured_cpu), (ref, ref_cpu), (floor_seconds, floor_cpu), (plain, _), (noop, _) = interleaved(
        timed, repeat, rounds)
    ratio = measured / ref
    in_host, bare = "signed endpoint in the host", "signed plain Flask"
    return [
        Row("should-record answer to the PBX", f"{measured * 1e3:.2f} ms, {statements} SQL",
            f"{ref * 1e3:.2f} ms {in_host}", ratio, "≤ 1.5×", ratio <= 1.5),
        Row("  floor: + the host's patient lookup and the objection read", f"{floor_seconds * 1e3:.2f} ms",
            f"{ref * 1e3:.2f} ms {in_host}", floor_seconds / ref, "(floor)", True),
        Row("  the answer in CPU time", f"{measured_cpu * 1e3:.2f} ms CPU", f"{ref_cpu * 1e3:.2f} ms CPU {in_host}",
            measured_cpu / ref_cpu, "(CPU)", True),
        Row("  the floor in CPU time", f"{floor_cpu * 1e3:.2f} ms CPU", f"{ref_cpu * 1e3:.2f} ms CPU {in_host}",
            floor_cpu / ref_cpu, "(CPU floor)", True),
        Row("  the answer against a plain Flask app (no host hooks)", f"{measured * 1e3:.2f} ms",
            f"{plain * 1e3:.2f} ms {bare}", measured / plain, "(no host)", True),
        Row("  the demo host's no-op JSON route (its hooks alone)", f"{noop * 1e3:.2f} ms",
            f"{plain * 1e3:.2f} ms {bare}", noop / plain, "(host)", True),
    ]
