"""What the service refuses in what a person typed or chose, after the form itself was valid: the same
form comes back (400, not a bare 409 page), the reason beside the field in the element its
aria-describedby names, what they typed still there, and one "denied" in the audit trail. What the
state of the call or the match refuses (someone else acted first) stays a 409 that says why in words.
"""
import datetime as dt
import re

import sqlalchemy as sa

from callrec_plugin import training_library
from callrec_plugin.models import PatientMatch, RetentionExtension
from tests.conftest import valid_csrf_token
from tests.factories import add_recording
from tests.test_form_errors import Page, audit_head, outcomes_after, value_of
from tests.test_route_matrix import with_token


def send(app, client, url, data):
    return client.post(url, data=with_token(data, valid_csrf_token(app, client)))


def refused_beside(response, name, words):
    """The page of a 400 whose control ``name`` is marked invalid and described by an error saying ``words``."""
    body = response.get_data(as_text=True)
    assert response.status_code == 400, body[-2000:]
    assert "Not done" not in body and "Bad request" not in body
    page = Page(body)
    control = page.control(name)
    assert control.get("aria-invalid") == "true", control
    described = [page.texts.get(element_id, "") for element_id in control.get("aria-describedby", "").split()]
    assert any(words in text for text in described), (words, described)
    return page, body


def selected(body, name):
    """The value of the option selected in the <select> named ``name``."""
    select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', body, re.S).group(1)
    return re.search(r'<option[^>]*selected[^>]*value="([^"]*)"|<option[^>]*value="([^"]*)"[^>]*selected',
                     select).group(1, 2)


# -- keeping a call longer -----------------------------------------------------------------------------

def _extend(app, client, call, until, code, text=""):
    return send(app, client, f"/callrec/recordings/{call.id}/retention", {
        "callrec-extend-retain_until": until.strftime("%Y-%m-%d"), "callrec-extend-reason_code": code,
        "callrec-extend-reason": text})


def _nothing_extended(db_session, call, before, seq):
    db_session.expire_all()
    assert db_session.scalars(sa.select(RetentionExtension)).all() == []
    assert db_session.get(type(call), call.id).retain_until == before
    assert outcomes_after(db_session, seq) == ["denied"]  # audited once, as a refusal


def test_other_with_no_words_is_asked_for_beside_the_details(app, db_session, login):
    call = add_recording(db_session)
    before, seq = call.retain_until, audit_head(db_session)
    until = call.retain_until + dt.timedelta(days=30)
    response = _extend(app, login("owner"), call, until, "other", "   ")
    page, body = refused_beside(response, "callrec-extend-reason", 'the reason "other" needs words')
    assert value_of(page.control("callrec-extend-retain_until")) == until.strftime("%Y-%m-%d")
    assert "other" in selected(body, "callrec-extend-reason_code")
    _nothing_extended(db_session, call, before, seq)


def test_a_date_before_the_calls_retention_is_refused_beside_the_date(app, db_session, login):
    call = add_recording(db_session)
    before, seq = call.retain_until, audit_head(db_session)
    earlier = call.retain_until - dt.timedelta(days=30)
    response = _extend(app, login("owner"), call, earlier, "legal_advice", "solicitor's letter")
    page, body = refused_beside(response, "callrec-extend-retain_until", "choose a later date")
    assert f"already kept until {before:%d %b %Y}" in body
    assert value_of(page.control("callrec-extend-retain_until")) == earlier.strftime("%Y-%m-%d")
    assert value_of(page.control("callrec-extend-reason")) == "solicitor's letter"
    assert "legal_advice" in selected(body, "callrec-extend-reason_code")
    _nothing_extended(db_session, call, before, seq)


def test_a_date_past_the_cap_is_refused_beside_the_date(app, db_session, login):
    call = add_recording(db_session)
    before, seq = call.retain_until, audit_head(db_session)
    beyond = call.retain_until + dt.timedelta(days=300)
    response = _extend(app, login("manager"), call, beyond, "complaint_expected", "letter before claim")
    page, _body = refused_beside(response, "callrec-extend-retain_until", "to keep it longer, place a hold")
    assert value_of(page.control("callrec-extend-retain_until")) == beyond.strftime("%Y-%m-%d")
    assert value_of(page.control("callrec-extend-reason")) == "letter before claim"
    assert f"/callrec/recordings/{call.id}#callrec-retention" in page.links  # a way back without sending
    _nothing_extended(db_session, call, before, seq)


# -- proposing a call for training ---------------------------------------------------------------------

