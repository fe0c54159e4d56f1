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
