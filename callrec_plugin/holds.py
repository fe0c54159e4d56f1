"""Holds keep recordings past their retention: complaint holds (from links to open complaints) and
investigation, regulator and law-enforcement holds placed by the owner or manager.

Regulator and law-enforcement holds are released only when two different people approve. Releasing
the last hold starts the grace period; eligibility is recomputed from the holds on every purge run.
"""
import datetime as dt

import sqlalchemy as sa
from flask import current_app

from callrec_plugin import audit, clock
from callrec_plugin.state import db_session, get_state
from callrec_plugin.forms import has_control_characters
from callrec_plugin.identity import SYSTEM
from callrec_plugin.models import Disclosure, Hold, HoldKind, Recording, RecordingStatus, new_id

PLACEABLE_KINDS = {
    HoldKind.INVESTIGATION: "Internal investigation",
    HoldKind.REGULATOR: "Regulator",
    HoldKind.LAW_ENFORCEMENT: "Law enforcement",
}


class HoldError(ValueError):
    """A hold could not be placed or released; the message says why."""


def place_holds(actor, recordings, kind, reason, external_reference=None, complaint_ref=None, group_id=None):
    """One hold per recording (purged ones are skipped), sharing a group id (``group_id``, e.g. the
    disclosure that placed them, or a new one); audited per recording."""
    if kind not in PLACEABLE_KINDS and kind not in (HoldKind.COMPLAINT, HoldKind.DISCLOSURE):
        raise HoldError(f"unknown hold kind {kind!r}")
    if not (reason or "").strip() or has_control_characters(reason + (external_reference or "")):
        raise HoldError("give the reason for the hold, in plain text")
    group, placed = group_id or new_id(), []
    for recording in lock_active(recordings):
        hold = Hold(recording_id=recording.id, practice_ref=recording.practice_ref, group_id=group, kind=kind,
                    complaint_ref=complaint_ref, reason=reason.strip(), external_reference=external_reference or None,
                    placed_by_ref=actor.ref, placed_by_name=actor.name, placed_at=clock.now())
        db_session().add(hold)
        db_session().flush()
        audit.record("hold_placed", "done", actor=actor, recording=recording, object_type="hold",
                     object_id=str(hold.id), reason=f"{kind}: {reason.strip()}")
        placed.append(hold)
    return placed


def lock_active(recordings):
    """The recordings still active, locked until commit: a purge running now cannot delete a call
    while a hold is placed on it (on PostgreSQL the purge skips locked rows; SQLite serialises)."""
    ids = [recording.id for recording in recordings]
    if not ids:
        return []
    return db_session().scalars(
        sa.select(Recording).where(Recording.id.in_(ids), Recording.status == RecordingStatus.ACTIVE)
        .order_by(Recording.started_at).with_for_update()
    ).all()


def release_refusal(actor, hold_or_group):
    """Why ``actor`` may not approve releasing ``hold_or_group`` now, or None. ``hold_or_group``: one Hold,
    the holds of one request (a list), or a hold_groups.HoldGroup. The holds page asks this before it
    offers the release button, and approve_release refuses with the same words."""
    active = _active_holds(hold_or_group)
    if not active:
        return "the hold is already released"
    for hold in active:
        refusal = _hold_refusal(actor, hold)
        if refusal:
            return refusal
    return None


def _active_holds(hold_or_group):
    if isinstance(hold_or_group, Hold):
        return [hold_or_group] if hold_or_group.released_at is None else []
    holds = getattr(hold_or_group, "holds", hold_or_group)  # a HoldGroup carries its rows as .holds
    return [hold for hold in holds if hold.released_at is None]


def _hold_refusal(actor, hold):
    if hold.kind == HoldKind.COMPLAINT:
        return "a complaint hold is released when the complaint is closed or the call detached"
    if hold.kind == HoldKind.DISCLOSURE:
        return ("a disclosure hold is released when the disclosure is refused, or a set period after "
                "its bundle was delivered")
    if hold.kind in HoldKind.TWO_APPROVER and hold.release_requested_by_ref == actor.ref:
        return "a second, different person must approve releasing a regulator or law-enforcement hold"
    return None


def approve_release(actor, hold):
    """Release a hold, or record the first of two approvals; returns True when it is released."""
    refusal = release_refusal(actor, hold)
    if refusal:
        raise HoldError(refusal)
    if hold.kind in HoldKind.TWO_APPROVER and hold.release_requested_by_ref is None:
        hold.release_requested_by_ref, hold.release_requested_at = actor.ref, clock.now()
        hold.release_requested_by_name = actor.name
        audit.record("hold_release_requested", "done", actor=actor, object_type="hold", object_id=str(hold.id),
                     recording_id=hold.recording_id, practice_ref=hold.practice_ref,
                     patient_ref=_patient_of(hold),
                     reason="first approval; a second, different person must approve")
        return False
    _release(hold, actor)
    return True


def group_of(hold):
    """The active holds placed by the same request as ``hold`` (itself alone for a hold without a group)."""
    if hold.group_id is None:
        return [hold] if hold.released_at is None else []
    return db_session().scalars(
        sa.select(Hold).where(Hold.practice_ref == hold.practice_ref, Hold.group_id == hold.group_id,
                              Hold.kind == hold.kind, Hold.released_at.is_(None))
        .order_by(Hold.id).with_for_update()
    ).all()


