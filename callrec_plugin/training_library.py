"""The training library: calls the member of staff on them agreed may be used to train others.

The owner or manager proposes a call; the member of staff whose voice is on it is asked (a request on
their assessments page) and consents or declines; only a consented call is in the library. Consent
can be withdrawn at any time. A patient's objection to recording or a law-enforcement hold keeps a
call out whatever the consent says, and so does a purge.

``Recording.approved_for_training`` is the effective membership: :func:`refresh` sets it from the
consent and the blockers, and every change here calls it, so the playback re-check (which reads that
column) refuses the next audio request at once. Withdrawal also ends the training grants already
issued for the call.
"""
import sqlalchemy as sa

from callrec_plugin import audit, clock
from callrec_plugin.models import (
    AccessGrant, Hold, HoldKind, PatientObjection, Recording, RecordingStatus, TrainingConsent,
)
from callrec_plugin.state import db_session

REQUESTED, CONSENTED, DECLINED, WITHDRAWN, REMOVED = "requested", "consented", "declined", "withdrawn", "removed"
STATUS_LABELS = {
    REQUESTED: "Waiting for the member of staff's answer",
    CONSENTED: "In the training library (the member of staff consented)",
    DECLINED: "The member of staff declined",
    WITHDRAWN: "The member of staff withdrew consent",
    REMOVED: "Taken out of the library by the owner or manager",
}
# Audit object type of consent requests: confidential like assessments (visibility.py hides them).
OBJECT_TYPE = "training_consent"
MAX_NOTE = 500


