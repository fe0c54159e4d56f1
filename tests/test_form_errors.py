"""Every callrec form a person types into: an invalid submission comes back as the same form, the error
beside the field (in the element its aria-describedby names), what was typed still in the field, a
4xx status, a way back, and nothing changed (no "done" or "allowed" in the audit trail).

The forms are found from the app's url_map (every POST route of the callrec blueprint): a new one
fails test_every_post_route_is_a_typed_form_case_or_listed until it is given a case below or listed in
BUTTONS (a form with nothing to type). Signed machine APIs under /callrec/api/ are not people's forms.
What the service layer refuses in a form that was valid comes back the same way:
tests/test_service_refusals_in_forms.py.
"""
import datetime as dt
import html
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from callrec_plugin.models import AuditEvent, ComplaintLink, ErasureRequest, utcnow
from tests import hostapp
from tests.conftest import valid_csrf_token
from tests.factories import add_recording
from tests.test_route_matrix import FORMS, build_world, url_for_case, with_token

API_PREFIX = "/callrec/api/"

# Forms with nothing to type: a button, its choice carried by the button. An expired one still says
# how to recover (test_an_expired_button_form_says_how_to_recover), with the user who may press it.
BUTTONS = {
    "callrec.release_hold": "owner",
    "callrec.approve_erasure_view": "owner",  # the request in the world is the manager's
    "callrec.acknowledge_assessment": "reception",
    "callrec.answer_training_request": "reception",
    "callrec.open_spot_check": "owner",
    "callrec.training_listen": "trainer",
    "callrec.retry_job": "owner",
    "callrec.approve_disclosure": "owner",
    "callrec.confirm_match_view": "owner",
    "callrec.flag_card_payment": "reception",
    "callrec.request_export": "dpo",  # the register's "Build the bundle" button
}


