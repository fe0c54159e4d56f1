"""Redaction: ranges of a stored recording replaced by silence, crypto-shredding the original.

A redaction writes a new CRE1 blob (the old audio decrypted, silenced by ``silencing``, encrypted
again under a NEW random data key), points the recording at it, destroys the old wrapped data key
and deletes the old blob; the same crypto-shredding as purge, crash-safe in the same way:

1. intent: a ``callrec_redactions`` row "pending" naming the old and the new blob, committed;
2. the new blob written (atomically published by the storage backend);
3. ONE transaction: the recording's storage key, wrapped key and key id replaced, but only if it
   still points at the old blob and is active (a purge or another redaction won otherwise); the row
   "shredding"; the audit event; commit. The old wrapped key exists nowhere after this commit;
4. the old blob deleted;
5. the row "done", committed.

A kill before 3 leaves the old recording readable and perhaps a new blob no row points at; a kill
after 3 leaves the new one readable and perhaps the old blob. ``finish_interrupted`` (run by the
reconciler and before any redaction of the same call) redoes a pending redaction from its intent
(the person's decision stands: the card details must go) or finishes the shredding, so in the end
there is exactly one blob, the silenced one, and no orphan. A recording purged meanwhile leaves the
row "abandoned" and its new blob deleted.

The kill points (``CALLREC_TEST_KILL_AT``, as for purge) are listed in KILL_POINTS.
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from fractions import Fraction

import sqlalchemy as sa

from callrec_plugin import audit, silencing
from callrec_plugin.crypto import encrypt_stream, generate_data_key
from callrec_plugin.identity import SYSTEM, Actor
from callrec_plugin.kill_points import kill_point
from callrec_plugin.models import Recording, RecordingStatus, Redaction, utcnow
from callrec_plugin.playback import keyring, open_plaintext, storage_backend
from callrec_plugin.state import db_session

log = logging.getLogger(__name__)

PENDING, SHREDDING, DONE, ABANDONED = "pending", "shredding", "done", "abandoned"
SOURCE_PBX, SOURCE_STAFF = "pbx", "staff"

# The lawful reasons owner and manager choose from (PCI DSS: no card security code after
# authorisation, in any form; UK GDPR data minimisation for the rest).
REASONS = {
    "card_details": "Card details (number, expiry date or security code)",
    "bank_details": "Bank account details",
    "third_party": "Another person's personal data, not needed for any purpose of the policy",
    "special_category": "Health or other special category data given in error, not needed for the call",
}
PBX_PAUSE = "pbx_pause"
REASON_LABELS = {**REASONS, PBX_PAUSE: "Paused by the phone system (card payment)"}
# A flagged call stops being listed once one of these silenced part of it.
CARD_REASONS = ("card_details", PBX_PAUSE)

KILL_POINTS = ("redact_after_intent", "redact_mid_write", "redact_after_write", "redact_after_key_swapped",
               "redact_before_commit", "redact_after_commit", "redact_after_delete", "redact_done")


class RedactionRefused(Exception):
    """The redaction cannot be done; ``reason`` says why in words a person can act on."""

    def __init__(self, reason, status=409):
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class Segment:
    """A silenced range as the player's timeline draws it (percentages of the call)."""

    start: float
    end: float
    left: float
    width: float


def intervals_json(pairs):
    """Exact (start, end) seconds as JSON ``[["1/10", "3/10"], ...]``: replaying the intent after a
    crash must silence the very same samples, which floats would not guarantee."""
    return json.dumps([[str(Fraction(start)), str(Fraction(end))] for start, end in pairs])


def intervals_from_json(text):
    return [(Fraction(start), Fraction(end)) for start, end in json.loads(text)]


def ranges_of(redaction):
    return [tuple(pair) for pair in json.loads(redaction.ranges or "[]")]


# -- at ingest ----------------------------------------------------------------------------------------


def note_ingest_silence(recording, plan, requested):
    """Record, with the new recording, what the phone system had silenced before encryption."""
    if plan is None:
        return None
    row = Redaction(recording=recording, practice_ref=recording.practice_ref, source=SOURCE_PBX,
                    reason=PBX_PAUSE, requested=intervals_json(requested), ranges=json.dumps(plan.seconds),
                    status=DONE, actor_ref=SYSTEM.ref, actor_name=f"phone system ({recording.source})",
                    done_at=utcnow())
    db_session().add(row)
    return row


# -- after the fact --------------------------------------------------------------------------------------


def _active_recording(recording_id, practice_ref):
    return db_session().scalar(sa.select(Recording).where(
        Recording.id == recording_id, Recording.practice_ref == practice_ref,
        Recording.status == RecordingStatus.ACTIVE))


