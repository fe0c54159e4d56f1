"""POST /callrec/api/recordings: a phone system uploads a call, signed with its practice's secret.

Multipart body: ``audio`` (the recording) and ``metadata`` (JSON). Every answer is JSON.

Authenticate before reading: the signature covers the body's declared length and SHA-256, so it is
checked before a byte of the body is read; a request that fails is counted and logged, never written
to the audit trail (auth_failures.py). The body is then read once, exactly its declared length, hashed
as it arrives and its audio encrypted as it is parsed (upload_stream.py); a digest mismatch at its end
refuses the upload and keeps nothing.
"""
import datetime as dt
import json
import time

import sqlalchemy as sa
from flask import current_app, jsonify, request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from callrec_plugin import audit
from callrec_plugin.forms import has_control_characters
from callrec_plugin.identity import SYSTEM
from callrec_plugin.ingest import auth_failures, signing
from callrec_plugin.ingest.pipeline import IngestError, ingest_audio
from callrec_plugin.ingest.upload_slots import NoSlot, slots
from callrec_plugin.ingest.upload_stream import (DeclaredBody, EncryptedSpool, MultipartBody, UploadRefused,
                                                 read_text_part)
from callrec_plugin.models import ApiNonce, utcnow
from callrec_plugin.security import is_api_request
from callrec_plugin.state import db_session
from callrec_plugin.views import blueprint

ROUTES = {"callrec.ingest_recording": None}  # signed with the practice's HMAC secret, not a login

MULTIPART_OVERHEAD = 1024 * 1024
MAX_METADATA_BYTES = 256 * 1024
MAX_CALL_ID = 160  # Recording.source_ref: a longer id is refused, never cut (two calls would become one)
RETRY_AFTER_SECONDS = 5


class ApiRefusal(Exception):
    """``authenticated``: the request's signature was checked (its refusal may be audited)."""

    def __init__(self, status, reason, authenticated=False):
        super().__init__(reason)
        self.status, self.reason, self.authenticated = status, reason, authenticated


def _refuse(status, reason, practice_ref=None, authenticated=True):
    """The JSON answer to a refused request. Only a request whose signature was verified is audited:
    one that failed authentication names a practice on its sender's word alone (auth_failures.py)."""
    db_session().rollback()
    if status == 401 or not authenticated:
        auth_failures.note(request.endpoint or request.path, status, reason, practice_ref, request.remote_addr)
        return jsonify(error=reason), status
    audit.record("ingest_api", "denied", actor=SYSTEM, practice_ref=practice_ref, reason=reason[:500],
                 object_type="api", object_id="recordings")
    db_session().commit()
    return jsonify(error=reason), status


def _secret(practice_ref):
    secret = current_app.config["CALLREC_API_SECRETS"].get(practice_ref) if practice_ref else None
    if not secret:
        raise ApiRefusal(401, f"unknown practice {practice_ref!r}: no ingest secret is configured for it")
    return secret


def _authenticated():
    """(practice, declared SHA-256, declared length) of a request whose signature holds; not a byte of
    the body has been read. ApiRefusal otherwise."""
    headers = request.headers
    practice_ref = headers.get(signing.HEADER_PRACTICE, "").strip()[:64] or None
    secret = _secret(practice_ref)
    limit = current_app.config["CALLREC_MAX_AUDIO_BYTES"] + MULTIPART_OVERHEAD
    try:
        timestamp = signing.check_timestamp(headers.get(signing.HEADER_TIMESTAMP), time.time(),
                                            current_app.config["CALLREC_API_MAX_SKEW_SECONDS"])
        nonce = signing.check_nonce(headers.get(signing.HEADER_NONCE))
        claimed = signing.check_digest_header(headers.get(signing.HEADER_CONTENT_SHA256))
        length = signing.check_content_length(headers.get("Content-Length"), limit)
        too_large = None
    except signing.SignatureError as exc:
        raise ApiRefusal(411 if "Content-Length" in exc.reason else 401, exc.reason) from None
    except OverflowError as exc:
        length, too_large = int(headers["Content-Length"].strip()), str(exc)
    path = request.script_root + request.path
    if not signing.verify(secret, request.method, path, timestamp, nonce, claimed, length,
                          headers.get(signing.HEADER_SIGNATURE, "")):
        raise ApiRefusal(401, "bad signature: check the shared secret and the canonical string")
    if too_large:
        raise ApiRefusal(413, too_large, authenticated=True)
    _remember_nonce(practice_ref, nonce)
    if request.mimetype != "multipart/form-data" or not request.mimetype_params.get("boundary"):
        raise ApiRefusal(415, "send multipart/form-data with parts 'audio' and 'metadata'", authenticated=True)
    return practice_ref, claimed, length


