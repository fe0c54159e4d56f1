"""Access grants and the audio stream: decrypted segment by segment, never a file on disk."""
import datetime as dt
import os

from flask import current_app, request
from werkzeug.wrappers import Response

from callrec_plugin.state import db_session, get_state
from callrec_plugin.models import AccessGrant, utcnow


def issue_grant(actor, recording, action, purpose, complaint_ref, justification, audit_seq):
    minutes = current_app.config["CALLREC_GRANT_MINUTES"]
    grant = AccessGrant(
        recording_id=recording.id,
        practice_ref=recording.practice_ref,
        user_ref=actor.ref,
        action=action,
        purpose=purpose,
        complaint_ref=complaint_ref or None,
        justification=justification or None,
        expires_at=utcnow() + dt.timedelta(minutes=minutes),
        audit_seq=audit_seq,
    )
    db_session().add(grant)
    return grant


# Whether a grant still holds is decided on every audio request: see grants.py.


def storage_backend(app=None):
    app = app or current_app._get_current_object()
    return get_state(app).pm.hook.callrec_storage_backend(app=app)


def stored_size(backend, blob, key):
    """The blob's size: from the open blob when it knows it (an object store's GET that opened it
    said so), so a Range request does not pay a second round trip for it."""
    size = getattr(blob, "stored_size", None)
    return backend.size(key) if size is None else size


def keyring(app=None):
    """The key ring from config, read again only when the key file or the environment changes."""
    from callrec_plugin.keyring import KeyRing

    app = app or current_app._get_current_object()
    path, env_name = app.config["CALLREC_KEY_FILE"], app.config["CALLREC_KEYS_ENV"]
    try:
        stat = os.stat(path) if path else None
    except OSError:
        stat = None
    version = (path, stat and (stat.st_mtime_ns, stat.st_size, stat.st_ino), env_name, os.environ.get(env_name or ""))
    cache = get_state(app).cache
    if cache.get("keyring_version") != version:
        cache["keyring"], cache["keyring_version"] = KeyRing.from_config(app.config), version
    return cache["keyring"]


def open_plaintext(recording, app=None):
    """A seekable DecryptingReader over the recording's audio (caller closes it): ``recording`` is a Recording
    or any snapshot with its id, wrapped_key, key_id and storage_key (exports.Call)."""
    from callrec_plugin.crypto import DecryptingReader

    backend = storage_backend(app)
    data_key = keyring(app).unwrap(recording.wrapped_key, recording.key_id, recording.id)
    blob = backend.open_read(recording.storage_key)
    try:
        return DecryptingReader(blob, data_key, recording.id, stored_size(backend, blob, recording.storage_key))
    except BaseException:
        blob.close()
        raise


def audio_response(recording, as_attachment=False, actor=None, action=None):
    """Stream the audio with Range support; only the segments a Range touches are decrypted."""
    reader = open_plaintext(recording)
    try:
        length = reader.length  # verifies the final segment before the length is trusted
    except Exception:
        reader.close()
        raise
    # The reader iterates in whole segments and seeks without decrypting what a Range skips.
    response = Response(
        reader,
        mimetype=recording.mime_type or "application/octet-stream",
        direct_passthrough=True,
    )
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    disposition = "attachment" if as_attachment else "inline"
    extension = recording.audio_format or "bin"
    response.headers["Content-Disposition"] = f'{disposition}; filename="call-{recording.id}.{extension}"'
    response = served_from(response, reader, length, _validator(recording, length))
    if actor is not None:  # set once the first segment served is known good (an error page is still possible)
        reader.on_tamper = audit_tampering_while_streaming(
            actor, action, recording_id=recording.id, practice_ref=recording.practice_ref,
            patient_ref=recording.patient_ref, object_type="recording", object_id=recording.id)
    return response


def _validator(recording, length):
    # A blob is written once, but a redaction replaces the recording's blob with one of the same length
    # (silence instead of card details): the blob's name is part of the validator, so an If-Range that
    # names the old audio gets the whole new file, never old and new bytes spliced together.
    return f"{recording.id}-{length}-{(recording.storage_key or '').rsplit('/', 1)[-1].split('.')[0]}"


def audit_tampering_while_streaming(actor, action, **about):
    """A callback for a reader whose response has started: the page can no longer say what happened
    (the connection is cut), so the failure goes to the log and, in a transaction of its own, to the
    audit trail, under the request's id. ``about`` names the object as for ``audit.record``."""
    from callrec_plugin import audit

    app = current_app._get_current_object()
    about.update(ip=request.remote_addr, request_ref=audit.request_id())

    def record(error):
        app.logger.error("callrec %s of %s stopped mid-stream: %s", action, about.get("object_id"), error)
        with app.app_context():
            audit.record(action, "failed", actor=actor, **about,
                         reason=f"the encrypted file failed its integrity check while streaming: {error}"[:500])
            get_state(app).session.commit()

    return record


def served_from(response, reader, length, etag):
    """``response`` (whose body is the seekable ``reader``) made conditional as RFC 9110 says: Range
    and If-Range with a strong comparison, the ETag, one Date header; and the first segment it will
    send decrypted and authenticated now, while an error page can still be answered (a
    TamperedError here is the caller's to turn into one). Later segments are checked as they stream:
    a damaged one cuts the connection (``reader.on_tamper`` reports it), never sends wrong bytes."""
    response.content_length = length
    response.set_etag(etag)
    environ = _range_as_rfc_9110_says(request.environ, length, f'"{etag}"')
    try:
        response.make_conditional(environ, accept_ranges=True, complete_length=length)
        # make_conditional adds a Date; every WSGI server (gunicorn, Werkzeug's) adds its own: keep one.
        del response.headers["Date"]
        start = response.content_range.start if response.status_code == 206 else 0
        if response.status_code in (200, 206) and length:
            next(reader.read_range(start, start + 1), None)  # cached: the iteration reuses it
    except BaseException:
        reader.close()
        raise
    return response


def _range_as_rfc_9110_says(environ, length, strong_etag):
    """Where Werkzeug and RFC 9110 differ: a Range in a unit other than bytes is ignored (§14.2: the whole
    file), a suffix longer than the file means the whole file (§14.1.2), and If-Range matches only the
    current strong ETag, compared strongly (§13.1.5: a weak ETag or a date, since no Last-Modified is
    sent, never matches), where Werkzeug drops the weakness and compares dates."""
    header = environ.get("HTTP_RANGE", "")
    if_range = environ.get("HTTP_IF_RANGE")
    if header and if_range is not None and if_range.strip() != strong_etag:
        return {key: value for key, value in environ.items() if key not in ("HTTP_RANGE", "HTTP_IF_RANGE")}
    unit = header.split("=", 1)[0].strip().lower()
    if header and "=" in header and unit != "bytes":
        return {key: value for key, value in environ.items() if key != "HTTP_RANGE"}
    if header.startswith("bytes=-") and header[7:].isdigit() and length > 0 and int(header[7:]) > length:
        environ = {**environ, "HTTP_RANGE": "bytes=0-"}
    return environ
