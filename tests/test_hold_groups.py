"""Holds as people think of them: one request is one row with its calls inside, found by patient and
date, filtered by kind, status and patient, released as one (by two different people where required)."""
import datetime as dt
import re

import sqlalchemy as sa

from callrec_plugin import holds
from callrec_plugin.identity import Actor
from callrec_plugin.models import AuditEvent, Hold, utcnow
from tests import hostapp
from tests.factories import add_recording
from tests.test_evidence_and_holds import post

MANAGER = Actor(user=None, ref="manager", name="Manager", roles=frozenset({"manager"}), practice_ref="pA")


def active(db_session):
    db_session.expire_all()
    return db_session.scalars(sa.select(Hold).where(Hold.released_at.is_(None))).all()


def rows(page):
    return page.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")


def test_a_patients_regulator_hold_is_one_row_released_by_two_people_at_once(app, db_session, login):
    now = utcnow()
    calls = [add_recording(db_session, patient_ref="pat1", started_at=now - dt.timedelta(days=d)) for d in (2, 9, 30)]
    add_recording(db_session, patient_ref="pat2")
    owner, manager = login("owner"), login("manager")
    placed = post(app, owner, "/callrec/holds", {
        "callrec-hold-scope": "patient", "callrec-hold-patient_name": "Ada", "callrec-hold-kind": "regulator",
        "callrec-hold-reason": "CQC inspection", "callrec-hold-external_reference": "CQC-77"})
    assert placed.status_code == 302
    held = active(db_session)
    assert {h.recording_id for h in held} == {c.id for c in calls}
    assert {h.placed_by_name for h in held} == {"Owner"} and len({h.group_id for h in held}) == 1

    page = owner.get("/callrec/holds").get_data(as_text=True)
    assert rows(page) == 1 and "Ada Patient" in page and "by Owner" in page and "3 calls" in page
    assert page.count("<li><a href=\"/callrec/recordings/") == 3  # the calls, inside the row's <details>
    assert "Approve release (1 of 2) of 3 calls" in page

    assert post(app, owner, f"/callrec/holds/{held[0].id}/release", {}).status_code == 302
    assert len(active(db_session)) == 3
    mine = owner.get("/callrec/holds").get_data(as_text=True)
    assert "A second, different person must approve releasing" in mine and "Approve release" not in mine
    theirs = manager.get("/callrec/holds").get_data(as_text=True)
    assert "First approval: Owner" in theirs and "Approve release (2 of 2) of 3 calls" in theirs

    assert post(app, manager, f"/callrec/holds/{held[1].id}/release", {}).status_code == 302
    assert active(db_session) == []
    released = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "hold_released")).all()
    assert sorted(e.recording_id for e in released) == sorted(c.id for c in calls)
    assert {e.actor_ref for e in released} == {"manager"}
    assert {h.released_by_name for h in db_session.scalars(sa.select(Hold))} == {"Manager"}
    # The audit trail filtered by the patient finds both approvals of the release.
    approvals = db_session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action.in_(["hold_release_requested", "hold_released"]))).all()
    assert len(approvals) == 6 and {e.patient_ref for e in approvals} == {"pat1"}


def test_a_single_approver_request_is_released_with_one_click(app, db_session, login):
    calls = [add_recording(db_session, patient_ref="pat2") for _ in range(2)]
    with app.test_request_context():
        placed = holds.place_holds(MANAGER, calls, "investigation", "staff conduct")
    db_session.commit()
    assert post(app, login("owner"), f"/callrec/holds/{placed[0].id}/release", {}).status_code == 302
    assert active(db_session) == []


def test_filters_by_kind_status_and_patient_by_name(app, db_session, login):
    ada, ben = add_recording(db_session, patient_ref="pat1"), add_recording(db_session, patient_ref="pat2")
    with app.test_request_context():
        holds.place_holds(MANAGER, [ada], "investigation", "INV-ADA")
        law = holds.place_holds(MANAGER, [ben], "law_enforcement", "LAW-BEN")
        old = holds.place_holds(MANAGER, [ben], "investigation", "OLD-BEN")
        holds.approve_group_release(MANAGER, law[0])
        holds.approve_group_release(MANAGER, old[0])
    db_session.commit()
    owner = login("owner")

    def reasons(query):
        page = owner.get(f"/callrec/holds?{query}").get_data(as_text=True)
        return sorted(re.findall(r"(?:INV-ADA|LAW-BEN|OLD-BEN)", page.split("<tbody>")[1].split("</tbody>")[0]))

    assert reasons("") == ["INV-ADA", "LAW-BEN"]
    assert reasons("kind=law_enforcement") == ["LAW-BEN"]
    assert reasons("status=release_requested") == ["LAW-BEN"]
    assert reasons("status=released") == ["OLD-BEN"]
    assert reasons("patient=ben") == ["LAW-BEN"]
    unknown = owner.get("/callrec/holds?patient=Nobody")
    assert unknown.status_code == 400
    assert re.search(r'id="patient-errors"[^>]*>No patient of your practice matches this', unknown.get_data(as_text=True))


