"""Staff flag a call they took a card payment on (call page or patient panel); owner and manager find
it on the retention page until its card details are redacted."""
import datetime as dt
import io

import sqlalchemy as sa

from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import AuditEvent, Recording, utcnow
from tests import silencing_samples as samples
from tests.conftest import csrf_from, valid_csrf_token
from tests.test_redaction import redact_on_page


def a_call(source_ref="card-1", silence=None):
    return ingest_audio(io.BytesIO(samples.pcm_wav(seconds=3.0).data), practice_ref="pA",
                        started_at=utcnow() - dt.timedelta(days=1), direction="inbound",
                        from_number="+447700900001", to_number="201", source="api", source_ref=source_ref,
                        staff_name="Rita Reception", silence=silence).recording_id


def flag(app, client, recording_id):
    return client.post(f"/callrec/recordings/{recording_id}/card-payment",
                       data={"callrec-card-csrf_token": valid_csrf_token(app, client)})


def retention_page(client):
    return client.get("/callrec/retention").get_data(as_text=True)


def test_reception_flags_a_call_and_owner_and_manager_see_it_until_it_is_redacted(app, db_session, login):
    recording_id = a_call()
    reception = login("reception")
    page = reception.get(f"/callrec/recordings/{recording_id}").get_data(as_text=True)
    assert "A card payment was taken on this call" in page
    assert flag(app, reception, recording_id).status_code == 302
    recording = db_session.get(Recording, recording_id)
    assert recording.card_payment_flagged_by_ref == "reception" and recording.card_payment_flagged_at
    event = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "card_payment_flagged"))
    assert (event.actor_ref, event.outcome, event.recording_id) == ("reception", "done", recording_id)

    for who in ("owner", "manager"):
        listing = retention_page(login(who))
        assert "Card payments not yet redacted" in listing and f"/callrec/recordings/{recording_id}" in listing
        assert "Reception" in listing  # who flagged it
    assert "Card payments not yet redacted" not in retention_page(login("dpo"))

    manager = login("manager")
    assert redact_on_page(app, manager, recording_id, "1", "2").status_code == 302
    listing = retention_page(manager)
    assert f"/callrec/recordings/{recording_id}#" not in listing
    assert "None: every call flagged as a card payment has been redacted." in listing
    assert "The card details have been redacted." in manager.get(f"/callrec/recordings/{recording_id}").get_data(
        as_text=True)


def test_a_call_whose_payment_the_phone_system_paused_is_not_listed(app, db_session, login):
    recording_id = a_call(silence=[[1, 2]])
    flag(app, login("reception"), recording_id)
    assert f"/callrec/recordings/{recording_id}#" not in retention_page(login("owner"))


def test_flag_from_the_patient_panel(app, db_session, login):
    recording_id = a_call()
    reception = login("reception")
    panel = reception.get("/patients/pat1").get_data(as_text=True)
    assert f"/callrec/recordings/{recording_id}/card-payment" in panel
    token = csrf_from(panel)
    response = reception.post(f"/callrec/recordings/{recording_id}/card-payment",
                              data={"callrec-card-csrf_token": token})
    assert response.status_code == 302
    assert db_session.get(Recording, recording_id).card_payment_flagged_by_ref == "reception"


def test_flagging_twice_keeps_the_first_and_a_role_without_calls_may_not(app, db_session, login):
    recording_id = a_call()
    flag(app, login("reception"), recording_id)
    flag(app, login("handler"), recording_id)
    assert db_session.get(Recording, recording_id).card_payment_flagged_by_ref == "reception"
    other = a_call("card-2")
    assert flag(app, login("dpo"), other).status_code == 403
    assert db_session.get(Recording, other).card_payment_flagged_at is None
