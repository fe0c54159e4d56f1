"""The patient and complaint panels, and practice scoping of every recording lookup."""
import datetime as dt
import re

import sqlalchemy as sa

from callrec_plugin.models import AuditEvent, ComplaintLink, Hold, PatientObjection, utcnow
from tests.factories import add_recording


def test_patient_panel_lists_only_that_patients_calls_in_the_users_practice(app, db_session, login):
    mine = add_recording(db_session, patient_ref="pat1", staff_name="Rita Reception", duration_seconds=125)
    add_recording(db_session, patient_ref="pat2")
    add_recording(db_session, practice_ref="pB", patient_ref="pat1")  # same ref, other practice
    response = login("reception").get("/patients/pat1")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Calls <span class=\"callrec-count\">(1)</span>" in page
    assert f"/callrec/recordings/{mine.id}" in page
    assert "Rita Reception" in page and "2:05" in page and "Incoming" in page
    assert len(re.findall(r"/callrec/recordings/[\w-]+\"", page)) == 1


def test_panel_shows_days_until_purge_hold_badge_and_linked_complaint(app, db_session, login):
    now = utcnow()
    soon = add_recording(db_session, started_at=now - dt.timedelta(days=180))
    held = add_recording(db_session, started_at=now - dt.timedelta(days=170))
    db_session.add(ComplaintLink(recording_id=held.id, practice_ref="pA", complaint_ref="cX",
                                 linked_by_ref="handler", note="rude"))
    db_session.add(Hold(recording_id=held.id, practice_ref="pA", kind="complaint", complaint_ref="cX",
                        reason="complaint cX", placed_by_ref="handler"))
    db_session.commit()
    page = login("reception").get("/patients/pat1").get_data(as_text=True)
    assert "Deleted in 3 days" in page
    # need to know (issue 9): reception sees that the call is held, never why nor the complaint
    assert ">Held<" in page and "Held: complaint" not in page
    assert "Rude call" not in page
    assert soon.id in page
    page = login("owner").get("/patients/pat1").get_data(as_text=True)
    assert "Held: complaint" in page
    assert 'href="/complaints/cX">Rude call</a>' in page


def test_panel_pages_through_many_calls(app, db_session, login):
    app.config["CALLREC_PANEL_PAGE_SIZE"] = 5
    now = utcnow()
    for day in range(12):
        add_recording(db_session, started_at=now - dt.timedelta(days=day + 1))
    client = login("reception")
    first = client.get("/patients/pat1").get_data(as_text=True)
    third = client.get("/patients/pat1?callrec_page=3").get_data(as_text=True)
    second = client.get("/patients/pat1?callrec_page=2").get_data(as_text=True)
    # One row past the page tells whether an older page exists; the total is known on the last page.
    assert "Page 1" in first and "(more than 5)" in first and 'rel="next"' in first and 'rel="prev"' not in first
    assert "(more than 10)" in second and 'rel="next"' in second and 'rel="prev"' in second
    assert "Page 3" in third and "(12)" in third and 'rel="next"' not in third
    assert len(re.findall(r"<tr>", first)) == 1 + 5
    assert len(re.findall(r"<tr>", third)) == 1 + 2
    assert "Page 1" in client.get("/patients/pat1?callrec_page=bogus").get_data(as_text=True)
    past_the_end = client.get("/patients/pat1?callrec_page=9").get_data(as_text=True)
    assert "Page 3" in past_the_end and len(re.findall(r"<tr>", past_the_end)) == 1 + 2


def test_a_page_ending_exactly_at_the_last_call_has_no_older_link(app, db_session, login):
    app.config["CALLREC_PANEL_PAGE_SIZE"] = 5
    for day in range(10):
        add_recording(db_session, started_at=utcnow() - dt.timedelta(days=day + 1))
    second = login("reception").get("/patients/pat1?callrec_page=2").get_data(as_text=True)
    assert "(10)" in second and 'rel="next"' not in second and len(re.findall(r"<tr>", second)) == 1 + 5