class TrainingError(ValueError):
    """A proposal or answer that cannot be made (the message says why). ``field`` names the argument the
    person gave wrongly ("note", "decision"), so that a form can say so beside it; None when the call's
    state refuses, whatever they type."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def consent_for(recording_id):
    return db_session().scalar(sa.select(TrainingConsent).where(TrainingConsent.recording_id == recording_id))


def blockers(recording):
    """Why a call must stay out of the library whatever the consent: [] if nothing keeps it out."""
    reasons = []
    if recording.status != RecordingStatus.ACTIVE:
        reasons.append("the call has been deleted")
    objected = db_session().scalar(sa.select(sa.func.count()).select_from(PatientObjection).where(
        PatientObjection.practice_ref == recording.practice_ref, PatientObjection.withdrawn_at.is_(None),
        sa.or_(PatientObjection.recording_id == recording.id,
               sa.and_(PatientObjection.patient_ref.is_not(None), PatientObjection.patient_ref == recording.patient_ref))))
    if objected or recording.recorded_despite_objection:
        reasons.append("the patient objected to being recorded")
    held = db_session().scalar(sa.select(sa.func.count()).select_from(Hold).where(
        Hold.recording_id == recording.id, Hold.kind == HoldKind.LAW_ENFORCEMENT, Hold.released_at.is_(None)))
    if held:
        reasons.append("the call is held for law enforcement")
    return reasons


def refresh(recording, consent=None):
    """Set the call's effective library membership from its consent and blockers; end training grants
    at once when it leaves. Returns whether it is in the library."""
    consent = consent if consent is not None else consent_for(recording.id)
    member = consent is not None and consent.status == CONSENTED and not blockers(recording)
    if recording.approved_for_training and not member:
        end_training_grants(recording)
    recording.approved_for_training = member
    recording.training_approved_by_ref = consent.proposed_by_ref if member else None
    return member


def end_training_grants(recording):
    """Expire every unexpired training grant of the call: the next audio request is refused."""
    now = clock.now()
    db_session().execute(sa.update(AccessGrant).where(
        AccessGrant.recording_id == recording.id, AccessGrant.purpose == "training", AccessGrant.expires_at > now,
    ).values(expires_at=now))


def proposal_refusal(recording):
    """Why the call cannot be proposed for training now, in words, or None. The recording page asks it
    before offering the form, and propose() before acting, so the button is never a dead end."""
    if not recording.staff_user_ref:
        return "This call has no member of staff on record, so nobody can be asked to consent."
    kept_out = blockers(recording)
    if kept_out:
        return f"This call cannot be used for training: {'; '.join(kept_out)}."
    return None


def propose(actor, recording, note=""):
    """Owner or manager asks the member of staff on the call for consent to use it for training."""
    note = " ".join((note or "").split())
    if len(note) > MAX_NOTE:
        raise TrainingError(f"The training note is at most {MAX_NOTE} characters.", "note")
    refusal = proposal_refusal(recording)
    if refusal:
        raise TrainingError(refusal)
    consent = consent_for(recording.id)
    if consent is None:
        consent = TrainingConsent(recording_id=recording.id, practice_ref=recording.practice_ref,
                                  staff_user_ref=recording.staff_user_ref)
        db_session().add(consent)
    if consent.status in (REQUESTED, CONSENTED):
        consent.training_note = note or consent.training_note
        outcome = "note updated"
    else:
        consent.status, consent.answered_at = REQUESTED, None
        consent.staff_user_ref, consent.training_note = recording.staff_user_ref, note
        consent.proposed_by_ref, consent.proposed_at = actor.ref, clock.now()
        outcome = "consent requested"
    db_session().flush()
    refresh(recording, consent)  # a call approved before consent existed waits for it too
    audit.record("training_proposed", "done", actor=actor, recording=recording, object_type=OBJECT_TYPE,
                 object_id=str(consent.id), reason=outcome)
    return consent


def answer(actor, recording, decision):
    """The member of staff on the call consents, declines, or withdraws consent.

    Declining needs no request: the member of staff may say no before anyone asks."""
    consent = consent_for(recording.id)
    if consent is None:
        if decision == "consent":
            raise TrainingError("Nobody has proposed this call for training.")
        consent = TrainingConsent(recording_id=recording.id, practice_ref=recording.practice_ref,
                                  staff_user_ref=actor.ref)
        db_session().add(consent)
    if decision == "consent":
        if consent.status != REQUESTED:
            raise TrainingError("There is no open request to answer for this call.")
        if blockers(recording):
            raise TrainingError(f"This call cannot be used for training: {'; '.join(blockers(recording))}.")
        consent.status = CONSENTED
    elif decision in ("decline", "withdraw"):
        consent.status = WITHDRAWN if consent.status == CONSENTED else DECLINED
    else:
        raise TrainingError("Answer consent, decline or withdraw.", "decision")
    consent.answered_at = clock.now()
    db_session().flush()
    refresh(recording, consent)
    audit.record("training_consent", "done", actor=actor, recording=recording, object_type=OBJECT_TYPE,
                 object_id=str(consent.id), reason=consent.status)
    return consent


def remove(actor, recording):
    """The owner or manager stops using a call for training."""
    consent = consent_for(recording.id)
    if consent is not None and consent.status in (REQUESTED, CONSENTED):
        consent.status, consent.answered_at = REMOVED, clock.now()
    refresh(recording, consent)
    audit.record("training_removed", "done", actor=actor, recording=recording, object_type=OBJECT_TYPE,
                 object_id=str(consent.id) if consent else recording.id, reason="taken out of the training library")
    return consent


def is_staff_on_call(actor, recording, consent=None):
    ref = consent.staff_user_ref if consent is not None else recording.staff_user_ref
    return actor.ref is not None and ref == actor.ref


def requests_for(actor):
    """The consent requests and answers about calls the actor is on (their assessments page)."""
    rows = db_session().execute(sa.select(TrainingConsent, Recording).join(
        Recording, Recording.id == TrainingConsent.recording_id).where(
        TrainingConsent.practice_ref == actor.practice_ref, Recording.practice_ref == actor.practice_ref,
        TrainingConsent.staff_user_ref == actor.ref).order_by(TrainingConsent.proposed_at.desc())).all()
    return [(consent, recording) for consent, recording in rows]


def requests_of_practice(practice_ref):
    """Every proposal of the practice not (or no longer) in the library, newest first (owner and manager)."""
    return db_session().execute(sa.select(TrainingConsent, Recording).join(
        Recording, Recording.id == TrainingConsent.recording_id).where(
        TrainingConsent.practice_ref == practice_ref, Recording.practice_ref == practice_ref,
        TrainingConsent.status != CONSENTED).order_by(TrainingConsent.proposed_at.desc())).all()


def library(practice_ref):
    """The library: (recording, consent) of every call in it, newest first."""
    return db_session().execute(sa.select(Recording, TrainingConsent).outerjoin(
        TrainingConsent, TrainingConsent.recording_id == Recording.id).where(
        Recording.practice_ref == practice_ref, Recording.approved_for_training.is_(True),
        Recording.status == RecordingStatus.ACTIVE).order_by(Recording.started_at.desc())).all()


def calls_of_patient_in_library(practice_ref, patient_ref):
    return db_session().scalars(sa.select(Recording).where(
        Recording.practice_ref == practice_ref, Recording.patient_ref == patient_ref,
        Recording.approved_for_training.is_(True))).all()


def patient_objected(practice_ref, patient_ref):
    """A patient objected to recording: every call of theirs leaves the library now."""
    for recording in calls_of_patient_in_library(practice_ref, patient_ref):
        refresh(recording)


def hold_changed(recording_id):
    """A hold was placed or released: a law-enforcement hold keeps the call out while it stands."""
    recording = db_session().get(Recording, recording_id)
    if recording is not None and consent_for(recording_id) is not None:
        refresh(recording)
