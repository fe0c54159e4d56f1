"""Staff record that a patient objected to being recorded (and how they said so), and withdraw an
objection with a reason; the same roles do both, and the patient panel shows the history."""
import sqlalchemy as sa
from flask import abort, flash, redirect

from callrec_plugin import audit, training_library
from callrec_plugin.state import db_session
from callrec_plugin.forms import OBJECTION_METHODS, ObjectionForm, WithdrawObjectionForm
from callrec_plugin.identity import current_actor
from callrec_plugin.models import PatientObjection, utcnow
from callrec_plugin.policy import authorize
from callrec_plugin.roles import Action
from callrec_plugin.scoping import find_recording, patient_in_practice
from callrec_plugin.views import FormPage, blueprint, login_required, refused, refused_409, submitted_or_shown_again

ROUTES = {"callrec.record_objection": Action.RECORD_OBJECTION,
          "callrec.withdraw_objection": Action.RECORD_OBJECTION}


def _about(patient_ref):
    return {"object_type": "patient", "object_id": patient_ref[:64], "patient_ref": patient_ref[:64]}


def _patient_allowed(actor, patient_ref, form, title, submit):
    """The patient (else an audited 404), the actor allowed (else an audited 403), the form valid (else
    shown again, with a way back to the patient's page)."""
    patient = patient_in_practice(actor, patient_ref)
    if patient is None:
        refused(404, actor, Action.RECORD_OBJECTION, "no such patient in the user's practice", **_about(patient_ref))
    decision = authorize(actor, Action.RECORD_OBJECTION, **_about(patient_ref))
    if not decision:
        abort(403, decision.reason)
    submitted_or_shown_again(form, FormPage(title, submit, patient.get("url") or "/", "the patient's record"))
    return patient


def _call_choices(actor, form):
    """The call <select> shows the call chosen again if the form comes back (the panel writes its own)."""
    wanted = form.recording_id.data or ""
    chosen = find_recording(actor, wanted) if 0 < len(wanted) <= 32 else None
    form.recording_id.choices = [("", "No particular call")] + (
        [(chosen.id, chosen.started_at.strftime("%d %b %Y %H:%M"))] if chosen is not None else [])


@blueprint.route("/patients/<patient_ref>/objections", methods=["POST"])
@login_required
def record_objection(patient_ref):
    actor = current_actor()
    form = ObjectionForm(prefix="callrec-objection")
    _call_choices(actor, form)
    patient = _patient_allowed(actor, patient_ref, form, "Record that the patient objects to recording",
                               "Record the objection")
    recording_id = form.recording_id.data or None
    if recording_id and (recording := find_recording(actor, recording_id)) is None:
        refused(404, actor, Action.RECORD_OBJECTION, "no such call in the user's practice", **_about(patient_ref))
    if recording_id and recording.patient_ref != patient_ref:
        refused(400, actor, Action.RECORD_OBJECTION, "That call is not one of this patient's calls.",
                **_about(patient_ref))
    objection = PatientObjection(
        practice_ref=actor.practice_ref, patient_ref=patient_ref, recording_id=recording_id,
        note=(form.note.data or "").strip(), recorded_by_ref=actor.ref, recorded_by_name=actor.name,
        method=form.method.data,
    )
    db_session().add(objection)
    db_session().flush()
    audit.record("objection_recorded", "done", actor=actor, object_type="objection", object_id=str(objection.id),
                 patient_ref=patient_ref, recording=None,
                 reason=f"patient objected ({OBJECTION_METHODS[form.method.data].lower()})")
    training_library.patient_objected(actor.practice_ref, patient_ref)  # their calls leave the library now
    db_session().commit()
    flash("Recorded: the patient objected to recording and the call was ended politely.", "callrec-info")
    return redirect(patient.get("url") or "/")


@blueprint.route("/patients/<patient_ref>/objections/withdraw", methods=["POST"])
@login_required
def withdraw_objection(patient_ref):
    actor = current_actor()
    form = WithdrawObjectionForm(prefix="callrec-withdraw")
    patient = _patient_allowed(actor, patient_ref, form, "Record that the patient withdrew their objection",
                               "Withdraw the objection")
    objection = db_session().scalar(sa.select(PatientObjection).where(
        PatientObjection.id == _int_or_none(form.objection_id.data), PatientObjection.practice_ref == actor.practice_ref,
        PatientObjection.patient_ref == patient_ref))
    if objection is None:
        refused(404, actor, Action.RECORD_OBJECTION, "no such objection for this patient", **_about(patient_ref))
    if objection.withdrawn_at is not None:
        refused_409(actor, Action.RECORD_OBJECTION, "That objection was already withdrawn.", **_about(patient_ref))
    objection.withdrawn_at, objection.withdrawn_by_ref, objection.withdrawn_by_name = utcnow(), actor.ref, actor.name
    objection.withdrawal_reason = form.reason.data.strip()
    audit.record("objection_withdrawn", "done", actor=actor, object_type="objection", object_id=str(objection.id),
                 patient_ref=patient_ref, reason=objection.withdrawal_reason)
    db_session().commit()
    flash("Recorded: the patient's objection to recording is withdrawn.", "callrec-info")
    return redirect(patient.get("url") or "/")


def _int_or_none(text):
    return int(text) if text and text.isdigit() and len(text) < 12 else None
