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


OBJECTIONS = PatientObjection.__table__
# The patients of a practice whose objection stands. Core on the session's connection, not the ORM: the
# phone system asks on every call (views/pbx_api.py), and the ORM's per-statement machinery costs several
# times this small read.
STANDING_OBJECTORS = sa.select(OBJECTIONS.c.patient_ref).where(
    OBJECTIONS.c.practice_ref == sa.bindparam("practice_ref"), OBJECTIONS.c.withdrawn_at.is_(None)
).distinct()


def objecting_patients(practice_ref):
    """The refs of the practice's patients whose objection stands, as a set (one statement)."""
    connection = db_session().connection(bind_arguments={"mapper": PatientObjection})
    return set(connection.execute(STANDING_OBJECTORS, {"practice_ref": str(practice_ref)}).scalars())


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
    # Objections are few: read the practice's standing ones first (never cached, so an objection recorded
    # or withdrawn in any process counts at once); with none, no patient needs looking up.
    objectors = objecting_patients(practice_ref)
    if not objectors:
        return True
    pm = get_state().pm
    patient_ref = pm.hook.callrec_resolve_patient(phone_e164=phone_e164, practice_ref=practice_ref, started_at=None)
    if patient_ref is not None:
        return str(patient_ref) not in objectors
    # No single patient has this number; it may still be the shared landline of one who objected,
    # and a patient's wish not to be recorded is kept even on a shared line.
    for ref in sorted(objectors):
        summary = pm.hook.callrec_patient_summary(patient_ref=ref) or {}
        if phone_e164 in summary.get("phones", ()) and str(summary.get("practice_ref")) == str(practice_ref):
            return False
    return True
