"""Every query that returns recordings starts here, scoped to one practice; so does every lookup of
the host's patients and complaints.

Another practice's recording and a missing one must look the same to the user: both are 404.
"""
import sqlalchemy as sa
from flask import abort

from callrec_plugin import audit
from callrec_plugin.state import db_session, get_state
from callrec_plugin.models import Recording


def recordings_in(practice_ref):
    """A SELECT of recordings limited to one practice; None (no practice) matches nothing."""
    if practice_ref is None:
        return sa.select(Recording).where(sa.false())
    return sa.select(Recording).where(Recording.practice_ref == practice_ref)


def find_recording(actor, recording_id):
    return db_session().scalar(recordings_in(actor.practice_ref).where(Recording.id == recording_id))


def recording_or_404(actor, recording_id, action):
    """The recording in the actor's practice, or an audited 404 identical for 'other practice' and 'missing'."""
    recording = find_recording(actor, recording_id)
    if recording is None:
        audit.record(
            action, "denied", actor=actor, reason="no such recording in the user's practice",
            object_type="recording", object_id=str(recording_id)[:64],
        )
        db_session().commit()
        abort(404)
    return recording


def patient_in_practice(actor, patient_ref):
    """The host's summary of the patient if they belong to the actor's practice, else None."""
    summary = get_state().pm.hook.callrec_patient_summary(patient_ref=patient_ref) if patient_ref else None
    return summary if summary and str(summary.get("practice_ref")) == actor.practice_ref else None


def complaint_in_practice(actor, complaint_ref):
    """The host's summary of the complaint if it belongs to the actor's practice, else None."""
    summary = get_state().pm.hook.callrec_complaint_summary(complaint_ref=complaint_ref) if complaint_ref else None
    return summary if summary and str(summary.get("practice_ref")) == actor.practice_ref else None