def too_long(limit):
    """A value one character over ``limit``, recognisable when it comes back."""
    return ("Typed by a person, kept. " * (limit // 20 + 2))[:limit + 1]


@dataclass
class Case:
    user: str
    field: str  # the control's name in the form
    value: str  # what is sent in it: not valid
    error: str  # words of the error shown beside it
    back: str | None = None  # the page the form came from, linked from the page shown again
    extra: dict = field(default_factory=dict)  # more fields sent (else the route matrix's valid form)


LONGER = "cannot be longer than"
CASES = {
    "callrec.create_grant": Case("owner", "justification", too_long(2000), LONGER),
    "callrec.record_objection": Case("reception", "callrec-objection-note", too_long(1000), LONGER,
                                     back="/patients/pat1"),
    "callrec.withdraw_objection": Case("reception", "callrec-withdraw-reason", too_long(500), LONGER,
                                       back="/patients/pat1"),
    "callrec.attach_call": Case("handler", "callrec-attach-note", too_long(500), LONGER, back="/complaints/cX"),
    "callrec.detach_call": Case("handler", "callrec-detach-reason", too_long(500), LONGER, back="/complaints/cX"),
    "callrec.place_hold": Case("owner", "callrec-hold-reason", too_long(2000), LONGER),
    "callrec.extend_retention_view": Case("owner", "callrec-extend-reason", too_long(500), LONGER),
    "callrec.request_erasure_view": Case("owner", "callrec-erasure-reason", too_long(2000), LONGER),
    "callrec.training_approval": Case("owner", "callrec-training-note", too_long(500), LONGER),
    "callrec.create_assessment": Case("owner", "callrec-assess-notes", too_long(4000), LONGER),
    "callrec.respond_to_assessment": Case("reception", "callrec-response-response", too_long(4000), LONGER,
                                          back="/callrec/assessments"),
    "callrec.sampling_plan": Case("owner", "calls_per_staff", "999", "between", back="/callrec/spot-checks"),
    "callrec.edit_rubric": Case("owner", "label", too_long(200), LONGER, back="/callrec/rubric"),
    "callrec.request_disclosure": Case("dpo", "reference", too_long(128), LONGER),
    "callrec.refuse_disclosure": Case("owner", "reason", too_long(500), LONGER),
    "callrec.redact_recording": Case("owner", "callrec-redact-start", "1:05.5 and a bit more", LONGER),
    "callrec.register_subject_access": Case("dpo", "identity_verified_by", too_long(128), LONGER),
    "callrec.extend_subject_access": Case("dpo", "reason", too_long(2000), LONGER),
    "callrec.match_call_view": Case("owner", "callrec-match-reason", too_long(500), LONGER, extra={"q": "Ben"}),
    "callrec.undo_match_view": Case("owner", "callrec-undo-reason", too_long(500), LONGER),
    "callrec.reject_match_view": Case("owner", "callrec-proposal-reason", too_long(500), LONGER,
                                      back="/callrec/calls"),
}


def _post_routes():
    app = hostapp.create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    return {rule.endpoint: rule for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("callrec.") and "POST" in rule.methods}


POST_ROUTES = _post_routes()
PEOPLES_FORMS = {endpoint for endpoint, rule in POST_ROUTES.items() if not rule.rule.startswith(API_PREFIX)}


def test_every_post_route_is_a_typed_form_case_or_listed():
    assert PEOPLES_FORMS - set(CASES) - set(BUTTONS) == set(), "give each new form a case in CASES or BUTTONS"
    assert set(CASES) & set(BUTTONS) == set()
    assert set(CASES) | set(BUTTONS) <= PEOPLES_FORMS, "a case names a route that is gone"


class Page(HTMLParser):
    """The controls (by name) and the text of every element with an id, of one HTML page."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.controls, self.texts, self._open, self._textarea = [], {}, [], None
        self.links = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("input", "textarea", "select") and attrs.get("name"):
            control = {"tag": tag, **attrs, "text": ""}
            self.controls.append(control)
            if tag == "textarea":
                self._textarea = control
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if attrs.get("id") and tag not in ("input", "br", "img"):
            self._open.append([tag, attrs["id"], ""])

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        if self._open and self._open[-1][0] == tag:
            _tag, element_id, text = self._open.pop()
            self.texts[element_id] = text

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea["text"] += data
        for element in self._open:
            element[2] += data

    def control(self, name):
        """The control named ``name`` that the page marks invalid (else the only one of that name)."""
        named = [c for c in self.controls if c["name"] == name]
        invalid = [c for c in named if c.get("aria-invalid") == "true"]
        assert invalid or len(named) == 1, (name, named)
        return (invalid or named)[0]


def value_of(control):
    if control["tag"] == "textarea":
        return control["text"].lstrip("\r\n")
    return control.get("value", "")


def audit_head(session):
    session.expire_all()
    return session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0


def outcomes_after(session, seq):
    session.expire_all()
    return [e.outcome for e in session.scalars(sa.select(AuditEvent).where(AuditEvent.seq > seq))]


def _url(endpoint, world, session):
    if endpoint == "callrec.match_call_view":  # a call with no patient yet: the form to link one is shown
        return f"/callrec/recordings/{add_recording(session, patient_ref=None).id}/match"
    return url_for_case(endpoint, world, "own")


@pytest.mark.parametrize("endpoint", sorted(CASES))
def test_an_invalid_submission_shows_the_form_again_with_the_error_beside_the_field(
        app, db_session, login, world, endpoint):
    case = CASES[endpoint]
    client = login(case.user)
    url = _url(endpoint, world, db_session)
    data = {**FORMS[endpoint](world, "own", case.user), **case.extra, case.field: case.value}
    before = audit_head(db_session)
    response = client.post(url, data=with_token(data, valid_csrf_token(app, client)))
    body = response.get_data(as_text=True)

    assert response.status_code == 400, (endpoint, response.status_code, body[-2000:])
    page = Page(body)
    control = page.control(case.field)
    assert control.get("aria-invalid") == "true", (endpoint, control)
    described = [page.texts.get(element_id, "") for element_id in control.get("aria-describedby", "").split()]
    assert any(case.error in text for text in described), (endpoint, control.get("aria-describedby"), described)
    assert value_of(control) == case.value, (endpoint, value_of(control)[:80])
    assert "Bad request" not in body
    if case.back:
        assert case.back in page.links, (endpoint, page.links)
    assert set(outcomes_after(db_session, before)) <= {"denied"}, endpoint  # nothing done, nothing allowed


@pytest.fixture
def world(request, app, db_session):
    return build_world(app, db_session, request.node.callspec.params["endpoint"])


@pytest.mark.parametrize("endpoint", sorted(BUTTONS) + ["callrec.detach_call"])
def test_an_expired_form_says_how_to_recover(app, db_session, login, world, endpoint):
    """No CSRF token (the form was open too long, or the user signed in again): refused before the view,
    nothing done, and the page says so and leads back to the page the form was on."""
    user = BUTTONS.get(endpoint) or CASES[endpoint].user
    client = login(user)
    before = audit_head(db_session)
    came_from = "http://localhost/callrec/holds"
    response = client.post(url_for_case(endpoint, world, "own"), data=FORMS[endpoint](world, "own", user),
                           headers={"Referer": came_from})
    body = response.get_data(as_text=True)
    assert response.status_code == 400, (endpoint, response.status_code, body[-1500:])
    assert "This form had expired" in body and "send it again" in body and "Bad request" not in body
    assert came_from in Page(body).links
    assert outcomes_after(db_session, before) == [], endpoint  # refused before anything was looked at


def test_a_hidden_field_error_is_said_above_the_form_and_the_page_leads_back(app, db_session, login):
    """Withdrawing with no objection named: the error belongs to no field a person sees, so it is said
    above the form; the reason typed is kept and the page leads back to the patient."""
    client = login("reception")
    response = client.post("/callrec/patients/pat1/objections/withdraw", data=with_token(
        {"callrec-withdraw-objection_id": "", "callrec-withdraw-reason": "agrees now"}, valid_csrf_token(app, client)))
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and "Bad request" not in body
    assert 'role="alert"' in body and "Choose the objection to withdraw." in body
    page = Page(body)
    assert page.control("callrec-withdraw-reason")["value"] == "agrees now" and "/patients/pat1" in page.links


def test_an_empty_detach_reason_is_asked_for_beside_its_field(app, db_session, login):
    call = add_recording(db_session)
    db_session.add(ComplaintLink(recording_id=call.id, practice_ref="pA", complaint_ref="cX", linked_by_ref="handler"))
    db_session.commit()
    client = login("handler")
    response = client.post("/callrec/complaints/cX/links/detach", data=with_token(
        {"callrec-detach-recording_id": call.id, "callrec-detach-reason": ""}, valid_csrf_token(app, client)))
    page = Page(response.get_data(as_text=True))
    assert response.status_code == 400
    control = page.control("callrec-detach-reason")
    assert page.texts[control["aria-describedby"]] == "Give the reason."
    assert page.control("callrec-detach-recording_id")["value"] == call.id  # sent again with the reason
    assert "/complaints/cX" in page.links
    db_session.expire_all()
    assert db_session.scalars(sa.select(ComplaintLink)).one().unlinked_at is None


def test_an_empty_attach_note_is_asked_for_and_attach_and_detach_are_confirmed(app, db_session, login):
    call = add_recording(db_session, external_number="+447700900001")
    client = login("handler")

    def send(url, data):
        return client.post(url, data=with_token(data, valid_csrf_token(app, client)))

    empty = send("/callrec/complaints/cX/links", {"callrec-attach-recording_id": call.id, "callrec-attach-note": " "})
    assert empty.status_code == 400
    page = Page(empty.get_data(as_text=True))
    assert "Say what this call shows" in page.texts[page.control("callrec-attach-note")["aria-describedby"]]
    assert db_session.scalars(sa.select(ComplaintLink)).all() == []

    attached = send("/callrec/complaints/cX/links", {"callrec-attach-recording_id": call.id,
                                                     "callrec-attach-note": "the rude call"})
    assert attached.status_code == 302 and attached.headers["Location"] == "/complaints/cX"
    assert "The call is attached to the complaint as evidence." in client.get("/complaints/cX").get_data(as_text=True)
    detached = send("/callrec/complaints/cX/links/detach", {"callrec-detach-recording_id": call.id,
                                                            "callrec-detach-reason": "wrong call"})
    assert detached.status_code == 302
    after = client.get("/complaints/cX").get_data(as_text=True)
    assert "The call is detached from the complaint." in after
    assert "The call is detached" not in client.get("/complaints/cX").get_data(as_text=True)  # said once


def test_the_call_finder_says_reversed_dates_are_reversed_beside_the_date(app, db_session, login):
    add_recording(db_session, external_number="+447700900001")
    today = utcnow().date()
    body = login("handler").get(f"/complaints/cX?callrec_from={today}&callrec_to={today - dt.timedelta(days=7)}")
    page = Page(body.get_data(as_text=True))
    to = page.control("callrec_to")
    assert to.get("aria-invalid") == "true" and to["value"] == str(today - dt.timedelta(days=7))
    assert page.texts[to["aria-describedby"]] == "The end date is before the start date."
    assert "No other calls found" not in body.get_data(as_text=True)


def test_whoever_requested_an_erasure_is_told_why_they_cannot_approve_it(app, db_session, login):
    call = add_recording(db_session)
    db_session.add(ErasureRequest(recording_id=call.id, practice_ref="pA", reason="erasure request",
                                  requested_by_ref="manager"))
    db_session.commit()
    mine = login("manager").get("/callrec/retention").get_data(as_text=True)
    assert "Approve erasure" not in mine
    assert "You cannot approve this erasure: a second, different person must approve an erasure." in mine
    theirs = login("owner").get("/callrec/retention").get_data(as_text=True)
    assert "Approve erasure" in theirs and "You cannot approve" not in theirs


def test_a_refusal_the_service_finds_in_typed_text_is_shown_beside_the_field(app, db_session, login):
    """The rubric refuses an edit its own rules find wrong (here: an empty wording): said beside the field."""
    client = login("owner")
    response = client.post("/callrec/rubric", data=with_token({"op": "add", "label": "   "},
                                                              valid_csrf_token(app, client)))
    page = Page(response.get_data(as_text=True))
    assert response.status_code == 400
    assert page.texts[page.control("label")["aria-describedby"]] == "Give the criterion's wording."
    assert html.unescape("the rubric") in response.get_data(as_text=True)


# Posted forms written out by hand, each for a reason; their fields still go through field_row and
# form_problems of _fields.html. Every other posted form is rendered by its callrec_form macro.
HAND_WRITTEN_FORMS = {
    "assess.html": "a radio group per rubric criterion (the practice's own criteria, not WTForms fields)",
    "assessments.html": "the response's agree / disagree radio buttons",
    "holds.html": "the patients and calls the hold form found are radio buttons",
    "match.html": "the patients found are radio buttons",
    "recording.html": "the purpose form's Listen and Download buttons carry the action",
    "patient_panel.html": "one card-payment button per call sharing one token (the panel is on a hot path)",
}


def test_posted_forms_are_rendered_by_the_one_form_macro():
    from importlib.resources import files

    folder = files("callrec_plugin.templates").joinpath("callrec")
    posting = {path.name: path.read_text(encoding="utf-8") for path in folder.iterdir()
               if path.name.endswith(".html") and path.name != "_fields.html"
               and 'method="post"' in path.read_text(encoding="utf-8")}
    assert set(posting) == set(HAND_WRITTEN_FORMS), "render a new form with callrec_form (templates/callrec/_fields.html)"
    for name, text in posting.items():
        if name != "patient_panel.html":
            assert "field_row(" in text and "form_problems(" in text, name
