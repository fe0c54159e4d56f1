"""GET /callrec/api/should-record?number=…: the phone system asks before it records a call.

Signed like the ingest API (``ingest/signing.py``): HMAC-SHA256 with the practice's secret over the
method, the path with its query string as sent, the timestamp, the nonce and the SHA-256 of the empty
body; a nonce is accepted once (a replay is 409). The answer is JSON ``{"record": true|false,
"reason": …}`` from the ``callrec_should_record`` hook. It sits in the dialplan of every call, so it
does the least work it can: no audit event (the answer reveals only that a number may not be
recorded, and the PBX is a system, not a person looking at a record); refusals are logged, failed
authentication counted. The practice's existence and the number's normal form are remembered per
process (pbx_lookups.py); the objections never are. The nonce is written last, in the session's
transaction of the reads, with one commit: the database sees the objection read (and the host's patient lookup when
an objection stands in the practice), one INSERT and a COMMIT.
"""
import datetime as dt
import random
import time

import sqlalchemy as sa
from flask import current_app, jsonify, request

from callrec_plugin.ingest import auth_failures, signing
from callrec_plugin.ingest.numbers import WITHHELD, InvalidNumber
from callrec_plugin.models import ApiNonce, utcnow
from callrec_plugin.pbx_lookups import check_practice_cached, normalised_number
from callrec_plugin.practices import UnknownPractice
from callrec_plugin.state import db_session, get_state
from callrec_plugin.views import blueprint

ROUTES = {"callrec.should_record": None}  # signed with the practice's HMAC secret, not a login

EMPTY_BODY_SHA256 = signing.body_sha256(b"")
NONCES = ApiNonce.__table__
# Old nonces are swept on about one request in this many: the sweep is a DELETE the PBX need not wait for each time.
SWEEP_ONE_IN = 50


def sweep_due():
    """True on about one request in SWEEP_ONE_IN: this request also deletes nonces too old to replay."""
    return random.randrange(SWEEP_ONE_IN) == 0


class Refusal(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _signed_practice():
    """(practice, nonce) of a correctly signed, fresh request; Refusal otherwise. Whether the nonce was
    seen before is settled by _remember, after the answer's reads."""
    headers = request.headers
    practice_ref = headers.get(signing.HEADER_PRACTICE, "").strip()[:64]
    secret = current_app.config["CALLREC_API_SECRETS"].get(practice_ref) if practice_ref else None
    if not secret:
        raise Refusal(401, f"unknown practice {practice_ref!r}: no API secret is configured for it")
    try:
        timestamp = signing.check_timestamp(headers.get(signing.HEADER_TIMESTAMP), time.time(),
                                            current_app.config["CALLREC_API_MAX_SKEW_SECONDS"])
        nonce = signing.check_nonce(headers.get(signing.HEADER_NONCE))
        digest = signing.check_digest_header(headers.get(signing.HEADER_CONTENT_SHA256))
        signing.check_digest_matches(digest, EMPTY_BODY_SHA256)
    except signing.SignatureError as exc:
        raise Refusal(401, exc.reason) from None
    if request.content_length:
        raise Refusal(400, "a should-record request has no body")
    path = request.script_root + request.path
    if request.query_string:
        path += "?" + request.query_string.decode("ascii", "replace")
    if not signing.verify(secret, "GET", path, timestamp, nonce, digest, 0, headers.get(signing.HEADER_SIGNATURE, "")):
        raise Refusal(401, "bad signature: check the shared secret and the canonical string (path with its query)")
    try:
        check_practice_cached(practice_ref)
    except UnknownPractice as exc:
        raise Refusal(401, exc.reason) from None
    return practice_ref, nonce


def _remember(practice_ref, nonce):
    """Record the nonce and commit; Refusal(409) if it was seen before (a replay gets no answer)."""
    session = db_session()
    # Core on the session's connection (no ORM unit of work or bulk-insert machinery): every call asks.
    connection = session.connection(bind_arguments={"mapper": ApiNonce})
    now = utcnow()
    if sweep_due():
        window = dt.timedelta(seconds=2 * current_app.config["CALLREC_API_MAX_SKEW_SECONDS"])
        connection.execute(NONCES.delete().where(NONCES.c.seen_at < now - window))
    try:
        connection.execute(NONCES.insert(), {"practice_ref": practice_ref, "nonce": nonce, "seen_at": now})
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
        raise Refusal(409, "this nonce was used before: the request is a replay") from None


def answer(practice_ref, number_text):
    """(record, reason) for a number as the phone system gives it."""
    try:
        number = normalised_number(number_text, current_app.config["CALLREC_PHONE_REGION"])
    except InvalidNumber as exc:
        raise Refusal(400, f"number: {exc.reason}") from None
    if number == WITHHELD:
        return True, "number withheld: no patient can be looked up"
    if number.startswith("ext:"):
        return True, "an internal extension"
    may_record = get_state().pm.hook.callrec_should_record(phone_e164=number, practice_ref=practice_ref)
    if may_record is False:
        return False, "a patient with this number objected to recording"
    return True, "no objection to recording for this number"


@blueprint.route("/api/should-record", methods=["GET"])
def should_record():
    try:
        practice_ref, nonce = _signed_practice()
        if "number" not in request.args:
            raise Refusal(400, "give the caller's number: ?number=…")
        record, reason = answer(practice_ref, request.args.get("number", ""))
        _remember(practice_ref, nonce)
    except Refusal as refusal:
        db_session().rollback()
        if refusal.status == 401:  # counted and logged rate-limited, never audited (auth_failures.py)
            auth_failures.note("callrec.should_record", 401, refusal.reason,
                               request.headers.get(signing.HEADER_PRACTICE, ""), request.remote_addr)
        else:
            current_app.logger.warning("callrec should-record refused (%s): %s", refusal.status, refusal.reason)
        return jsonify(error=refusal.reason), refusal.status
    return jsonify(record=record, reason=reason)
