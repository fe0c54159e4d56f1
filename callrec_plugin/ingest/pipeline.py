"""The one ingest pipeline behind the FreePBX import, the signed HTTP API and the Python API.

Audio is recognised by its content, encrypted while it is read (no plaintext ever touches the disk),
stored under a server-generated name, and only then recorded in the database. A blob whose row never
committed is an orphan the purge sweeper removes; a row never points at a blob that was not written.
"""
import datetime as dt
import io
import os
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from callrec_plugin import audit, redaction, silencing
from callrec_plugin.crypto import TooLargeError, encrypt_stream, generate_data_key
from callrec_plugin.defaults.objections import patient_has_objected
from callrec_plugin.state import db_session, get_state
from callrec_plugin.forms import has_control_characters
from callrec_plugin.identity import SYSTEM
from callrec_plugin.ingest.audio import HEAD_BYTES, UnsupportedAudio, probe
from callrec_plugin.ingest.numbers import WITHHELD, InvalidNumber, is_extension, is_service, normalise
from callrec_plugin.models import Recording, new_id
from callrec_plugin.playback import keyring, storage_backend
from callrec_plugin.practices import UnknownPractice, check_practice
from callrec_plugin.purged_sources import purged_before
from callrec_plugin.staff_mapping import staff_for
from callrec_plugin.retention import retain_until_for

DIRECTIONS = ("inbound", "outbound", "internal")
TAIL_BYTES = 65536


class IngestError(ValueError):
    """The recording was refused; ``reason`` says why in words a person can act on."""

    def __init__(self, reason, status=422):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class IngestResult:
    status: str  # "imported", "duplicate" or "skipped"
    recording_id: str | None = None
    reason: str = ""


def _number(raw, field, dialled=False):
    region = current_app.config["CALLREC_PHONE_REGION"]
    try:
        return normalise(raw, region, dialled=dialled)
    except InvalidNumber as exc:
        raise IngestError(f"{field}: {exc.reason}") from None


def _size_and_tail(fileobj):
    """Total size and last bytes of a seekable file, leaving it at the start."""
    if not fileobj.seekable():
        raise IngestError("the audio stream must be seekable (a file or an in-memory upload)")
    start = fileobj.tell()
    size = fileobj.seek(0, os.SEEK_END) - start
    fileobj.seek(max(start, start + size - TAIL_BYTES))
    tail = fileobj.read(TAIL_BYTES)
    fileobj.seek(start)
    return size, tail


def recognise(fileobj):
    """The AudioInfo of a seekable file, checked by content and size; IngestError otherwise."""
    size, tail = _size_and_tail(fileobj)
    limit = current_app.config["CALLREC_MAX_AUDIO_BYTES"]
    if size > limit:
        raise IngestError(f"the audio is {size} bytes, more than the limit of {limit} bytes", status=413)
    start = fileobj.tell()
    head = fileobj.read(HEAD_BYTES)
    fileobj.seek(start)
    try:
        return probe(head, size, tail)
    except UnsupportedAudio as exc:
        raise IngestError(exc.reason, status=415) from None


def _validate_texts(**texts):
    for name, value in texts.items():
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > 160 or has_control_characters(value):
            raise IngestError(f"{name} must be plain text of at most 160 characters")


def _validate(practice_ref, started_at, direction, source, source_ref):
    if not practice_ref or not isinstance(practice_ref, str) or len(practice_ref) > 64:
        raise IngestError("practice_ref must be a non-empty string of at most 64 characters")
    if not isinstance(started_at, dt.datetime) or started_at.tzinfo is None:
        raise IngestError("started_at must be a timezone-aware datetime")
    if direction not in DIRECTIONS:
        raise IngestError(f"direction must be one of {', '.join(DIRECTIONS)}")
    if not source or not source_ref or len(source) > 16 or len(str(source_ref)) > 160:
        raise IngestError("source (at most 16 characters) and source_ref (at most 160) are required")


def _existing(practice_ref, source, source_ref):
    return db_session().scalar(
        sa.select(Recording.id).where(
            Recording.practice_ref == practice_ref, Recording.source == source, Recording.source_ref == source_ref
        )
    )