def plan_for(recording, intervals):
    """The silencing plan of the recording's stored audio (SilencingRefused for MP3 and Ogg)."""
    if recording.audio_format in silencing.REFUSALS:  # known without decrypting anything
        raise silencing.SilencingRefused(silencing.REFUSALS[recording.audio_format])
    with open_plaintext(recording) as reader:
        return silencing.plan(reader, intervals)


def redact(recording_id, practice_ref, intervals, *, actor, reason, source=SOURCE_STAFF):
    """Silence ``intervals`` (exact (start, end) seconds) of one active recording of the practice.

    Returns the finished Redaction row. RedactionRefused for a recording that is gone, a format that
    cannot be silenced exactly, or ranges that miss the audio altogether."""
    if reason not in REASON_LABELS:
        raise RedactionRefused(f"{reason!r} is not one of the reasons for a redaction", status=400)
    finish_interrupted(recording_id=recording_id)
    session = db_session()
    recording = _active_recording(recording_id, practice_ref)
    if recording is None:
        raise RedactionRefused("the recording is not available (purged, or not in this practice)", status=404)
    try:
        plan = plan_for(recording, intervals)
    except silencing.SilencingRefused as refusal:
        raise RedactionRefused(refusal.reason, status=422) from None
    if not plan.ranges:
        raise RedactionRefused(f"the range is outside the recording, which lasts "
                               f"{float(plan.layout.duration):.2f} seconds", status=422)
    row = Redaction(recording_id=recording.id, practice_ref=recording.practice_ref, source=source, reason=reason,
                    requested=intervals_json(intervals), ranges=json.dumps(plan.seconds), status=PENDING,
                    old_storage_key=recording.storage_key,
                    new_storage_key=storage_backend().new_key(f"{recording.id}_{secrets.token_hex(5)}"),
                    actor_ref=actor.ref, actor_name=actor.name)
    session.add(row)
    session.commit()
    kill_point("redact_after_intent")
    _rewrite(row.id)
    session.expire_all()
    return session.get(Redaction, row.id)


class _KillableReader:
    """Passes reads through; a test's kill point between two batches of the new blob's write."""

    def __init__(self, source):
        self._source, self._reads = source, 0

    def readinto(self, buffer):
        if self._reads:
            kill_point("redact_mid_write")
        self._reads += 1
        return self._source.readinto(buffer)


def _rewrite(redaction_id, attempts=3):
    """Steps 2-5 for a pending row: write the silenced blob under a new key, swap, shred."""
    session = db_session()
    row = session.get(Redaction, redaction_id)
    recording = session.get(Recording, row.recording_id)
    if recording is None or recording.status != RecordingStatus.ACTIVE:
        return _abandon(row, "the recording was purged before the redaction was applied")
    backend = storage_backend()
    if recording.storage_key != row.old_storage_key:
        # Another redaction of this call finished first: silence its result too, so both apply.
        backend.delete(row.new_storage_key)
        row.old_storage_key = recording.storage_key
        session.commit()
    data_key = generate_data_key()
    key_id, wrapped = keyring().wrap(data_key, recording.id)
    intervals = intervals_from_json(row.requested)
    with open_plaintext(recording) as reader:
        plan = silencing.plan(reader, intervals)
        reader.seek(0)
        with backend.open_write(row.new_storage_key) as blob:
            result = encrypt_stream(_KillableReader(silencing.silenced(reader, plan)), blob, data_key, recording.id,
                                    hash_plaintext=False)
    kill_point("redact_after_write")
    swapped = session.execute(
        sa.update(Recording)
        .where(Recording.id == recording.id, Recording.storage_key == row.old_storage_key,
               Recording.status == RecordingStatus.ACTIVE)
        .values(storage_key=row.new_storage_key, wrapped_key=wrapped, key_id=key_id,
                plaintext_size=result.plaintext_size, stored_size=result.stored_size)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not swapped:  # purged, or another redaction swapped first, while this one was written
        session.rollback()
        if attempts > 1:
            return _rewrite(redaction_id, attempts - 1)
        return _abandon(session.get(Redaction, redaction_id), "the recording kept changing while it was redacted")
    kill_point("redact_after_key_swapped")
    row.status = SHREDDING
    audit.record("redact", "done", actor=_actor_of(row), recording=recording,
                 reason=(f"{REASON_LABELS[row.reason]}: silenced {_describe(ranges_of(row))}; new data key, "
                         "the old data key destroyed and the old encrypted file deleted")[:2000])
    kill_point("redact_before_commit")
    session.commit()
    kill_point("redact_after_commit")
    _shred(row.id)


def _shred(redaction_id):
    session = db_session()
    row = session.get(Redaction, redaction_id)
    storage_backend().delete(row.old_storage_key)  # its key is gone: the file is noise; delete it anyway
    kill_point("redact_after_delete")
    row.status, row.done_at = DONE, utcnow()
    session.commit()
    kill_point("redact_done")


def _abandon(row, why):
    session = db_session()
    storage_backend().delete(row.new_storage_key)
    row.status, row.done_at = ABANDONED, utcnow()
    log.warning("redaction %s of %s abandoned: %s", row.id, row.recording_id, why)
    session.commit()


def _actor_of(row):
    return Actor(user=None, ref=row.actor_ref, name=row.actor_name, roles=frozenset(), practice_ref=row.practice_ref)


def _describe(pairs):
    return ", ".join(f"{clock(start)}–{clock(end)}" for start, end in pairs)


def clock(seconds):
    """12.345 -> '0:12.35' (minutes:seconds), as the page and the notes show a time in a call."""
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:05.2f}"


