"""Built-in answer to ``callrec_should_record``: not for a number of a patient who objected."""
import sqlalchemy as sa

from callrec_plugin.extension import db_session, get_state
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


@hookimpl(trylast=True)
def callrec_should_record(phone_e164, practice_ref):
    patient_ref = get_state().pm.hook.callrec_resolve_patient(
        phone_e164=phone_e164, practice_ref=practice_ref, started_at=None
    )
    if patient_ref is None:
        return True
    return not patient_has_objected(practice_ref, str(patient_ref))
