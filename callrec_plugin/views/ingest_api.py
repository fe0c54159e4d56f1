"""POST /callrec/api/recordings: a phone system uploads a call, signed with its practice's secret.

Multipart body: ``audio`` (the recording) and ``metadata`` (JSON). Every answer is JSON. The upload
is parsed in memory as it arrives (bounded by CALLREC_MAX_AUDIO_BYTES), hashed on the way, so no
plaintext audio is spooled to disk and the audio is held once.
"""
import datetime as dt
import hashlib
import io
import json
import time

import sqlalchemy as sa
from flask import current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from callrec_plugin import audit
from callrec_plugin.state import db_session
from callrec_plugin.identity import SYSTEM
from callrec_plugin.ingest import signing
from callrec_plugin.ingest.pipeline import IngestError, ingest_audio
from callrec_plugin.models import ApiNonce, utcnow
from callrec_plugin.views import blueprint

ROUTES = {"callrec.ingest_recording": None}  # signed with the practice's HMAC secret, not a login

MULTIPART_OVERHEAD = 1024 * 1024
# The JSON part: the parser holds a text part whole, so it is kept small. Werkzeug applies the same
# limit to its read buffer (64 KiB chunks), so it must stay well above that.
MAX_METADATA_BYTES = 256 * 1024
CHUNK = 64 * 1024


class ApiRefusal(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _refuse(status, reason, practice_ref=None):
    audit.record("ingest_api", "denied", actor=SYSTEM, practice_ref=practice_ref, reason=reason,
                 object_type="api", object_id="recordings")
    db_session().commit()
    return jsonify(error=reason), status


def _secret(practice_ref):
    secret = current_app.config["CALLREC_API_SECRETS"].get(practice_ref) if practice_ref else None
    if not secret:
        raise ApiRefusal(401, f"unknown practice {practice_ref!r}: no ingest secret is configured for it")
    return secret


class _HashingReader:
    """Reads the request body for the multipart parser and hashes every byte on the way."""

    def __init__(self, stream):
        self._stream, self._sha256 = stream, hashlib.sha256()

    def read(self, size=-1):
        data = self._stream.read(size)
        self._sha256.update(data)
        return data

    def readline(self, size=-1):
        data = self._stream.readline(size)
        self._sha256.update(data)
        return data

    def hexdigest_of_all(self):
        while self.read(CHUNK):  # the parser may stop early (a body that is not multipart)
            pass
        return self._sha256.hexdigest()


def _signed_parts(practice_ref):
    """The parsed form and files of a correctly signed request, else an ApiRefusal.

    The body is hashed while it is parsed, so the audio is held in memory once (never on disk) and
    nothing is stored before the digest and the signature are checked."""
    secret = _secret(practice_ref)
    headers = request.headers
    try:
        timestamp = signing.check_timestamp(headers.get(signing.HEADER_TIMESTAMP), time.time(),
                                            current_app.config["CALLREC_API_MAX_SKEW_SECONDS"])
        nonce = signing.check_nonce(headers.get(signing.HEADER_NONCE))
        claimed = signing.check_digest_header(headers.get(signing.HEADER_CONTENT_SHA256))
    except signing.SignatureError as exc:
        raise ApiRefusal(401, str(exc)) from None
    if request.mimetype != "multipart/form-data":  # known from the header: nothing is read
        raise ApiRefusal(415, "send multipart/form-data with parts 'audio' and 'metadata'")
    form, files, actual = _parse_hashing()
    try:
        digest = signing.check_digest_matches(claimed, actual)
    except signing.SignatureError as exc:
        raise ApiRefusal(401, str(exc)) from None
    path = request.script_root + request.path
    if not signing.verify(secret, request.method, path, timestamp, nonce, digest,
                          headers.get(signing.HEADER_SIGNATURE, "")):
        raise ApiRefusal(401, "bad signature: check the shared secret and the canonical string")
    _remember_nonce(practice_ref, nonce)
    return form, files


def _parse_hashing():
    limit = current_app.config["CALLREC_MAX_AUDIO_BYTES"] + MULTIPART_OVERHEAD
    request.max_content_length = limit  # before the body is touched (PITFALLS: set it before parsing)

    def in_memory(total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()

    try:
        body = _HashingReader(request.stream)
        parser = FormDataParser(stream_factory=in_memory, max_content_length=limit,
                                max_form_memory_size=MAX_METADATA_BYTES)
        _, form, files = parser.parse(body, request.mimetype, request.content_length, request.mimetype_params)
        return form, files, body.hexdigest_of_all()
    except RequestEntityTooLarge:
        raise ApiRefusal(413, "the upload is larger than the configured maximum audio size, or its metadata "
                              f"part is over {MAX_METADATA_BYTES // 1024} KiB") from None
    except ValueError as exc:
        raise ApiRefusal(400, f"the multipart body could not be read: {exc}") from None


def _remember_nonce(practice_ref, nonce):
    session = db_session()
    window = dt.timedelta(seconds=2 * current_app.config["CALLREC_API_MAX_SKEW_SECONDS"])
    session.execute(sa.delete(ApiNonce).where(ApiNonce.seen_at < utcnow() - window))
    try:
        session.add(ApiNonce(practice_ref=practice_ref, nonce=nonce, seen_at=utcnow()))
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
        raise ApiRefusal(409, "this nonce was used before: the request is a replay") from None


def _audio_and_metadata(form, files):
    if "audio" not in files or "metadata" not in form:
        raise ApiRefusal(400, "the request needs a file part 'audio' and a JSON part 'metadata'")
    return files["audio"].stream, form["metadata"]


def _metadata(text):
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ApiRefusal(400, f"metadata is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiRefusal(400, "metadata must be a JSON object")
    required = ("call_id", "started_at", "direction")
    missing = [name for name in required if not data.get(name)]
    if missing:
        raise ApiRefusal(400, f"metadata lacks {', '.join(missing)}")
    try:
        started_at = dt.datetime.fromisoformat(str(data["started_at"]))
    except ValueError:
        raise ApiRefusal(400, "started_at must be an ISO 8601 date-time with a UTC offset") from None
    if started_at.tzinfo is None:
        raise ApiRefusal(400, "started_at must carry a UTC offset, e.g. 2026-11-30T09:15:00+00:00")
    fields = {"staff_extension": data.get("staff_extension"), "staff_name": data.get("staff_name"),
              "disposition": data.get("disposition")}
    if any(value is not None and (not isinstance(value, str) or len(value) > 128) for value in fields.values()):
        raise ApiRefusal(400, "staff_extension, staff_name and disposition must be short strings")
    return dict(started_at=started_at, direction=data["direction"], from_number=_text(data, "from"),
                to_number=_text(data, "to"), source="api", source_ref=str(data["call_id"])[:160], **fields)


def _text(data, name):
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiRefusal(400, f"{name} must be a string (or null for a withheld number)")
    return value


@blueprint.route("/api/recordings", methods=["POST"])
def ingest_recording():
    practice_ref = request.headers.get(signing.HEADER_PRACTICE, "").strip()[:64] or None
    try:
        audio, metadata = _audio_and_metadata(*_signed_parts(practice_ref))
        result = ingest_audio(audio, practice_ref=practice_ref, **_metadata(metadata))
    except ApiRefusal as refusal:
        return _refuse(refusal.status, refusal.reason, practice_ref)
    except IngestError as refusal:
        return _refuse(refusal.status, refusal.reason, practice_ref)
    status = 201 if result.status == "imported" else 200
    return jsonify(id=result.recording_id, status=result.status, reason=result.reason or None), status
