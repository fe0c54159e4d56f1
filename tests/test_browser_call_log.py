"""Chromium journey through the call log: the manager finds an unknown caller's call by time of day and
number ending, plays it for a purpose, matches it to the right patient, and finds it on their panel."""
import datetime as dt
import io
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from tests.audio_samples import wav_bytes
from tests.test_browser import browser, demo_server, page, pytestmark, sign_in  # noqa: F401 (fixtures)

LONDON = ZoneInfo("Europe/London")


def _unknown_callers_call(app):
    """An incoming call yesterday at 15:20 London time from a number no patient has."""
    from callrec_plugin.ingest import ingest_audio
    from examples.practice_host.models import Patient, db

    yesterday = dt.datetime.now(LONDON).date() - dt.timedelta(days=1)
    started = dt.datetime.combine(yesterday, dt.time(15, 20), tzinfo=LONDON)
    with app.app_context():
        result = ingest_audio(io.BytesIO(wav_bytes(seconds=4)), practice_ref="p1", started_at=started,
                              direction="inbound", from_number="+447700900555", to_number="201",
                              source="browser-test", source_ref="unknown-caller-1")
        patient = db.session.scalars(sa.select(Patient).where(Patient.practice_id == "p1")
                                     .order_by(Patient.id)).first()
        return result.recording_id, patient.id, patient.last_name, yesterday.isoformat()


def test_manager_finds_plays_and_matches_an_unknown_callers_call(demo_server, page):  # noqa: F811
    app, base = demo_server
    recording_id, patient_ref, surname, day = _unknown_callers_call(app)
    sign_in(page, base, "manager")
    page.goto(f"{base}/callrec/calls")
    page.get_by_label("From (date)").fill(day)
    page.get_by_label("To (date)").fill(day)
    page.get_by_label("From (time of day)").fill("15:00")
    page.get_by_label("To (time of day)").fill("15:59")
    page.get_by_label("Number, or its last digits").fill("…0555")
    page.get_by_label("Only calls matched to no patient").check()
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    rows = page.locator("table.callrec-table tbody tr")
    assert rows.count() == 1, page.content()[:2000]
    assert "+447700900555" in rows.first.inner_text()

    rows.first.locator("td:first-child a").click()
    page.wait_for_load_state()
    page.get_by_label("Purpose of listening").select_option("compliance")
    page.get_by_role("button", name="Listen").click()
    page.wait_for_load_state()
    duration = page.locator("audio").evaluate("""audio => new Promise((resolve, reject) => {
        if (audio.readyState >= 1) return resolve(audio.duration);
        audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
        audio.addEventListener('error', () => reject(audio.error && audio.error.code));
        audio.load();
    })""")
    assert duration > 3

    page.goto(f"{base}/callrec/calls?number=0555&no_patient=y")
    page.get_by_role("link", name="Match to a patient").click()
    page.wait_for_load_state()
    page.get_by_label("Find the patient by name, date of birth or number").fill(surname)
    page.get_by_role("button", name="Find").click()
    page.wait_for_load_state()
    page.locator(f"input[type=radio][value='{patient_ref}']").check()
    page.get_by_label("How do you know this call is theirs?").fill("Caller gave name and date of birth")
    page.get_by_role("button", name="Link this call to the patient").click()
    page.wait_for_load_state()
    assert "The call is now on the patient's record." in page.content()

    page.goto(f"{base}/patients/{patient_ref}")
    assert page.locator(f"section.callrec-panel a[href$='/callrec/recordings/{recording_id}']").count() == 1