def _remember_nonce(practice_ref, nonce):
    session = db_session()
    window = dt.timedelta(seconds=2 * current_app.config["CALLREC_API_MAX_SKEW_SECONDS"])
    session.execute(sa.delete(ApiNonce).where(ApiNonce.seen_at < utcnow() - window))
    try:
        session.add(ApiNonce(practice_ref=practice_ref, nonce=nonce, seen_at=utcnow()))
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
        raise ApiRefusal(409, "this nonce was used before: the request is a replay", authenticated=True) from None


def _read_upload(claimed, length):
    """(metadata text, EncryptedSpool of the audio) of a body whose digest matched its header."""
    request.max_content_length = length  # the host's MAX_CONTENT_LENGTH must not cut a larger upload short
    body = DeclaredBody(request.stream, length)
    metadata = spool = None
    try:
        for name, filename, part in MultipartBody(body, request.mimetype_params["boundary"]).parts():
            if name == "metadata" and metadata is None and filename is None:
                metadata = read_text_part(part, MAX_METADATA_BYTES)
            elif name == "audio" and spool is None:
                spool = EncryptedSpool(part, current_app.config["CALLREC_MAX_AUDIO_BYTES"])
            else:
                raise UploadRefused(400, f"unexpected part {str(name)[:40]!r}: send one file part 'audio' and "
                                         "one text part 'metadata'")
        body.check_digest(claimed)
        if spool is None or metadata is None:
            raise UploadRefused(400, "the request needs a file part 'audio' and a JSON part 'metadata'")
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    return metadata, spool


# Optional metadata a phone system may send, as its CDR has it, with the longest value accepted.
OPTIONAL_TEXTS = {"staff_extension": 128, "staff_name": 128, "disposition": 128, "caller_name": 128,
                  "cdr_userfield": 255, "accountcode": 128, "linkedid": 128}


def _metadata(text):
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApiRefusal(400, f"metadata is not valid JSON: {str(exc)[:200]}", True) from None
    if not isinstance(data, dict):
        raise ApiRefusal(400, "metadata must be a JSON object", True)
    required = ("call_id", "started_at", "direction")
    missing = [name for name in required if data.get(name) in (None, "")]
    if missing:
        raise ApiRefusal(400, f"metadata lacks {', '.join(missing)}", True)
    fields = {name: data.get(name) for name in OPTIONAL_TEXTS}
    for name, value in fields.items():
        if value is not None and (not isinstance(value, str) or len(value) > OPTIONAL_TEXTS[name]):
            raise ApiRefusal(400, f"{name} must be a string of at most {OPTIONAL_TEXTS[name]} characters", True)
    if not isinstance(data["direction"], str):
        raise ApiRefusal(400, "direction must be a string: inbound, outbound or internal", True)
    return dict(started_at=_started_at(data["started_at"]), direction=data["direction"],
                from_number=_text(data, "from"), to_number=_text(data, "to"), source="api",
                source_ref=_call_id(data["call_id"]), silence=data.get("silence"),  # silenced before encryption
                **fields)


