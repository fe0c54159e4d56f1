"""Calls no number matched, linked to a patient by a person (never silently), and undone with a reason.

A match is a row of ``callrec_patient_matches``: ``confirmed`` when a person links the call (or
confirms a proposal), ``proposed`` when ``propose_rematches`` finds the caller's number on a patient
after the call was stored, ``rejected`` when a person says a proposal is wrong (it is not proposed
again), ``undone`` when a confirmed link is taken back. Each change is audited and told to the host
through ``callrec_call_matched``.
"""
import datetime as dt

import sqlalchemy as sa

from callrec_plugin import audit
from callrec_plugin.identity import SYSTEM
from callrec_plugin.models import MatchStatus, PatientMatch, Recording, RecordingStatus, utcnow
from callrec_plugin.scoping import patient_in_practice
from callrec_plugin.state import db_session, get_state

MAX_CANDIDATES = 20
MAX_REASON_CHARS = 500
MATCHED, UNDONE = "matched", "undone"


class MatchError(ValueError):
    """The link cannot be made or taken back; the message says why, for the person who tried. ``field``
    names what they gave wrongly ("reason", "patient_ref"), so that a form can say so beside it; None
    when the call's or the match's state refuses (someone else may have acted first)."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def find_candidates(actor, query):
    """Patients of the actor's practice matching what they typed, through the host's hook."""
    query = (query or "").strip()
    if not query:
        return []
    found = get_state().pm.hook.callrec_find_patients(query=query[:100], practice_ref=actor.practice_ref) or []
    in_practice = [p for p in found if isinstance(p, dict) and str(p.get("practice_ref")) == actor.practice_ref]
    return in_practice[:MAX_CANDIDATES]


def _check_reason(reason, missing="Say how you know this call is the patient's."):
    reason = (reason or "").strip()
    if not reason:
        raise MatchError(missing, "reason")
    if len(reason) > MAX_REASON_CHARS:
        raise MatchError(f"Keep the reason under {MAX_REASON_CHARS} characters.", "reason")
    return reason


def _unmatched_refusal(recording):
    if recording.status != RecordingStatus.ACTIVE:
        return "This call has been deleted: it can no longer be linked to a patient."
    if recording.patient_ref is not None:
        return "This call is already linked to a patient: undo that link first."
    return None


def _check_unmatched(recording):
    refusal = _unmatched_refusal(recording)
    if refusal:
        raise MatchError(refusal)


def match_call(actor, recording, patient_ref, reason):
    """Link an unmatched call to a patient of the actor's practice. Commits; returns the match."""
    reason = _check_reason(reason)
    _check_unmatched(recording)
    if patient_in_practice(actor, patient_ref) is None:
        raise MatchError("There is no such patient in your practice.", "patient_ref")
    match = PatientMatch(recording_id=recording.id, practice_ref=recording.practice_ref,
                         patient_ref=str(patient_ref), status=MatchStatus.CONFIRMED, reason=reason)
    db_session().add(match)
    return _confirm(actor, recording, match, reason)


def proposal_refusal(actor, match, recording):
    """Why the proposal cannot be confirmed now, in words, or None. The call log asks it before offering
    "Confirm", and confirm_proposal before acting, so the button is never a dead end."""
    if match.status != MatchStatus.PROPOSED:
        return "This proposal has already been decided."
    refusal = _unmatched_refusal(recording)
    if refusal:
        return refusal
    if patient_in_practice(actor, match.patient_ref) is None:
        return "The proposed patient is no longer a patient of your practice."
    return None


def confirm_proposal(actor, match, recording):
    """A person confirms what rematch proposed: the call becomes the patient's. Commits."""
    refusal = proposal_refusal(actor, match, recording)
    if refusal:
        raise MatchError(refusal)
    match.status = MatchStatus.CONFIRMED
    return _confirm(actor, recording, match, match.reason)


def _confirm(actor, recording, match, reason):
    recording.patient_ref = match.patient_ref
    match.decided_by_ref, match.decided_by_name, match.decided_at = actor.ref, actor.name, utcnow()
    audit.record("call_matched", "done", actor=actor, recording=recording, patient_ref=match.patient_ref,
                 reason=f"linked to the patient: {reason}")
    db_session().commit()
    _tell_host(recording, match.patient_ref, MATCHED)
    return match


