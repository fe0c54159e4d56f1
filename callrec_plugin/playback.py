"""Access grants and the audio stream: decrypted segment by segment, never a file on disk."""
import datetime as dt
import os

import sqlalchemy as sa
from flask import current_app, request
from werkzeug.wrappers import Response

from callrec_plugin.state import db_session, get_state
from callrec_plugin.models import AccessGrant, Recording, utcnow


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


def _grant_conditions(actor, recording_id, action):
    return (
        AccessGrant.recording_id == recording_id,
        AccessGrant.practice_ref == actor.practice_ref,
        AccessGrant.user_ref == actor.ref,
        AccessGrant.action == action,
        AccessGrant.expires_at > utcnow(),
    )


def valid_grant(actor, recording, action):
    """The newest unexpired grant of this user for this recording and action, or None."""
    return db_session().scalar(
        sa.select(AccessGrant).where(*_grant_conditions(actor, recording.id, action))
        .order_by(AccessGrant.expires_at.desc()).limit(1)
    )


# Built once: the audio endpoint answers every Range request a player makes, and composing a
# statement costs more than running it. Scoped to the practice like every recordings query.
_RECORDING_WITH_GRANT = sa.select(
    Recording,
    sa.exists().where(
        AccessGrant.recording_id == Recording.id,
        AccessGrant.practice_ref == Recording.practice_ref,
        AccessGrant.user_ref == sa.bindparam("user_ref"),
        AccessGrant.action == sa.bindparam("action"),
        AccessGrant.expires_at > sa.bindparam("now"),
    ),
).where(Recording.id == sa.bindparam("recording_id"), Recording.practice_ref == sa.bindparam("practice_ref"))


def recording_with_grant(actor, recording_id, action):
    """(the recording in the actor's practice or None, whether a valid grant exists), in one query."""
    if actor.practice_ref is None:
        return None, False
    row = db_session().execute(_RECORDING_WITH_GRANT, {
        "recording_id": recording_id, "practice_ref": actor.practice_ref, "user_ref": actor.ref,
        "action": action, "now": utcnow(),
    }).first()
    return (None, False) if row is None else (row[0], bool(row[1]))


def storage_backend(app=None):
    app = app or current_app._get_current_object()
    return get_state(app).pm.hook.callrec_storage_backend(app=app)


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
    """A seekable DecryptingReader over the recording's audio (caller closes it)."""
    from callrec_plugin.crypto import DecryptingReader

    backend = storage_backend(app)
    data_key = keyring(app).unwrap(recording.wrapped_key, recording.key_id, recording.id)
    blob = backend.open_read(recording.storage_key)
    try:
        return DecryptingReader(blob, data_key, recording.id, backend.size(recording.storage_key))
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
    if actor is not None:
        reader.on_tamper = audit_tampering_while_streaming(
            actor, action, recording_id=recording.id, practice_ref=recording.practice_ref,
            patient_ref=recording.patient_ref, object_type="recording", object_id=recording.id)
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
    response.content_length = length
    # A recording's audio never changes (it is written once), so its id and length are a strong
    # validator: a resumed download or seek with If-Range gets its range, not the whole file again.
    response.set_etag(f"{recording.id}-{length}")
    return response.make_conditional(_range_as_rfc_9110_says(request.environ, length),
                                     accept_ranges=True, complete_length=length)


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


def _range_as_rfc_9110_says(environ, length):
    """Two cases where Werkzeug answers 416 but RFC 9110 says otherwise: a Range in a unit other than
    bytes is ignored (§14.2: the whole file), and a suffix longer than the file means the whole file
    (§14.1.2)."""
    header = environ.get("HTTP_RANGE", "")
    unit = header.split("=", 1)[0].strip().lower()
    if header and "=" in header and unit != "bytes":
        return {key: value for key, value in environ.items() if key != "HTTP_RANGE"}
    if header.startswith("bytes=-") and header[7:].isdigit() and length > 0 and int(header[7:]) > length:
        environ = {**environ, "HTTP_RANGE": "bytes=0-"}
    return environ
