"""An action is offered only when it can be taken now: "Propose for training" on the recording page and
"Confirm" on the call log's proposals are replaced by the reason when the same function the handler
asks (training_library.proposal_refusal, patient_matching.proposal_refusal) refuses."""
import re

import sqlalchemy as sa

from callrec_plugin import patient_matching, training_library
from callrec_plugin.models import MatchStatus, PatientMatch, Recording
from tests import hostapp
from tests.factories import add_recording
from tests.test_training_library import a_call, propose

PROPOSE_BUTTON = "Propose for training"
NO_STAFF = "This call has no member of staff on record, so nobody can be asked to consent."


def _recording_page(login, call):
    response = login("owner").get(f"/callrec/recordings/{call}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_call_without_staff_says_why_instead_of_offering_the_proposal(app, db_session, login):
    nobody = add_recording(db_session, staff_user_ref=None).id
    page = _recording_page(login, nobody)
    assert PROPOSE_BUTTON not in page and NO_STAFF in page
    refused = propose(app, login, nobody)
    assert refused.status_code == 409 and NO_STAFF in refused.get_data(as_text=True)

    answered = a_call()
    assert PROPOSE_BUTTON in _recording_page(login, answered)


def test_an_objection_takes_the_proposal_off_the_page(app, db_session, login):
    call = a_call()
    assert PROPOSE_BUTTON in _recording_page(login, call)
    from tests.test_training_library import post
    assert post(app, login("reception"), "/callrec/patients/pat2/objections",
                {"callrec-objection-note": "did not want to be recorded"}).status_code == 302
    page = _recording_page(login, call)
    assert PROPOSE_BUTTON not in page
    assert "This call cannot be used for training: the patient objected to being recorded." in page


def test_the_page_and_the_handler_follow_the_same_training_rule(app, db_session, login, monkeypatch):
    call = a_call()
    monkeypatch.setattr(training_library, "proposal_refusal", lambda recording: "the trainer is away")
    assert PROPOSE_BUTTON not in _recording_page(login, call)
    refused = propose(app, login, call)
    assert refused.status_code == 409 and "the trainer is away" in refused.get_data(as_text=True)
    monkeypatch.setattr(training_library, "proposal_refusal", lambda recording: None)
    assert PROPOSE_BUTTON in _recording_page(login, call)


def _proposal(app, db_session):
    call = add_recording(db_session, patient_ref=None, external_number="+447700900088")
    db_session.get(hostapp.Patient, "pat2").phone = "+447700900088"
    db_session.commit()
    result = app.test_cli_runner().invoke(args=["callrec", "rematch", "--practice", "pA"])
    assert result.exit_code == 0, result.output
    return call, db_session.scalar(sa.select(PatientMatch).where(PatientMatch.status == MatchStatus.PROPOSED))


def test_a_proposal_whose_patient_left_says_why_instead_of_confirm(app, db_session, login):
    call, proposal = _proposal(app, db_session)
    client = login("manager")
    assert "Confirm: this is their call" in client.get("/callrec/calls").get_data(as_text=True)

    db_session.delete(db_session.get(hostapp.Patient, "pat2"))  # the host removes the patient
    db_session.commit()
    page = client.get("/callrec/calls").get_data(as_text=True)
    assert "Confirm: this is their call" not in page
    assert "The proposed patient is no longer a patient of your practice." in page
    assert "Reject" in page  # what can still be done is still offered

    token = re.search(r'name="callrec-proposal-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    refused = client.post(f"/callrec/matches/{proposal.id}/confirm", data={"callrec-proposal-csrf_token": token})
    assert refused.status_code == 409
    assert "no longer a patient of your practice" in refused.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Recording, call.id).patient_ref is None


def test_the_call_log_and_the_confirm_handler_follow_the_same_rule(app, db_session, login, monkeypatch):
    call, proposal = _proposal(app, db_session)
    monkeypatch.setattr(patient_matching, "proposal_refusal", lambda actor, match, recording: "ask the patient first")
    client = login("manager")
    page = client.get("/callrec/calls").get_data(as_text=True)
    assert "Confirm: this is their call" not in page and "ask the patient first" in page
    token = re.search(r'name="callrec-proposal-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    refused = client.post(f"/callrec/matches/{proposal.id}/confirm", data={"callrec-proposal-csrf_token": token})
    assert refused.status_code == 409 and "ask the patient first" in refused.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Recording, call.id).patient_ref is None


def _disclosure_requested_by(app, db_session, login, user):
    from callrec_plugin.models import Disclosure
    from tests import jobs_support as js
    from tests.test_exports import add_calls, disclose

    calls = add_calls(db_session, js.Blobs(app), "pat1", 1)
    assert disclose(login(user), app, calls, recipient="Care Quality Commission", recipient_kind="regulator",
                    reference="CQC-5").status_code == 302
    return db_session.scalar(sa.select(Disclosure).where(Disclosure.reference == "CQC-5"))


def _decide(app, client, disclosure, action, **data):
    from tests.conftest import valid_csrf_token
    return client.post(f"/callrec/disclosures/{disclosure.id}/{action}",
                       data={"csrf_token": valid_csrf_token(app, client), **data})


APPROVE, REFUSE = "Approve the disclosure", "Refuse the disclosure"
SECOND_PERSON = "A second, different person must approve a disclosure: you requested this one."


def test_the_disclosure_page_offers_each_decision_only_to_whoever_may_take_it(app, db_session, login):
    disclosure = _disclosure_requested_by(app, db_session, login, "manager")
    requester = login("manager").get(f"/callrec/disclosures/{disclosure.id}").get_data(as_text=True)
    assert APPROVE not in requester and SECOND_PERSON in requester and REFUSE in requester
    refused = _decide(app, login("manager"), disclosure, "approve")
    assert refused.status_code == 403 and SECOND_PERSON in refused.get_data(as_text=True)

    dpo = login("dpo").get(f"/callrec/disclosures/{disclosure.id}").get_data(as_text=True)
    assert APPROVE not in dpo and REFUSE not in dpo and "Waiting for approval by a second person" in dpo
    assert _decide(app, login("dpo"), disclosure, "refuse", reason="no").status_code == 403

    owner = login("owner").get(f"/callrec/disclosures/{disclosure.id}").get_data(as_text=True)
    assert APPROVE in owner and REFUSE in owner and SECOND_PERSON not in owner
    assert _decide(app, login("owner"), disclosure, "refuse", reason="no legal basis").status_code == 302
    decided = login("owner").get(f"/callrec/disclosures/{disclosure.id}").get_data(as_text=True)
    assert APPROVE not in decided and REFUSE not in decided


def test_the_disclosure_page_and_handlers_follow_the_same_rules(app, db_session, login, monkeypatch):
    from callrec_plugin import exports
    disclosure = _disclosure_requested_by(app, db_session, login, "dpo")
    monkeypatch.setattr(exports, "approval_refusal",
                        lambda actor, d: exports.ExportError("the regulator withdrew the request", status=409))
    page = login("owner").get(f"/callrec/disclosures/{disclosure.id}").get_data(as_text=True)
    assert APPROVE not in page and "the regulator withdrew the request" in page and REFUSE in page
    refused = _decide(app, login("owner"), disclosure, "approve")
    assert refused.status_code == 409 and "the regulator withdrew the request" in refused.get_data(as_text=True)
    monkeypatch.setattr(exports, "refusal_refusal",
                        lambda actor, d: exports.ExportError("refusals are paused", status=409))
    page = login("owner").get(f"/callrec/disclosures/{disclosure.id}").get_data(as_text=True)
    assert REFUSE not in page
    assert _decide(app, login("owner"), disclosure, "refuse", reason="x").status_code == 409