def ingest_audio(fileobj, *, practice_ref, started_at, direction, from_number, to_number, source, source_ref,
                 staff_extension=None, staff_user_ref=None, staff_name=None, disposition=None,
                 caller_name=None, cdr_userfield=None, accountcode=None, linkedid=None, silence=None):
    """Store one call recording for integrators: recognise, encrypt, store, link to the patient, commit.

    ``silence``: ``[[start_seconds, end_seconds], ...]`` from the call's start, when recording was
    paused (a card payment): that audio is replaced by silence before it is encrypted.

    Returns IngestResult; raises IngestError (with .reason and an HTTP-like .status) for a refusal.
    Importing the same (practice_ref, source, source_ref) again returns status "duplicate".
    """
    _validate(practice_ref, started_at, direction, source, source_ref)
    try:
        check_practice(practice_ref)
    except UnknownPractice as exc:
        raise IngestError(exc.reason) from None
    source_ref = str(source_ref)
    _validate_texts(practice_ref=practice_ref, source=source, source_ref=source_ref, staff_extension=staff_extension,
                    staff_user_ref=staff_user_ref, staff_name=staff_name, disposition=disposition,
                    caller_name=caller_name, accountcode=accountcode, linkedid=linkedid)
    if cdr_userfield is not None and (not isinstance(cdr_userfield, str) or len(cdr_userfield) > 255
                                      or has_control_characters(cdr_userfield)):
        raise IngestError("cdr_userfield must be plain text of at most 255 characters")
    if (existing := _existing(practice_ref, source, source_ref)) is not None:
        return IngestResult("duplicate", existing, "already imported")
    if (gone := purged_before(practice_ref, source, source_ref)) is not None:
        return IngestResult("skipped", None, f"this call was stored before and deleted on "
                                             f"{gone.purged_at:%d %b %Y} ({gone.reason}); it is not stored again: "
                                             "delete the phone system's copy")
    info = recognise(fileobj)
    silence_plan, silence = _silence_plan(fileobj, silence)
    short = info.duration_seconds < current_app.config["CALLREC_MIN_DURATION_SECONDS"]
    if short and current_app.config["CALLREC_SHORT_CALLS"] == "drop":
        return IngestResult("skipped", None, f"call shorter than the minimum ({info.duration_seconds:.1f} s)")
    caller = _number(from_number, "from_number")
    callee = _number(to_number, "to_number", dialled=direction == "outbound")  # 999 dialled is not an extension
    if staff_extension and not staff_user_ref and (member := staff_for(staff_extension, practice_ref, started_at)):
        staff_user_ref, staff_name = member.ref, staff_name or member.name  # the PBX's own label kept if sent
    external = callee if direction == "outbound" else caller
    recording = Recording(
        id=new_id(), practice_ref=practice_ref, direction=direction, started_at=started_at,
        duration_seconds=round(info.duration_seconds, 3), from_number=caller, to_number=callee,
        external_number=None if is_extension(external) else external,
        staff_extension=staff_extension, staff_user_ref=staff_user_ref, staff_name=staff_name,
        caller_name=caller_name or None, cdr_userfield=cdr_userfield or None, accountcode=accountcode or None,
        linkedid=linkedid or None, disposition=disposition, short_call=short, retain_until=retain_until_for(started_at, practice_ref),
        audio_format=info.format, mime_type=info.mime_type, source=source, source_ref=source_ref,
    )
    _link_patient(recording)
    _encrypt_into_storage(recording, silencing.silenced(fileobj, silence_plan))  # card details never stored
    redaction.note_ingest_silence(recording, silence_plan, silence)
    return _commit(recording)


def _silence_plan(fileobj, raw):
    """(the silencing plan or None, the exact intervals): refuses what cannot be silenced exactly."""
    try:
        intervals = silencing.parse_intervals(raw)
        return (silencing.plan(fileobj, intervals) if intervals else None), intervals
    except ValueError as exc:
        raise IngestError(f"silence: {exc}") from None
    except silencing.SilencingRefused as refusal:
        raise IngestError(f"silence: {refusal.reason}") from None


def _link_patient(recording):
    if not recording.external_number or recording.external_number == WITHHELD or is_service(recording.external_number):
        return
    hook = get_state().pm.hook
    patient_ref = hook.callrec_resolve_patient(
        phone_e164=recording.external_number, practice_ref=recording.practice_ref, started_at=recording.started_at
    )
    if patient_ref is not None:
        recording.patient_ref = str(patient_ref)
        recording.recorded_despite_objection = patient_has_objected(recording.practice_ref, recording.patient_ref)


def _encrypt_into_storage(recording, fileobj):
    backend = storage_backend()
    data_key = generate_data_key()
    recording.key_id, recording.wrapped_key = keyring().wrap(data_key, recording.id)
    recording.storage_key = backend.new_key(recording.id)
    limit = current_app.config["CALLREC_MAX_AUDIO_BYTES"]
    try:
        with backend.open_write(recording.storage_key) as blob:
            result = encrypt_stream(fileobj, blob, data_key, recording.id, max_bytes=limit, hash_plaintext=False)
    except TooLargeError:
        raise IngestError(f"the audio is more than the limit of {limit} bytes", status=413) from None
    recording.plaintext_size, recording.stored_size = result.plaintext_size, result.stored_size


def _commit(recording):
    session = db_session()
    try:
        session.add(recording)
        session.flush()
        audit.record("ingest", "done", actor=SYSTEM, recording=recording,
                     reason=f"{recording.source} {recording.audio_format}, {recording.plaintext_size} bytes")
        session.commit()
    except sa.exc.IntegrityError:
        # Another import of the same call won the race: keep theirs, drop our blob.
        session.rollback()
        storage_backend().delete(recording.storage_key)
        existing = _existing(recording.practice_ref, recording.source, recording.source_ref)
        return IngestResult("duplicate", existing, "already imported")
    except BaseException:
        session.rollback()
        storage_backend().delete(recording.storage_key)
        raise
    get_state().pm.hook.callrec_recording_ingested(recording_id=recording.id, practice_ref=recording.practice_ref)
    return IngestResult("imported", recording.id, "")


def ingest_bytes(data, **metadata):
    """ingest_audio for audio already in memory (the HTTP API's upload)."""
    return ingest_audio(io.BytesIO(data), **metadata)
