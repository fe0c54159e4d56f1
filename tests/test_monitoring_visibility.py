"""Monitoring is confidential: assessments, responses, training consent requests and the monthly summary
reach the owner, the manager and the member of staff concerned, and nobody else, on any page.

Every role of the test host and every other member of staff (a second receptionist, staff of another
practice) opens every page that could show them; each unique marker written into an assessment, a
response or a consent request is looked for in every answer. 0 leaks."""
import datetime as dt

import pytest
import sqlalchemy as sa

from callrec_plugin import spot_checks
from callrec_plugin.rubric import DEFAULT_CRITERIA
from tests import hostapp
from tests.conftest import valid_csrf_token
from tests.factories import add_recording

OCTOBER = dt.datetime(2026, 10, 14, 10, tzinfo=dt.timezone.utc)
# username -> what they may see: "A" (about reception), "B" (about reception3), "summary"
USERS = {
    "owner": {"A", "B", "summary"}, "manager": {"A", "B", "summary"},
    "reception": {"A"}, "reception3": {"B"},
    "handler": set(), "handler2": set(), "trainer": set(), "dpo": set(), "norole": set(),
    "ownerB": set(), "receptionB": set(),
}
MARKERS = {
    "A": ["CRIT-SECRET-A", "NOTE-SECRET-A", "RESPONSE-SECRET-A", "TRAIN-SECRET-A"],
    "B": ["CRIT-SECRET-B", "NOTE-SECRET-B", "TRAIN-SECRET-B"],
    # the practice's own figures (another practice's owner sees their own, empty, summary)
    "summary": ["October 2026", "Greeting and identification: Partly 2"],
}
# Audit actions about monitoring: never in the audit page or CSV of someone who may not see them.
MONITORING_ACTIONS = ("assessment_", "training_proposed", "training_consent", "spot_checks_drawn",
                      "sampling_plan_changed", "rubric_changed", "approve_training")


def post(app, client, url, data):
    token = valid_csrf_token(app, client)
    return client.post(url, data={"csrf_token": token, "callrec-assess-csrf_token": token,
                                  "callrec-response-csrf_token": token, "callrec-training-csrf_token": token, **data})


@pytest.fixture
def monitored(app, db_session, login):
    db_session.add(hostapp.User(id="reception3", name="Reception3", role="staff", practice="pA"))
    db_session.commit()
    calls = {who: add_recording(db_session, started_at=OCTOBER, staff_user_ref=staff, staff_name=staff.capitalize(),
                                patient_ref="pat2").id
             for who, staff in (("A", "reception"), ("B", "reception3"))}
    add_recording(db_session, practice_ref="pB", patient_ref="patB", started_at=OCTOBER, staff_user_ref="receptionB")
    with app.test_request_context():
        spot_checks.draw("pA", "2026-10")
        db_session.commit()
    manager, owner = login("manager"), login("owner")
    scores = {f"callrec-assess-score-{key}": "meets" for key, _ in DEFAULT_CRITERIA}
    for who, call in calls.items():
        assert post(app, manager, f"/callrec/recordings/{call}/spot-check", {}).status_code == 302
        assert post(app, manager, f"/callrec/recordings/{call}/assessments", {
            **scores, "callrec-assess-score-greeting": "partly", "callrec-assess-note-greeting": f"CRIT-SECRET-{who}",
            "callrec-assess-notes": f"NOTE-SECRET-{who}"}).status_code == 302
        assert post(app, owner, f"/callrec/recordings/{call}/training", {
            "callrec-training-approve": "yes", "callrec-training-note": f"TRAIN-SECRET-{who}"}).status_code == 302
    reception = login("reception")
    assessment_a = db_session.execute(sa.text("SELECT id FROM callrec_assessments WHERE recording_id = :r"),
                                      {"r": calls["A"]}).scalar()
    assert post(app, reception, f"/callrec/assessments/{assessment_a}/response", {
        "callrec-response-stance": "disagree", "callrec-response-response": "RESPONSE-SECRET-A"}).status_code == 302
    return calls


def pages(calls):
    return ["/callrec/assessments", "/callrec/spot-checks", "/callrec/monitoring-summary", "/callrec/rubric",
            "/callrec/training", "/callrec/audit", "/callrec/audit.csv", "/patients/pat2",
            *(f"/callrec/recordings/{call}" for call in calls.values()),
            *(f"/callrec/recordings/{call}/assess" for call in calls.values())]


def test_visibility_matrix_has_no_leaks(app, db_session, login, monitored):
    leaks, missing = [], []
    for user, allowed in USERS.items():
        client = login(user)
        seen = {}
        for url in pages(monitored):
            body = client.get(url).get_data(as_text=True)
            for scope, markers in MARKERS.items():
                for marker in markers:
                    if marker in body:
                        seen.setdefault(scope, set()).add(marker)
                        if scope not in allowed:
                            leaks.append((user, url, marker))
            if url.startswith("/callrec/audit") and "summary" not in allowed:
                leaks.extend((user, url, action) for action in MONITORING_ACTIONS if action in body)
        # what each may see is there: the owner and manager everything, each member of staff their own
        for scope in allowed:
            wanted = set(MARKERS[scope])
            if not wanted <= seen.get(scope, set()):
                missing.append((user, scope, sorted(wanted - seen.get(scope, set()))))
    assert leaks == [], f"{len(leaks)} leaks: {leaks[:10]}"
    assert missing == [], missing


def test_monitoring_pages_answer_403_to_everyone_but_owner_and_manager(app, db_session, login, monitored):
    practice_pages = ("/callrec/monitoring-summary", "/callrec/spot-checks", "/callrec/rubric")
    for user, allowed in USERS.items():
        client = login(user)
        monitoring_role = hostapp.USERS.get(user, ("staff",))[0] in ("owner", "manager")
        for url in practice_pages:  # each practice's owner and manager see their own practice's
            assert client.get(url).status_code == (200 if monitoring_role else 403), (user, url)
        status = client.get(f"/callrec/recordings/{monitored['A']}/assess").status_code
        assert status == (200 if "summary" in allowed else 404 if user.endswith("B") else 403), (user, status)
