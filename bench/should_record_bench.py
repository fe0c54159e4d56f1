"""The should-record answer to the phone system against a minimal signed Flask endpoint, same run.

Both check the same HMAC signature, timestamp and nonce and remember the nonce in the same database with
one INSERT and a commit (replay protection that holds across server processes is part of a minimal
signed endpoint), through Flask's test client, with headers signed beforehand. callrec's answer also
asks the host whether the practice exists, reads the number, looks it up through the host
(callrec_resolve_patient) and reads the patient's objections: the floor row is the reference plus those
three lookups, the work the answer cannot skip.
"""
import time

from flask import Flask, jsonify, request

from bench.demoapp import demo_app, scratch_base
from bench.timing import Row, side_by_side
from callrec_plugin.ingest import signing

SECRET = "bench-pbx-secret"
PATH = "/callrec/api/should-record"


def reference_app(engine, lookups=None):
    """The least a signed endpoint can do: verify, remember the nonce in the database, answer JSON.
    ``lookups()`` adds work inside the request (the floor row)."""
    import sqlalchemy as sa

    app = Flask("reference")
    nonces = sa.Table("bench_reference_nonces", sa.MetaData(), sa.Column("nonce", sa.String(64), primary_key=True))
    nonces.create(engine, checkfirst=True)

    @app.get(PATH)
    def answer():
        headers = request.headers
        timestamp = signing.check_timestamp(headers.get(signing.HEADER_TIMESTAMP), time.time())
        nonce = signing.check_nonce(headers.get(signing.HEADER_NONCE))
        digest = signing.check_digest_matches(signing.check_digest_header(headers.get(signing.HEADER_CONTENT_SHA256)),
                                              signing.body_sha256(b""))
        path = request.path + "?" + request.query_string.decode()
        if not signing.verify(SECRET, "GET", path, timestamp, nonce, digest, 0, headers.get(signing.HEADER_SIGNATURE, "")):
            return jsonify(error="bad signature"), 401
        try:
            with engine.begin() as connection:
                connection.execute(nonces.insert().values(nonce=nonce))
        except sa.exc.IntegrityError:
            return jsonify(error="replay"), 409
        if lookups is not None:
            lookups()
        return jsonify(record=True, reason="no objection to recording for this number")

    return app


def _signed(number, count):
    path = f"{PATH}?number={number}"
    return path, iter([signing.signed_headers(SECRET, "p1", "GET", path, b"") for _ in range(count)])


def run(repeat=200, rounds=3):
    with demo_app(prefix="callrec-should-record-bench-", base=scratch_base()) as (app, _state):
        return _run(app, repeat, rounds)


def _run(app, repeat, rounds):
    from callrec_plugin.defaults.objections import patient_has_objected
    from callrec_plugin.state import get_state
    from examples.practice_host.models import Patient, PatientPhone, db

    app.config["CALLREC_API_SECRETS"] = {"p1": SECRET}
    with app.app_context():
        number = db.session.scalar(db.select(PatientPhone.e164).join(Patient).where(Patient.practice_id == "p1"))
        engine = db.engine

    def lookups():  # what the answer must read: the practice, the patient with the number, their objections
        with app.app_context():
            hook = get_state(app).pm.hook
            hook.callrec_practice_exists(practice_ref="p1")
            patient = hook.callrec_resolve_patient(phone_e164=number, practice_ref="p1", started_at=None)
            patient_has_objected("p1", patient)
            db.session.remove()

    calls = 2 * repeat * rounds + 10
    path, callrec_headers = _signed(number, calls)
    ref_path, reference_headers = _signed(number, calls)
    floor_path, floor_headers = _signed(number, calls)
    callrec_client = app.test_client()
    reference_client = reference_app(engine).test_client()
    floor_client = reference_app(engine, lookups).test_client()

    def callrec():
        response = callrec_client.get(path, headers=next(callrec_headers))
        assert response.status_code == 200 and "record" in response.json

    def reference():
        response = reference_client.get(ref_path, headers=next(reference_headers))
        assert response.status_code == 200 and response.json["record"] is True

    def floor():
        response = floor_client.get(floor_path, headers=next(floor_headers))
        assert response.status_code == 200

    for warm_up in (callrec, reference, floor):
        warm_up()
    measured, ref = side_by_side(callrec, reference, repeat=repeat, rounds=rounds)
    floor_seconds, _ = side_by_side(floor, reference, repeat=max(10, repeat // 4), rounds=rounds)
    ratio, floor_ratio = measured / ref, floor_seconds / ref
    return [
        Row("should-record answer to the PBX", f"{measured * 1e3:.2f} ms", f"{ref * 1e3:.2f} ms signed Flask",
            ratio, "≤ 1.5×", ratio <= 1.5),
        Row("  floor: signed Flask + practice, patient, objection lookups", f"{floor_seconds * 1e3:.2f} ms",
            f"{ref * 1e3:.2f} ms signed Flask", floor_ratio, "(floor)", True),
    ]