def test_the_form_finds_calls_by_patient_and_date_not_by_id(app, db_session, login):
    now = utcnow()
    wanted = add_recording(db_session, patient_ref="pat1", started_at=now - dt.timedelta(days=4))
    add_recording(db_session, patient_ref="pat1", started_at=now - dt.timedelta(days=20))
    owner = login("owner")
    day = (now - dt.timedelta(days=4)).strftime("%Y-%m-%d")
    found = post(app, owner, "/callrec/holds", {
        "callrec-hold-find": "1", "callrec-hold-scope": "recording", "callrec-hold-patient_name": "ada",
        "callrec-hold-call_date": day, "callrec-hold-reason": "kept"})
    page = found.get_data(as_text=True)
    assert found.status_code == 200 and active(db_session) == []  # finding holds nothing
    assert re.findall(r'name="callrec-hold-recording_id" value="(\w+)"', page) == [wanted.id]
    assert "Calls of Ada Patient" in page and "kept</textarea>" in page  # the reason typed is kept
    chosen = post(app, owner, "/callrec/holds", {
        "callrec-hold-scope": "recording", "callrec-hold-patient_ref": "pat1", "callrec-hold-recording_id": wanted.id,
        "callrec-hold-kind": "investigation", "callrec-hold-reason": "kept"})
    assert chosen.status_code == 302 and [h.recording_id for h in active(db_session)] == [wanted.id]

    missing = post(app, owner, "/callrec/holds", {
        "callrec-hold-scope": "recording", "callrec-hold-patient_name": "ada", "callrec-hold-kind": "investigation",
        "callrec-hold-reason": "no call chosen"})
    text = missing.get_data(as_text=True)
    assert missing.status_code == 400
    assert re.search(r'id="callrec-hold-recording_id-errors"[^>]*>Choose the call', text)
    assert "no call chosen" in text  # the reason the person typed is kept


def test_reversed_dates_are_an_error_beside_the_end_date(app, db_session, login):
    response = post(app, login("owner"), "/callrec/holds", {
        "callrec-hold-scope": "range", "callrec-hold-start": "2026-05-10", "callrec-hold-end": "2026-05-01",
        "callrec-hold-kind": "investigation", "callrec-hold-reason": "range"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'id="callrec-hold-end-errors"[^>]*>The end date is before the start date', page)
    assert "callrec-hold-reason-errors" not in page and 'value="2026-05-10"' in page


def test_who_placed_a_hold_reads_by_name_after_they_left(app, db_session, login):
    call = add_recording(db_session)
    departed = Actor(user=None, ref="staff-3", name="Dana Departed", roles=frozenset({"manager"}), practice_ref="pA")
    with app.test_request_context():
        holds.place_holds(departed, [call], "investigation", "still held")
    db_session.commit()
    assert hostapp.db.session.get(hostapp.User, "staff-3") is None  # the host no longer knows them
    page = login("owner").get("/callrec/holds").get_data(as_text=True)
    assert "by Dana Departed" in page and "staff-3" not in page


def test_the_form_script_is_served_and_the_page_works_without_it(app, db_session, login):
    script = login("owner").get("/callrec/static/callrec-holds.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    page = login("owner").get("/callrec/holds").get_data(as_text=True)
    assert "<script src=\"/callrec/static/callrec-holds.js\" defer></script>" in page
    assert 'data-callrec-scope="range"' in page and " hidden" not in page.split('id="place-hold"')[1]


def test_a_calls_place_a_hold_link_arrives_with_that_call_chosen(app, db_session, login):
    call = add_recording(db_session, patient_ref="pat2")
    page = login("owner").get(f"/callrec/holds?recording_id={call.id}").get_data(as_text=True)
    assert "Patient: <strong>Ben Patient</strong>" in page
    assert re.search(rf'name="callrec-hold-recording_id" value="{call.id}" checked', page)
    assert '<option selected value="recording">One call</option>' in page
