"""How a few pages read: a call's retention said once, typed notes with their line breaks, and a
breadcrumb on every callrec page (top-level ones too)."""
import datetime as dt
import re

from callrec_plugin import holds
from callrec_plugin.identity import Actor
from callrec_plugin.models import HoldKind, SubjectAccessRequest, utcnow
from callrec_plugin.subject_access import due_date
from tests.factories import add_recording
from tests.test_evidence_and_holds import post

MANAGER = Actor(user=None, ref="manager", name="Manager", roles=frozenset({"manager"}), practice_ref="pA")


def _hold(app, db_session, call, kind, reason="look into it", **fields):
    with app.test_request_context():
        holds.place_holds(MANAGER, [call], kind, reason, **fields)
    db_session.commit()


def retention_line(client, call):
    """The call page's "Retention" entry, as one line of text (tags and runs of spaces taken out)."""
    page = client.get(f"/callrec/recordings/{call.id}").get_data(as_text=True)
    cell = re.search(r"<dt>Retention</dt><dd>(.*?)</dd>", page, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", cell).split())


def test_a_calls_retention_is_said_once_whatever_keeps_it(app, db_session, login):
    owner = login("owner")
    one_kind, two_kinds, days_left, due, extended = (add_recording(db_session) for _ in range(5))
    _hold(app, db_session, one_kind, HoldKind.INVESTIGATION)
    _hold(app, db_session, two_kinds, HoldKind.INVESTIGATION)
    _hold(app, db_session, two_kinds, HoldKind.REGULATOR, external_reference="CQC-1")
    due.retain_until = utcnow() - dt.timedelta(hours=1)
    db_session.commit()
    until = extended.retain_until + dt.timedelta(days=30)
    assert post(app, owner, f"/callrec/recordings/{extended.id}/retention", {
        "callrec-extend-retain_until": until.strftime("%Y-%m-%d"), "callrec-extend-reason_code": "legal_advice",
        "callrec-extend-reason": ""}).status_code == 302

    assert retention_line(owner, one_kind) == "Held: investigation"
    assert retention_line(owner, two_kinds) == "Held: investigation Held: regulator"
    left = (days_left.retain_until - utcnow()).days + 1
    assert retention_line(owner, days_left) == f"Deleted in {left} days (within the retention period)"
    assert retention_line(owner, due) == "Due for deletion (past retention and not held)"
    assert re.fullmatch(rf"Deleted in \d+ days \(within the retention period, extended to {until:%d %b %Y}\)",
                        retention_line(owner, extended))
    # Who may not know a hold's kind sees only that the call is held, once.
    assert retention_line(login("reception"), one_kind) == "Held"


def test_typed_notes_keep_their_line_breaks(app, db_session, login):
    call = add_recording(db_session, retain_until=utcnow() - dt.timedelta(days=1))  # past its date: held
    _hold(app, db_session, call, HoldKind.INVESTIGATION, reason="First line\nsecond line")
    owner = login("owner")
    assert "First line<br>second line" in owner.get("/callrec/holds").get_data(as_text=True)
    assert "First line<br>second line" in owner.get("/callrec/retention").get_data(as_text=True)

    received = utcnow().date()
    entry = SubjectAccessRequest(practice_ref="pA", patient_ref="pat1", received_on=received,
                                 identity_method="Passport seen\nand a bank statement", identity_verified_by="Rita",
                                 due_on=due_date(received), registered_by_ref="dpo", registered_at=utcnow())
    db_session.add(entry)
    db_session.commit()
    page = login("dpo").get(f"/callrec/subject-access/{entry.id}").get_data(as_text=True)
    assert "Passport seen<br>and a bank statement (by Rita)" in page


def breadcrumb(page):
    trail = re.search(r'<nav class="callrec-breadcrumbs[^"]*" aria-label="Breadcrumb">(.*?)</nav>', page, re.S)
    assert trail, "no breadcrumb"
    items = re.findall(r"<li( aria-current=\"page\")?>(.*?)</li>", trail.group(1), re.S)
    return [(" ".join(re.sub(r"<[^>]+>", "", text).split()), bool(current)) for current, text in items]


def test_top_level_pages_have_a_breadcrumb_from_home(app, db_session, login):
    owner = login("owner")
    for path, title in (("/callrec/holds", "Holds"), ("/callrec/retention", "Retention"),
                        ("/callrec/calls", "Call log"), ("/callrec/audit", "Call audit trail")):
        assert breadcrumb(owner.get(path).get_data(as_text=True)) == [("Home", False), (title, True)], path
    page = owner.get("/callrec/holds").get_data(as_text=True)
    assert '<li><a href="/">Home</a></li>' in page


def test_a_call_sits_under_its_patient_and_a_calls_page_under_the_call(app, db_session, login):
    call = add_recording(db_session, patient_ref=None)
    owner = login("owner")
    on = call.started_at.strftime("%d %b %Y %H:%M")
    assert breadcrumb(owner.get(f"/callrec/recordings/{call.id}").get_data(as_text=True)) == [
        ("Home", False), (f"Call on {on}", True)]
    assert breadcrumb(owner.get(f"/callrec/recordings/{call.id}/match").get_data(as_text=True)) == [
        ("Home", False), (f"Call on {on}", False), ("Match a call to a patient", True)]


def test_a_form_shown_again_sits_under_the_page_it_was_sent_from(app, db_session, login):
    from tests.conftest import valid_csrf_token

    call = add_recording(db_session)
    owner = login("owner")
    response = owner.post(f"/callrec/recordings/{call.id}/retention", data={
        "callrec-extend-csrf_token": valid_csrf_token(app, owner), "callrec-extend-retain_until": "not a date",
        "callrec-extend-reason_code": "other", "callrec-extend-reason": "x"})
    assert response.status_code == 400
    trail = breadcrumb(response.get_data(as_text=True))
    assert trail[0] == ("Home", False) and trail[-1] == ("Keep the call longer", True)
    assert ("The call&#39;s page", False) in trail  # escaped as any text
