"""Built-in answer to ``callrec_should_record``: not for a number of a patient who objected."""
import sqlalchemy as sa

from callrec_plugin.state import db_session, get_state
from callrec_plugin.hooks import hookimpl
from callrec_plugin.models import PatientObjection


def patient_has_objected(practice_ref, patient_ref):
    return db_session().scalar(
        sa.select(sa.func.count()).select_from(PatientObjection).where(
            PatientObjection.practice_ref == practice_ref,
            PatientObjection.patient_ref == patient_ref,
            PatientObjection.withdrawn_at.is_(None),
        )
    ) > 0


def objecting_patients(practice_ref):
    return db_session().scalars(
        sa.select(PatientObjection.patient_ref).where(
            PatientObjection.practice_ref == practice_ref, PatientObjection.withdrawn_at.is_(None)
        ).distinct()
    ).all()


def objection_history(practice_ref, patient_ref):
    """Every objection of the patient, standing or withdrawn, newest first."""
    return db_session().scalars(
        sa.select(PatientObjection).where(PatientObjection.practice_ref == practice_ref,
                                          PatientObjection.patient_ref == patient_ref)
        .order_by(PatientObjection.recorded_at.desc(), PatientObjection.id.desc())
    ).all()


def objection_context(actor, patient_ref, objection_form, history=None):
    """What the patient panel shows of objections: the standing one (the banner), the history, and the
    record or withdraw control (only for those who may record objections). ``history``: the patient's
    objections newest first, when the caller read them already (the panel does, in its one statement)."""
    from callrec_plugin.forms import OBJECTION_METHODS, WithdrawObjectionForm

    if history is None:
        history = objection_history(actor.practice_ref, patient_ref) if actor.practice_ref else []
    standing = next((objection for objection in history if objection.withdrawn_at is None), None)
    return {
        "objection": standing,
        "objection_history": history,
        "objection_methods": OBJECTION_METHODS,
        # While an objection stands the control is its withdrawal; otherwise the form to record one.
        "objection_form": objection_form if standing is None else None,
        "withdraw_form": WithdrawObjectionForm(prefix="callrec-withdraw") if objection_form and standing else None,
    }


@hookimpl(trylast=True)
def callrec_should_record(phone_e164, practice_ref):
    pm = get_state().pm
    patient_ref = pm.hook.callrec_resolve_patient(phone_e164=phone_e164, practice_ref=practice_ref, started_at=None)
    if patient_ref is not None:
        return not patient_has_objected(practice_ref, str(patient_ref))
    # No single patient has this number; it may still be the shared landline of one who objected,
    # and a patient's wish not to be recorded is kept even on a shared line. Objections are few.
    for ref in objecting_patients(practice_ref):
        summary = pm.hook.callrec_patient_summary(patient_ref=ref) or {}
        if phone_e164 in summary.get("phones", ()) and str(summary.get("practice_ref")) == str(practice_ref):
            return False
    return True
