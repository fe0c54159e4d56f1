"""An objection to recording: recorded with how it was made, withdrawn with a reason by the same roles,
its history on the patient panel, the banner only while it stands."""
import re

import pytest
import sqlalchemy as sa

from callrec_plugin.models import AuditEvent, PatientObjection
from tests.conftest import csrf_field, valid_csrf_token
from tests.test_objections import record

WITHDRAW = "/callrec/patients/{}/objections/withdraw"


def withdraw(client, patient_ref, reason, objection_id=None):
    page = client.get(f"/patients/{patient_ref}").get_data(as_text=True)
    name, token = csrf_field(page[page.index('action="/callrec/patients/' + patient_ref + '/objections/withdraw"'):])
    if objection_id is None:
        objection_id = re.search(r'name="callrec-withdraw-objection_id" value="(\d+)"', page).group(1)
    return client.post(WITHDRAW.format(patient_ref), data={
        name: token, "callrec-withdraw-objection_id": str(objection_id), "callrec-withdraw-reason": reason})


def panel(client, patient_ref="pat1"):
    return client.get(f"/patients/{patient_ref}").get_data(as_text=True)


def test_the_control_reads_as_an_action_and_the_method_is_kept(app, db_session, login):
    client = login("reception")
    before = panel(client)
    assert "Record that this patient objects to recording" in before
    assert "does not wish to be recorded" not in before
    assert record(client, "pat1", method="in_person", note="Said so at the desk").status_code == 302
    objection = db_session.scalars(sa.select(PatientObjection)).one()
    assert objection.method == "in_person"
    after = panel(client)
    assert "This patient does not wish to be recorded." in after and "told us in person" in after
    # While it stands, the control is its withdrawal, not a second objection.
    assert "Record that this patient objects to recording" not in after
    assert "Record that this patient withdrew their objection" in after


@pytest.mark.parametrize("method", ["phone", "in_person", "letter", "email"])
def test_every_way_of_objecting_is_accepted(app, db_session, login, method):
    assert record(login("manager"), "pat1", method=method).status_code == 302
    assert db_session.scalars(sa.select(PatientObjection.method)).one() == method


def test_an_unknown_method_is_refused(app, db_session, login):
    assert record(login("reception"), "pat1", method="carrier_pigeon").status_code == 400
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PatientObjection)) == 0


def test_withdrawal_needs_a_reason_and_ends_the_banner_and_history_stays(app, db_session, login):
    client = login("reception")
    record(client, "pat1", method="phone")
    assert withdraw(client, "pat1", "").status_code == 400
    assert withdraw(client, "pat1", "Patient wrote to say recording is fine").status_code == 302
    objection = db_session.scalars(sa.select(PatientObjection)).one()
    assert objection.withdrawn_by_ref == "reception" and objection.withdrawal_reason.startswith("Patient wrote")
    page = panel(client)
    assert "does not wish to be recorded" not in page
    assert "Objections to recording (1)" in page and "withdrawn" in page and "Patient wrote" in page
    assert "Record that this patient objects to recording" in page  # may object again
    actions = db_session.scalars(sa.select(AuditEvent.action).where(AuditEvent.patient_ref == "pat1")).all()
    assert "objection_recorded" in actions and "objection_withdrawn" in actions


def test_withdrawing_twice_is_409_and_audited(app, db_session, login):
    client = login("manager")
    record(client, "pat1")
    objection_id = db_session.scalars(sa.select(PatientObjection.id)).one()
    assert withdraw(client, "pat1", "first").status_code == 302
    # The form is gone from the page now; post with a fresh token as a stale tab would.
    token = valid_csrf_token(app, client)
    again = client.post(WITHDRAW.format("pat1"), data={"callrec-withdraw-csrf_token": token,
                                                       "callrec-withdraw-objection_id": str(objection_id),
                                                       "callrec-withdraw-reason": "second"})
    assert again.status_code == 409
    assert db_session.scalars(sa.select(PatientObjection.withdrawal_reason)).one() == "first"


def test_trainer_may_not_withdraw_and_other_practice_is_404(app, db_session, login):
    record(login("reception"), "pat1")
    objection_id = db_session.scalars(sa.select(PatientObjection.id)).one()
    trainer = login("trainer")
    token = valid_csrf_token(app, trainer)
    data = {"callrec-withdraw-csrf_token": token, "callrec-withdraw-objection_id": str(objection_id),
            "callrec-withdraw-reason": "not mine to say"}
    assert trainer.post(WITHDRAW.format("pat1"), data=data).status_code == 403
    other = login("receptionB")
    data["callrec-withdraw-csrf_token"] = valid_csrf_token(app, other)
    assert other.post(WITHDRAW.format("pat1"), data=data).status_code == 404
    assert db_session.scalars(sa.select(PatientObjection)).one().withdrawn_at is None


def test_an_objection_of_another_patient_cannot_be_withdrawn_through_this_one(app, db_session, login):
    client = login("reception")
    record(client, "pat2")
    objection_id = db_session.scalars(sa.select(PatientObjection.id)).one()
    token = valid_csrf_token(app, client)
    response = client.post(WITHDRAW.format("pat1"), data={"callrec-withdraw-csrf_token": token,
                                                          "callrec-withdraw-objection_id": str(objection_id),
                                                          "callrec-withdraw-reason": "wrong patient"})
    assert response.status_code == 404
    assert db_session.scalars(sa.select(PatientObjection)).one().withdrawn_at is None
