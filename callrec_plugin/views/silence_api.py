"""POST /callrec/api/recordings/<call_id>/silence: a phone system reports, after sending the call,
the intervals during which recording was paused or must be silenced (a card payment).

Signed exactly like the ingest API (same five headers, the body's SHA-256 in the canonical string),
with a JSON body ``{"silence": [[start_seconds, end_seconds], ...]}``. ``call_id`` is the ``call_id``
the call was sent with (its ``source_ref``). The audio is rewritten at once: a new blob with the
ranges silenced, under a new data key; the old key destroyed and the old blob deleted
(``redaction.py``). Answers JSON: 200 ``{"id", "status": "silenced", "silenced": [[start, end], ...]}``,
or ``{"error": ...}`` with 400, 401, 404 (no such call in the practice), 409 (replayed nonce, or a
format that cannot be silenced exactly: the reason says what to change on the phone system).
"""
import hashlib
import json
import time

import sqlalchemy as sa
from flask import current_app, jsonify, request

from callrec_plugin import redaction, silencing
from callrec_plugin.identity import Actor
from callrec_plugin.ingest import signing
from callrec_plugin.models import Recording, RecordingStatus, Redaction
from callrec_plugin.state import db_session
from callrec_plugin.views import UNREADABLE, blueprint
from callrec_plugin.views.ingest_api import ApiRefusal, _refuse, _remember_nonce, _secret

ROUTES = {"callrec.report_silence": None}  # signed with the practice's HMAC secret, not a login

MAX_BODY_BYTES = 64 * 1024


def _verified_body(practice_ref):
    """The request body, once its signature (over the declared digest and length), nonce and digest
    are checked, in the order ``signing`` documents: nothing is read before the signature holds."""
    secret = _secret(practice_ref)
    headers = request.headers
    try:
        timestamp = signing.check_timestamp(headers.get(signing.HEADER_TIMESTAMP), time.time(),
                                            current_app.config["CALLREC_API_MAX_SKEW_SECONDS"])
        nonce = signing.check_nonce(headers.get(signing.HEADER_NONCE))
        claimed = signing.check_digest_header(headers.get(signing.HEADER_CONTENT_SHA256))
        length = signing.check_content_length(headers.get("Content-Length"), MAX_BODY_BYTES)
    except signing.SignatureError as exc:
        raise ApiRefusal(401, str(exc)) from None
    except OverflowError as exc:
        raise ApiRefusal(413, str(exc)) from None
    if not signing.verify(secret, request.method, request.script_root + request.path, timestamp, nonce, claimed,
                          length, headers.get(signing.HEADER_SIGNATURE, "")):
        raise ApiRefusal(401, "bad signature: check the shared secret and the canonical string")
    _remember_nonce(practice_ref, nonce)
    body = request.stream.read(length)
    try:
        signing.check_digest_matches(claimed, hashlib.sha256(body).hexdigest())
    except signing.SignatureError as exc:
        raise ApiRefusal(401, str(exc)) from None
    return body


def _intervals(body):
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ApiRefusal(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "silence" not in data:
        raise ApiRefusal(400, 'send a JSON object {"silence": [[start_seconds, end_seconds], ...]}')
    try:
        intervals = silencing.parse_intervals(data["silence"])
    except ValueError as exc:
        raise ApiRefusal(400, f"silence: {exc}") from None
    if not intervals:
        raise ApiRefusal(400, "silence lists no interval")
    return intervals


def _call(practice_ref, call_id):
    recording = db_session().scalar(
        sa.select(Recording).where(Recording.practice_ref == practice_ref, Recording.source_ref == call_id,
                                   Recording.status == RecordingStatus.ACTIVE)
        .order_by(Recording.source != "api", Recording.created_at).limit(1))
    if recording is None:
        raise ApiRefusal(404, f"no recording with call_id {call_id!r} in practice {practice_ref!r}")
    return recording


def _already_done(recording, intervals):
    """The same report sent again (a retry after a lost answer) is answered, not applied twice."""
    requested = redaction.intervals_json(intervals)
    return db_session().scalar(
        sa.select(Redaction).where(Redaction.recording_id == recording.id, Redaction.source == redaction.SOURCE_PBX,
                                   Redaction.requested == requested, Redaction.status == redaction.DONE))


@blueprint.route("/api/recordings/<call_id>/silence", methods=["POST"])
def report_silence(call_id):
    practice_ref = request.headers.get(signing.HEADER_PRACTICE, "").strip()[:64] or None
    try:
        intervals = _intervals(_verified_body(practice_ref))
        recording = _call(practice_ref, call_id[:160])
        row = _already_done(recording, intervals)
        if row is None:
            pbx = Actor(user=None, ref="system", name=f"phone system ({recording.source})", roles=frozenset(),
                        practice_ref=practice_ref)
            row = redaction.redact(recording.id, practice_ref, intervals, actor=pbx, reason=redaction.PBX_PAUSE,
                                   source=redaction.SOURCE_PBX)
            if row.status != redaction.DONE:
                raise ApiRefusal(404, f"the recording with call_id {call_id!r} was deleted meanwhile")
    except ApiRefusal as refusal:
        return _refuse(refusal.status, refusal.reason, practice_ref)
    except redaction.RedactionRefused as refusal:
        return _refuse(409 if refusal.status == 422 else refusal.status, refusal.reason, practice_ref)
    except UNREADABLE as damage:
        db_session().rollback()
        current_app.logger.error("silence report for %s: the stored audio cannot be read: %s", call_id, damage)
        return _refuse(500, "the stored recording cannot be read; nothing was changed", practice_ref)
    return jsonify(id=recording.id, status="silenced", silenced=redaction.ranges_of(row)), 200