def test_a_training_note_the_library_refuses_is_said_beside_the_note(app, db_session, login, monkeypatch):
    """The form lets 500 characters through; the library's own limit decides (here lowered to show that
    its refusal, not the form's, comes back beside the note)."""
    monkeypatch.setattr(training_library, "MAX_NOTE", 10)
    call = add_recording(db_session, staff_user_ref="reception")
    seq = audit_head(db_session)
    note = "shows a calm handover"
    response = send(app, login("owner"), f"/callrec/recordings/{call.id}/training",
                    {"callrec-training-approve": "yes", "callrec-training-note": note})
    page, _body = refused_beside(response, "callrec-training-note", "The training note is at most 10 characters.")
    assert value_of(page.control("callrec-training-note")) == note
    assert value_of(page.control("callrec-training-approve")) == "yes"
    assert training_library.consent_for(call.id) is None
    assert outcomes_after(db_session, seq) == ["denied"]


def test_what_keeps_a_call_out_of_training_is_a_409_that_says_why(app, db_session, login):
    call = add_recording(db_session, staff_user_ref=None)
    response = send(app, login("owner"), f"/callrec/recordings/{call.id}/training", {"callrec-training-approve": "yes"})
    assert response.status_code == 409
    assert "nobody can be asked to consent" in response.get_data(as_text=True)


# -- linking a call to a patient -----------------------------------------------------------------------

def test_a_patient_not_of_the_practice_is_refused_beside_the_choice(app, db_session, login):
    call = add_recording(db_session, patient_ref=None)
    seq = audit_head(db_session)
    response = send(app, login("owner"), f"/callrec/recordings/{call.id}/match", {
        "q": "Ben", "callrec-match-patient_ref": "patB", "callrec-match-reason": "she gave her name"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400, body[-2000:]
    page = Page(body)
    assert 'aria-describedby="callrec-match-patient-errors"' in body  # the patients' fieldset
    assert page.texts["callrec-match-patient-errors"] == "There is no such patient in your practice."
    assert value_of(page.control("callrec-match-reason")) == "she gave her name"
    assert {c["value"] for c in page.controls if c["name"] == "q"} == {"Ben"}  # the search and the form's copy
    assert [c["value"] for c in page.controls if c["name"] == "callrec-match-patient_ref"]  # choose again
    db_session.expire_all()
    assert db_session.get(type(call), call.id).patient_ref is None
    assert outcomes_after(db_session, seq) == ["denied"]


def _linked(app, db_session, client):
    call = add_recording(db_session, patient_ref=None)
    assert send(app, client, f"/callrec/recordings/{call.id}/match", {
        "q": "Ben", "callrec-match-patient_ref": "pat2", "callrec-match-reason": "he gave his name"}).status_code == 302
    return call, db_session.scalar(sa.select(PatientMatch).where(PatientMatch.recording_id == call.id))


def test_a_blank_reason_to_undo_a_link_is_refused_by_the_service_beside_the_reason(app, db_session, login):
    client = login("owner")
    call, match = _linked(app, db_session, client)
    seq = audit_head(db_session)
    response = send(app, client, f"/callrec/matches/{match.id}/undo", {"callrec-undo-reason": "   "})
    page, _body = refused_beside(response, "callrec-undo-reason", "Say why the link is wrong.")
    assert value_of(page.control("callrec-undo-reason")) == "   "
    db_session.expire_all()
    assert db_session.get(type(call), call.id).patient_ref == "pat2"
    assert outcomes_after(db_session, seq) == ["denied"]


def test_a_blank_reason_to_reject_a_proposal_is_refused_beside_the_reason(app, db_session, login):
    call = add_recording(db_session, patient_ref=None)
    proposal = PatientMatch(recording_id=call.id, practice_ref="pA", patient_ref="pat2", status="proposed",
                            reason="number now on the patient's record")
    db_session.add(proposal)
    db_session.commit()
    response = send(app, login("manager"), f"/callrec/matches/{proposal.id}/reject", {"callrec-proposal-reason": " "})
    page, _body = refused_beside(response, "callrec-proposal-reason", "Say why this is not the patient's call.")
    assert "/callrec/calls" in page.links
    db_session.expire_all()
    assert db_session.get(PatientMatch, proposal.id).status == "proposed"


def test_a_link_someone_else_undid_first_is_a_409_that_says_so(app, db_session, login):
    client = login("owner")
    _call, match = _linked(app, db_session, client)
    assert send(app, client, f"/callrec/matches/{match.id}/undo", {"callrec-undo-reason": "wrong Ben"}).status_code == 302
    again = send(app, login("manager"), f"/callrec/matches/{match.id}/undo", {"callrec-undo-reason": "wrong Ben"})
    assert again.status_code == 409
    assert "This link has already been undone or changed." in again.get_data(as_text=True)