def test_the_patient_panel_is_one_statement(app, db_session, login):
    from tests.statements import count_statements

    for day in range(30):
        add_recording(db_session, started_at=utcnow() - dt.timedelta(days=day + 1))
    db_session.add(PatientObjection(practice_ref="pA", patient_ref="pat1", recorded_by_ref="reception",
                                    recorded_by_name="Reception", note="asked not to be recorded"))
    db_session.commit()
    client = login("reception")
    client.get("/patients/pat1")  # warm: the host's own queries are not callrec's
    with count_statements(app, only="callrec_") as statements:
        page = client.get("/patients/pat1").get_data(as_text=True)
    assert "This patient does not wish to be recorded." in page and "(more than 20)" in page
    panel = [s for s in statements if "callrec_recordings" in s or "callrec_patient_objections" in s]
    assert len(panel) == 1, panel


def test_objection_banner_shows_on_the_panel(app, db_session, login):
    db_session.add(PatientObjection(practice_ref="pA", patient_ref="pat1", recorded_by_ref="reception",
                                    recorded_by_name="Reception", note="asked not to be recorded"))
    db_session.commit()
    page = login("reception").get("/patients/pat1").get_data(as_text=True)
    assert "This patient does not wish to be recorded." in page
    assert "This patient does not wish" not in login("reception").get("/patients/pat2").get_data(as_text=True)


def test_complaint_panel_lists_linked_calls(app, db_session, login):
    linked = add_recording(db_session)
    add_recording(db_session)
    db_session.add(ComplaintLink(recording_id=linked.id, practice_ref="pA", complaint_ref="cX",
                                 linked_by_ref="handler", linked_by_name="Handler", note="the rude call"))
    db_session.commit()
    page = login("handler").get("/complaints/cX").get_data(as_text=True)
    assert "Calls attached as evidence" in page and "(1)" in page
    assert linked.id in page and "the rude call" in page


def test_other_practices_recording_and_missing_id_get_identical_404s(app, db_session, login):
    theirs = add_recording(db_session, practice_ref="pB", patient_ref="patB")
    client = login("reception")
    for suffix in ("", "/audio", "/download"):
        other = client.get(f"/callrec/recordings/{theirs.id}{suffix}")
        missing = client.get(f"/callrec/recordings/NoSuchRecording0000000{suffix}")
        assert other.status_code == missing.status_code == 404
        assert other.get_data() == missing.get_data()
    denials = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert len(denials) == 6
    assert all(event.reason == "no such recording in the user's practice" for event in denials)
    assert all(event.practice_ref == "pA" and event.actor_ref == "reception" for event in denials)


def test_recording_page_shows_metadata_and_reception_cannot_reach_audio(app, db_session, login):
    recording = add_recording(db_session)
    client = login("reception")
    page = client.get(f"/callrec/recordings/{recording.id}")
    assert page.status_code == 200
    assert "Listen to this call" not in page.get_data(as_text=True)  # staff may not choose a purpose
    audio = client.get(f"/callrec/recordings/{recording.id}/audio")
    assert audio.status_code == 403
    assert audio.headers.get("Content-Type", "").startswith("text/html")
    events = db_session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [(e.action, e.outcome) for e in events] == [("view_metadata", "allowed"), ("play", "denied")]


def test_anonymous_users_are_sent_to_login(app, db_session):
    recording = add_recording(db_session)
    response = app.test_client().get(f"/callrec/recordings/{recording.id}")
    assert response.status_code in (302, 401)


def test_patient_panel_is_empty_for_another_practices_patient(app, db_session, login):
    add_recording(db_session, patient_ref="pat1")
    db_session.add(PatientObjection(practice_ref="pA", patient_ref="pat1", recorded_by_ref="reception"))
    db_session.commit()
    # The test host serves any patient page; callrec must still show nothing of another practice.
    page = login("receptionB").get("/patients/pat1").get_data(as_text=True)
    assert "callrec-panel" not in page and "objected" not in page.lower()
    assert "callrec-panel" in login("reception").get("/patients/pat1").get_data(as_text=True)
