"""A patient objects to recording: staff record it, the panel shows it, the phone system is told."""
import sqlalchemy as sa

from callrec_plugin.extension import get_state
from callrec_plugin.models import AuditEvent, PatientObjection
from tests.conftest import csrf_field, valid_csrf_token
from tests.factories import add_recording

FORM = "/callrec/patients/{}/objections"


def record(client, patient_ref, **fields):
    name, token = csrf_field(client.get(f"/patients/{patient_ref}").get_data(as_text=True))
    fields.setdefault("method", "phone")
    data = {name: token, **{f"callrec-objection-{k}": v for k, v in fields.items()}}
    return client.post(FORM.format(patient_ref), data=data)


def test_reception_records_an_objection_and_the_banner_appears(app, db_session, login):
    call = add_recording(db_session)
    client = login("reception")
    response = record(client, "pat1", recording_id=call.id, note="Asked not to be recorded")
    assert response.status_code == 302 and response.headers["Location"] == "/patients/pat1"
    objection = db_session.scalars(sa.select(PatientObjection)).one()
    assert (objection.patient_ref, objection.recording_id, objection.recorded_by_ref) == ("pat1", call.id, "reception")
    assert objection.note == "Asked not to be recorded"
    page = client.get("/patients/pat1").get_data(as_text=True)
    assert "This patient does not wish to be recorded." in page and "Asked not to be recorded" in page
    events = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "objection_recorded")).all()
    assert len(events) == 1 and events[0].patient_ref == "pat1"


def test_should_record_is_false_for_an_objecting_patients_number(app, db_session, login):
    hook = get_state(app).pm.hook
    with app.test_request_context():
        assert hook.callrec_should_record(phone_e164="+447700900001", practice_ref="pA") is True
    record(login("reception"), "pat1")
    with app.test_request_context():
        assert hook.callrec_should_record(phone_e164="+447700900001", practice_ref="pA") is False
        assert hook.callrec_should_record(phone_e164="+447700900002", practice_ref="pA") is True
        assert hook.callrec_should_record(phone_e164="+447700999999", practice_ref="pA") is True


def test_objection_without_csrf_changes_nothing(app, db_session, login):
    response = login("reception").post(FORM.format("pat1"), data={"callrec-objection-note": "x"})
    assert response.status_code == 400
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PatientObjection)) == 0


def test_objection_for_another_practices_patient_is_404(app, db_session, login):
    client = login("reception")
    name, token = csrf_field(client.get("/patients/pat1").get_data(as_text=True))
    response = client.post(FORM.format("patB"), data={name: token})
    assert response.status_code == 404
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PatientObjection)) == 0


def test_objection_naming_another_patients_call_is_refused(app, db_session, login):
    other = add_recording(db_session, patient_ref="pat2")
    response = record(login("reception"), "pat1", recording_id=other.id)
    assert response.status_code == 400
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PatientObjection)) == 0


def test_trainer_may_not_record_objections(app, db_session, login):
    client = login("trainer")
    page = client.get("/patients/pat1").get_data(as_text=True)
    assert "Patient objected to recording" not in page  # no form offered
    token = valid_csrf_token(app, client)
    refused = client.post(FORM.format("pat1"), data={"callrec-objection-csrf_token": token})
    assert refused.status_code == 403
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PatientObjection)) == 0