def _call_id(value):
    if not isinstance(value, str):
        raise ApiRefusal(400, f"call_id must be a string, not {type(value).__name__}", True)
    if len(value) > MAX_CALL_ID or has_control_characters(value):
        raise ApiRefusal(400, f"call_id must be plain text of at most {MAX_CALL_ID} characters (this one has "
                              f"{len(value)}); it is never shortened, as two calls would then become one", True)
    return value


def _started_at(value):
    """An ISO 8601 date-time with an offset, within the window the practice's phone system can be in."""
    config = current_app.config
    try:
        started_at = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        started_at = None
    if started_at is None:
        raise ApiRefusal(400, "started_at must be an ISO 8601 date-time with a UTC offset", True)
    if started_at.tzinfo is None or started_at.utcoffset() is None:
        raise ApiRefusal(400, "started_at must carry a UTC offset, e.g. 2026-11-30T09:15:00+00:00", True)
    now = utcnow()
    earliest = now - dt.timedelta(days=config["CALLREC_API_STARTED_AT_MAX_AGE_DAYS"])
    latest = now + dt.timedelta(seconds=config["CALLREC_API_STARTED_AT_MAX_AHEAD_SECONDS"])
    try:
        inside = earliest <= started_at <= latest
    except OverflowError:  # year 1 with a positive offset is before datetime.min in UTC
        inside = False
    if not inside:
        raise ApiRefusal(400, f"started_at must be between {earliest:%Y-%m-%d %H:%M} and {latest:%Y-%m-%d %H:%M} "
                              "UTC (CALLREC_API_STARTED_AT_MAX_AGE_DAYS and _MAX_AHEAD_SECONDS); check the phone "
                              "system's clock", True)
    return started_at


def _text(data, name):
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiRefusal(400, f"{name} must be a string (or null for a withheld number)", True)
    return value


def _ingest(practice_ref, claimed, length):
    metadata_text, spool = _read_upload(claimed, length)
    try:
        metadata = _metadata(metadata_text)
        with spool.reader() as audio:
            return ingest_audio(audio, practice_ref=practice_ref, **metadata)
    finally:
        spool.close()


@blueprint.route("/api/recordings", methods=["POST"])
def ingest_recording():
    claimed_practice = request.headers.get(signing.HEADER_PRACTICE, "").strip()[:64] or None
    try:
        practice_ref, claimed, length = _authenticated()
        with slots().taken(practice_ref, current_app.config["CALLREC_API_MAX_CONCURRENT_UPLOADS"]):
            result = _ingest(practice_ref, claimed, length)
    except ApiRefusal as refusal:
        return _refuse(refusal.status, refusal.reason, claimed_practice, refusal.authenticated)
    except UploadRefused as refusal:  # the signature held: only a 401 (digest mismatch) is not audited
        return _refuse(refusal.status, refusal.reason, claimed_practice)
    except IngestError as refusal:
        return _refuse(refusal.status, refusal.reason, claimed_practice)
    except NoSlot as busy:
        response, status = _refuse(429, str(busy), claimed_practice)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response, status
    status = 201 if result.status == "imported" else 200
    return jsonify(id=result.recording_id, status=result.status, reason=result.reason or None), status


@blueprint.before_app_request
def api_routing_errors_in_json():
    """A path under /api/ that matches no route, or a route with another method, is answered in JSON
    like every other API answer (routing fails before any blueprint error handler could apply)."""
    error = request.routing_exception
    if not isinstance(error, (NotFound, MethodNotAllowed)) or not is_api_request(current_app):
        return None
    if isinstance(error, MethodNotAllowed):
        response = jsonify(error=f"{request.method} is not allowed here; use {', '.join(error.valid_methods)}")
        response.headers["Allow"] = ", ".join(error.valid_methods)
        return response, 405
    return jsonify(error="no such API endpoint"), 404