def finish_interrupted(recording_id=None):
    """Redo pending redactions and finish shredding ones (after a crash). Returns how many."""
    session = db_session()
    query = sa.select(Redaction.id, Redaction.status).where(Redaction.status.in_((PENDING, SHREDDING)))
    if recording_id is not None:
        query = query.where(Redaction.recording_id == recording_id)
    rows = session.execute(query.order_by(Redaction.id)).all()
    session.commit()
    for redaction_id, status in rows:
        if status == SHREDDING:
            _shred(redaction_id)
            continue
        row = session.get(Redaction, redaction_id)
        recording = session.get(Recording, row.recording_id)
        if recording is not None and recording.storage_key == row.new_storage_key:
            row.status = SHREDDING  # not reachable through redact(); a row edited by hand
            session.commit()
            _shred(redaction_id)
            continue
        storage_backend().delete(row.new_storage_key)  # a part-written attempt, if any
        _rewrite(redaction_id)
    return len(rows)


# -- reading them back -----------------------------------------------------------------------------------


def redactions_of(recording_ids):
    """{recording_id: [Redaction, ...]} of applied redactions, oldest first."""
    if not recording_ids:
        return {}
    found = {}
    rows = db_session().scalars(
        sa.select(Redaction).where(Redaction.recording_id.in_(list(recording_ids)),
                                   Redaction.status.in_((SHREDDING, DONE)))
        .order_by(Redaction.created_at, Redaction.id))
    for row in rows:
        found.setdefault(row.recording_id, []).append(row)
    return found


def timeline(recording, redactions):
    """The silenced ranges as Segments of the call's duration (for the player's timeline)."""
    total = float(recording.duration_seconds or 0)
    segments = []
    for row in redactions:
        for start, end in ranges_of(row):
            if total <= 0:
                continue
            left = max(0.0, min(100.0, 100 * start / total))
            width = max(0.5, min(100.0 - left, 100 * (end - start) / total))
            segments.append(Segment(start, end, round(left, 3), round(width, 3)))
    return segments


def notes_for_bundle(recording_ids):
    """{recording_id: [{"silenced": [[start, end], ...], "reason": label, "when": iso, "by": role}]}
    for export manifests: what was silenced and why, never by whom by name."""
    notes = {}
    for recording_id, rows in redactions_of(recording_ids).items():
        notes[recording_id] = [{
            "silenced_seconds": ranges_of(row),
            "reason": REASON_LABELS.get(row.reason, row.reason),
            "when": row.created_at.isoformat(),
            "by": "the phone system" if row.source == SOURCE_PBX else "practice owner or manager",
        } for row in rows]
    return notes


# -- the card-payment flag --------------------------------------------------------------------------------


def flag_card_payment(recording, actor):
    """Staff took a card payment on this call: flag it (once; the first flag stands)."""
    if recording.card_payment_flagged_at is None:
        recording.card_payment_flagged_at = utcnow()
        recording.card_payment_flagged_by_ref = actor.ref
        recording.card_payment_flagged_by_name = actor.name
        return True
    return False


def _card_redacted():
    return sa.exists().where(Redaction.recording_id == Recording.id, Redaction.reason.in_(CARD_REASONS),
                             Redaction.status.in_((SHREDDING, DONE)))


def flagged_unredacted(practice_ref, limit=200):
    """Active recordings of the practice flagged as card payments and not yet redacted, oldest flag first."""
    return db_session().scalars(
        sa.select(Recording).where(Recording.practice_ref == practice_ref,
                                   Recording.status == RecordingStatus.ACTIVE,
                                   Recording.card_payment_flagged_at.is_not(None), ~_card_redacted())
        .order_by(Recording.card_payment_flagged_at, Recording.id).limit(limit)).all()


def is_flagged_unredacted(recording):
    if recording.card_payment_flagged_at is None:
        return False
    return db_session().scalar(
        sa.select(sa.func.count()).select_from(Redaction)
        .where(Redaction.recording_id == recording.id, Redaction.reason.in_(CARD_REASONS),
               Redaction.status.in_((SHREDDING, DONE)))) == 0
