"""Calls attached to complaints as evidence. Linking to an open complaint holds the call."""
import datetime as dt

import sqlalchemy as sa

from callrec_plugin import audit, clock
from callrec_plugin.state import db_session
from callrec_plugin.forms import has_control_characters
from callrec_plugin.holds import _release, active_complaint_holds, place_holds
from callrec_plugin.models import ComplaintLink, HoldKind, Recording, RecordingStatus
from callrec_plugin.scoping import recordings_in


class EvidenceError(ValueError):
    """A call could not be attached or detached; the message says why."""


def active_link(recording_id, complaint_ref):
    return db_session().scalar(sa.select(ComplaintLink).where(
        ComplaintLink.recording_id == recording_id, ComplaintLink.complaint_ref == complaint_ref,
        ComplaintLink.unlinked_at.is_(None)))


def link(actor, recording, complaint, note):
    """Attach the call to the complaint (and hold it while the complaint is open). Caller commits."""
    if recording.status != RecordingStatus.ACTIVE:
        raise EvidenceError("the call has been purged and cannot be attached")
    if has_control_characters(note):
        raise EvidenceError("the note contains characters that are not allowed")
    if active_link(recording.id, complaint["ref"]) is not None:
        raise EvidenceError("the call is already attached to this complaint")
    entry = ComplaintLink(recording_id=recording.id, practice_ref=recording.practice_ref,
                          complaint_ref=complaint["ref"], note=(note or "").strip(), linked_by_ref=actor.ref,
                          linked_by_name=actor.name, linked_at=clock.now())
    db_session().add(entry)
    audit.record("link", "done", actor=actor, recording=recording, object_type="complaint",
                 object_id=complaint["ref"], reason=f"attached as evidence: {entry.note}" if entry.note else "attached")
    if complaint.get("status") != "closed":
        place_holds(actor, [recording], HoldKind.COMPLAINT, f"evidence for complaint {complaint['ref']}",
                    complaint_ref=complaint["ref"])
    return entry


def unlink(actor, recording, complaint, reason):
    """Detach the call; its complaint hold for this complaint is released. Caller commits."""
    if not (reason or "").strip() or has_control_characters(reason):
        raise EvidenceError("give the reason for detaching the call, in plain text")
    entry = active_link(recording.id, complaint["ref"])
    if entry is None:
        raise EvidenceError("the call is not attached to this complaint")
    entry.unlinked_at, entry.unlinked_by_ref, entry.unlink_reason = clock.now(), actor.ref, reason.strip()
    audit.record("unlink", "done", actor=actor, recording=recording, object_type="complaint",
                 object_id=complaint["ref"], reason=f"detached: {reason.strip()}")
    for hold in active_complaint_holds(complaint["ref"], recording.id):
        _release(hold, actor, reason=f"released: call detached from complaint {complaint['ref']}")
    return entry


def find_calls(actor, numbers, start=None, end=None, limit=50):
    """Calls of the practice with any of these numbers, newest first, within [start, end)."""
    query = recordings_in(actor.practice_ref).where(Recording.status == RecordingStatus.ACTIVE)
    if numbers:
        query = query.where(Recording.external_number.in_(list(numbers)))
    if start is not None:
        query = query.where(Recording.started_at >= start)
    if end is not None:
        query = query.where(Recording.started_at < end + dt.timedelta(days=1))
    return db_session().scalars(query.order_by(Recording.started_at.desc()).limit(limit)).all()