def approve_group_release(actor, hold):
    """Approve releasing the whole request ``hold`` belongs to: every call it held is released at once,
    or, for two-approver kinds, the first approval is recorded on all of them. True when released."""
    group = group_of(hold)
    refusal = release_refusal(actor, group)  # the whole request, before any of it changes
    if refusal:
        raise HoldError(refusal)
    return all([approve_release(actor, member) for member in group])


def _release(hold, actor, reason="released"):
    hold.released_at, hold.released_by_ref, hold.released_by_name = clock.now(), actor.ref, actor.name
    audit.record("hold_released", "done", actor=actor, object_type="hold", object_id=str(hold.id),
                 recording_id=hold.recording_id, practice_ref=hold.practice_ref, patient_ref=_patient_of(hold),
                 reason=f"{hold.kind} hold {reason}")
    get_state().pm.hook.callrec_hold_changed(recording_id=hold.recording_id, hold_id=hold.id, change="released")


def _patient_of(hold):
    """The patient of the held call, so that the audit trail filtered by patient finds the release too."""
    return db_session().scalar(sa.select(Recording.patient_ref).where(Recording.id == hold.recording_id))


def active_complaint_holds(complaint_ref, recording_id=None):
    query = sa.select(Hold).where(Hold.kind == HoldKind.COMPLAINT, Hold.complaint_ref == complaint_ref,
                                  Hold.released_at.is_(None))
    if recording_id is not None:
        query = query.where(Hold.recording_id == recording_id)
    return db_session().scalars(query).all()


def complaint_closed(complaint_ref, actor=SYSTEM):
    """The host closed a complaint: release its complaint holds (the grace period starts). Commits."""
    holds = active_complaint_holds(complaint_ref)
    for hold in holds:
        _release(hold, actor, reason=f"released: complaint {complaint_ref} closed")
    db_session().commit()
    return len(holds)


def sync_complaint_holds(practice_ref=None):
    """Release complaint holds whose complaint the host now reports closed. Commits.

    The purge run calls this first, so a host that forgot to call complaint_closed loses nothing:
    the hold lasts until the host says the complaint is closed, and the grace period starts then.
    A complaint the host no longer reports (summary None) keeps its holds: silence is not closure;
    the host ends them with complaint_closed (tests/test_pinned_behaviours.py pins this).
    """
    query = sa.select(Hold.complaint_ref).where(Hold.kind == HoldKind.COMPLAINT, Hold.released_at.is_(None),
                                                Hold.complaint_ref.is_not(None))
    if practice_ref is not None:
        query = query.where(Hold.practice_ref == practice_ref)
    hook, released = get_state().pm.hook, 0
    for complaint_ref in sorted(set(db_session().scalars(query))):
        summary = hook.callrec_complaint_summary(complaint_ref=complaint_ref)
        if summary is not None and summary.get("status") == "closed":
            released += complaint_closed(complaint_ref)
    return released


def release_disclosure_holds(disclosure_id, why, actor=SYSTEM):
    """Release the holds a disclosure placed on its calls (the grace period starts). Caller commits."""
    holds = db_session().scalars(sa.select(Hold).where(
        Hold.kind == HoldKind.DISCLOSURE, Hold.group_id == disclosure_id, Hold.released_at.is_(None))).all()
    for hold in holds:
        _release(hold, actor, reason=f"released: disclosure {why}")
    return len(holds)


def sync_disclosure_holds(now=None):
    """Release the holds of disclosures delivered more than CALLREC_DISCLOSURE_HOLD_DAYS ago. Commits.

    Run at the start of every purge, so the hold ends on time whether or not anyone is looking."""
    now = now or clock.now()
    cutoff = now - dt.timedelta(days=float(current_app.config["CALLREC_DISCLOSURE_HOLD_DAYS"]))
    due = db_session().scalars(
        sa.select(Disclosure.id).where(Disclosure.delivered_at.is_not(None), Disclosure.delivered_at <= cutoff,
                                       sa.exists().where(Hold.kind == HoldKind.DISCLOSURE,
                                                         Hold.group_id == Disclosure.id,
                                                         Hold.released_at.is_(None)))).all()
    released = sum(release_disclosure_holds(disclosure_id, "delivered; its hold period ended")
                   for disclosure_id in due)
    db_session().commit()
    return released


def holds_of(recording_ids):
    rows = db_session().scalars(sa.select(Hold).where(Hold.recording_id.in_(list(recording_ids))))
    by_recording = {}
    for hold in rows:
        by_recording.setdefault(hold.recording_id, []).append(hold)
    return by_recording


def recordings_for_hold(actor, scope, recording_id=None, patient_ref=None, start=None, end=None):
    """The recordings of the actor's practice a hold request covers: one call, a patient's, or a date range."""
    from callrec_plugin.scoping import recordings_in

    query = recordings_in(actor.practice_ref).where(Recording.status == RecordingStatus.ACTIVE)
    if scope == "recording":
        query = query.where(Recording.id == recording_id)
    elif scope == "patient":
        query = query.where(Recording.patient_ref == patient_ref)
    elif scope == "range":
        if start is None or end is None or end < start:
            raise HoldError("give a date range whose end is not before its start")
        query = query.where(Recording.started_at >= start, Recording.started_at < end)
    else:
        raise HoldError("choose what to hold: one call, a patient's calls, or a date range")
    return db_session().scalars(query.order_by(Recording.started_at)).all()