def reject_proposal(actor, match, recording, reason):
    """A person says the proposal is wrong; rematch will not propose it again. Commits."""
    reason = _check_reason(reason, "Say why this is not the patient's call.")
    if match.status != MatchStatus.PROPOSED:
        raise MatchError("This proposal has already been decided.")
    match.status, match.undo_reason = MatchStatus.REJECTED, reason
    match.decided_by_ref, match.decided_by_name, match.decided_at = actor.ref, actor.name, utcnow()
    audit.record("match_rejected", "done", actor=actor, recording=recording, patient_ref=match.patient_ref,
                 reason=f"proposed match rejected: {reason}")
    db_session().commit()
    return match


def undo_match(actor, match, recording, reason):
    """Take a confirmed link back: the call has no patient again. Commits."""
    reason = _check_reason(reason, "Say why the link is wrong.")
    if match.status != MatchStatus.CONFIRMED or recording.patient_ref != match.patient_ref:
        raise MatchError("This link has already been undone or changed.")
    recording.patient_ref = None
    match.status, match.undo_reason = MatchStatus.UNDONE, reason
    match.undone_by_ref, match.undone_by_name, match.undone_at = actor.ref, actor.name, utcnow()
    audit.record("match_undone", "done", actor=actor, recording=recording, patient_ref=match.patient_ref,
                 reason=f"link to the patient undone: {reason}")
    db_session().commit()
    _tell_host(recording, match.patient_ref, UNDONE)
    return match


def _tell_host(recording, patient_ref, change):
    get_state().pm.hook.callrec_call_matched(
        recording_id=recording.id, patient_ref=patient_ref, practice_ref=recording.practice_ref,
        phone_e164=recording.external_number if (recording.external_number or "").startswith("+") else None,
        change=change)


def matches_of(recording_id):
    """Every match row of one call, newest first (what the call's page shows)."""
    return db_session().scalars(sa.select(PatientMatch).where(PatientMatch.recording_id == recording_id)
                                .order_by(PatientMatch.id.desc())).all()


def open_proposals(practice_ref, limit=100):
    """(match, recording) of the practice's proposals waiting for a person, oldest call first."""
    return db_session().execute(
        sa.select(PatientMatch, Recording).join(Recording, Recording.id == PatientMatch.recording_id)
        .where(PatientMatch.practice_ref == practice_ref, PatientMatch.status == MatchStatus.PROPOSED,
               Recording.patient_ref.is_(None), Recording.status == RecordingStatus.ACTIVE)
        .order_by(Recording.started_at, PatientMatch.id).limit(limit)).all()


def propose_rematches(practice_ref, number=None, since=None, now=None):
    """Ask the host again about the numbers of the practice's unmatched calls (after it added a number
    to a patient) and propose each call whose number now names a patient. Nothing is linked: a person
    confirms each proposal. Returns the new proposals; commits."""
    session = db_session()
    query = sa.select(Recording).where(
        Recording.practice_ref == practice_ref, Recording.patient_ref.is_(None),
        Recording.status == RecordingStatus.ACTIVE, Recording.external_number.like("+%"))
    if number:
        query = query.where(Recording.external_number == number)
    if since:
        query = query.where(Recording.started_at >= since)
    decided = {(m.recording_id, m.patient_ref) for m in session.scalars(sa.select(PatientMatch).where(
        PatientMatch.practice_ref == practice_ref,
        PatientMatch.status.in_([MatchStatus.PROPOSED, MatchStatus.REJECTED])))}
    hook = get_state().pm.hook
    proposals = []
    for recording in session.scalars(query.order_by(Recording.started_at)):
        patient_ref = hook.callrec_resolve_patient(phone_e164=recording.external_number, practice_ref=practice_ref,
                                                   started_at=recording.started_at)
        if patient_ref is None or (recording.id, str(patient_ref)) in decided:
            continue
        match = PatientMatch(recording_id=recording.id, practice_ref=practice_ref, patient_ref=str(patient_ref),
                             status=MatchStatus.PROPOSED, proposed_at=now or utcnow(),
                             reason="the caller's number is now on the patient's record")
        session.add(match)
        audit.record("match_proposed", "done", actor=SYSTEM, recording=recording, patient_ref=str(patient_ref),
                     reason="rematch: the caller's number is now on this patient's record; waiting for a person")
        proposals.append(match)
    session.commit()
    return proposals


def since_date(text):
    """A --since date (YYYY-MM-DD) as the start of that day in UTC."""
    return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(0), tzinfo=dt.timezone.utc)
