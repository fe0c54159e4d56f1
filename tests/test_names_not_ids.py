"""Every callrec page a person reads names people, patients and the practice; the internal ids of staff
("staff-zq3"), patients ("pat-zq1") and practices ("pA") are only where a machine reads them (links, form
values, data attributes), never in the text a person reads or hears.

The pages are found from the app's url_map (every GET route of the callrec blueprint): a new route fails
test_every_get_route_is_checked_or_listed_as_skipped until it is given a page below or listed in SKIPPED
with why. Each page is opened, as the owner and as the manager, over a world holding every kind of row
callrec names a person or patient on, made by a member of staff who has since left (the host no longer
knows her; only the audit trail has her name) and by one nobody ever named.
"""
import datetime as dt
import io
import re
import zipfile
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from callrec_plugin import audit, exports, holds
from callrec_plugin.identity import Actor
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import (
    Assessment, ComplaintLink, ErasureRequest, Export, Hold, Job, PatientMatch, PatientObjection, Recording,
    Redaction, RetentionExtension, SpotCheck, SpotCheckDraw, SubjectAccessRequest, TrainingConsent, utcnow,
)
from callrec_plugin.roles import Action
from callrec_plugin.subject_access import due_date
from callrec_plugin.views import audit_log
from tests import hostapp
from tests.audio_samples import wav_bytes
from tests.factories import add_recording
from tests.subject_access_support import bundle_bytes
from tests.test_evidence_and_holds import post

PRACTICE = "pA"
# Rita has left: the host knows her no more, the audit trail still has her name. Nobody ever named Zed.
RITA = Actor(user=None, ref="staff-zq3", name="Rita Quist", roles=frozenset({"manager"}), practice_ref=PRACTICE)
MO = Actor(user=None, ref="staff-zq9", name="Mo Quinn", roles=frozenset({"manager"}), practice_ref=PRACTICE)
KIM = "staff-zq4"  # a receptionist the host knows: on the calls, assessed
ZED = "staff-zq5"
ADA, BEN = "pat-zq1", "pat-zq2"
COMPLAINT = "cmp-zq1"
STAFF_IDS = (RITA.ref, MO.ref, KIM, ZED)
PATIENT_IDS = (ADA, BEN)
# Ids that are words or letters of everyday text are checked as whole words, case and all.
WHOLE_WORD_IDS = (PRACTICE, "pB")
SEARCHED_IDS = STAFF_IDS + PATIENT_IDS + (COMPLAINT,)

# GET routes that are not pages a person reads, each with why.
SKIPPED = {
    "callrec.should_record": "signed JSON API asked by the phone system, not a person",
    "callrec.audit_csv": "a CSV for machines: its actor_ref and patient_ref columns are ids by design",
    "callrec.call_log_csv": "a CSV for machines: ids are columns by design",
    "callrec.export_download": "the bundle's ZIP: its cover note is checked in test_bundle_cover_notes_...",
    "callrec.export_status": "JSON progress for the export page's script",
    "callrec.recording_audio": "audio",
    "callrec.recording_download": "audio",
    "callrec.export_script": "static script",
    "callrec.holds_script": "static script",
    "callrec.player_script": "static script",
    "callrec.stylesheet": "static stylesheet",
}

# Each page a person reads: the URLs to open, made from the world's rows.
PAGES = {
    "callrec.assessments_page": lambda w: ["/callrec/assessments"],
    "callrec.audit_log": lambda w: ["/callrec/audit", "/callrec/audit?patient=Ada", "/callrec/audit?page_views=y"],
    "callrec.call_log_page": lambda w: ["/callrec/calls"],
    "callrec.disclosures_page": lambda w: ["/callrec/disclosures"],
    "callrec.disclosure_page": lambda w: [f"/callrec/disclosures/{w['disclosure']}"],
    "callrec.exports_page": lambda w: ["/callrec/exports"],
    "callrec.export_page": lambda w: [f"/callrec/exports/{export_id}" for export_id in w["exports"]],
    "callrec.holds_page": lambda w: ["/callrec/holds", "/callrec/holds?status=released", "/callrec/holds?patient=ben"],
    "callrec.jobs_page": lambda w: ["/callrec/jobs?refresh=off"],
    "callrec.monitoring_summary_page": lambda w: ["/callrec/monitoring-summary"],
    "callrec.recording_page": lambda w: [f"/callrec/recordings/{rid}" for rid in w["recordings"]],
    "callrec.assess_page": lambda w: [f"/callrec/recordings/{w['recordings'][0]}/assess"],
    "callrec.match_page": lambda w: [f"/callrec/recordings/{w['unmatched']}/match"],
    "callrec.retention_page": lambda w: ["/callrec/retention", f"/callrec/retention?patient={ADA}"],
    "callrec.rubric_page": lambda w: ["/callrec/rubric"],
    "callrec.spot_checks_page": lambda w: ["/callrec/spot-checks"],
    "callrec.unmapped_extensions_page": lambda w: ["/callrec/staff/unmapped"],
    "callrec.subject_access_page": lambda w: ["/callrec/subject-access"],
    "callrec.subject_access_entry": lambda w: [f"/callrec/subject-access/{w['subject_access']}"],
    "callrec.training_library_page": lambda w: ["/callrec/training"],
}
# The host's own pages with callrec's panels in them.
HOST_PAGES = [f"/patients/{ADA}", f"/patients/{BEN}", f"/complaints/{COMPLAINT}"]


def _get_routes():
    app = hostapp.create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    return {rule.endpoint for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("callrec.") and "GET" in rule.methods}


GET_ROUTES = _get_routes()


def test_every_get_route_is_checked_or_listed_as_skipped():
    assert set(PAGES) & set(SKIPPED) == set()
    assert GET_ROUTES - set(PAGES) - set(SKIPPED) == set(), "give each new page a URL in PAGES, or a reason in SKIPPED"
    assert set(PAGES) | set(SKIPPED) <= GET_ROUTES, "a page listed here is no longer a route"


# -- what a person reads -------------------------------------------------------------------------------

READ_ATTRIBUTES = ("aria-label", "title", "alt", "placeholder")  # read aloud or shown on hover


class VisibleText(HTMLParser):
    """The text of a page outside <script> and <style> (the <title> included: the tab shows it), with the
    attributes a screen reader reads out: what a person reads or hears."""

    def __init__(self):
        super().__init__()
        self.parts, self.skipping = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skipping += 1
        self.parts += [value for name, value in attrs if name in READ_ATTRIBUTES and value]

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def visible(html):
    parser = VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


def ids_in(text):
    """The internal ids that appear in ``text`` (whole ids only: "pA" in "pAge" is not one)."""
    found = [ref for ref in SEARCHED_IDS if re.search(rf"(?<![\w-]){re.escape(ref)}(?![\w-])", text, re.I)]
    return found + [ref for ref in WHOLE_WORD_IDS if re.search(rf"(?<![\w-]){re.escape(ref)}(?![\w-])", text)]


def test_the_check_finds_ids_and_leaves_words_alone():
    assert ids_in("by staff-zq3 on 1 Dec") == ["staff-zq3"] and ids_in("Patient PAT-ZQ1.") == ["pat-zq1"]
    assert ids_in("Practice: pA") == ["pA"] and ids_in("a pAge, a spa, PA") == []
    assert visible('<p title="pat-zq2">x<script>"staff-zq3"</script></p>') == "pat-zq2 x"


# -- the world -----------------------------------------------------------------------------------------


def _host_rows(session):
    session.add_all([
        hostapp.User(id=MO.ref, name=MO.name, role="manager", practice=PRACTICE),
        hostapp.User(id=KIM, name="Kim Quay", role="staff", practice=PRACTICE),
        hostapp.Patient(id=ADA, name="Ada Quill", practice=PRACTICE, phone="+447700900071"),
        hostapp.Patient(id=BEN, name="Ben Quarry", practice=PRACTICE, phone="+447700900072"),
        hostapp.Complaint(id=COMPLAINT, title="Late call back", practice=PRACTICE, patient_id=ADA,
                          handler_id="handler"),
    ])
    session.commit()


def _calls(session):
    """Ada's two calls with audio (her bundle needs them), Ben's, one nobody is matched to, one purged."""
    def stored(number, staff_ref, staff_name, days):
        return ingest_audio(io.BytesIO(wav_bytes(2.0)), practice_ref=PRACTICE,
                            started_at=utcnow() - dt.timedelta(days=days), direction="inbound",
                            from_number=number, to_number="201", source="t", source_ref=f"names-{days}",
                            staff_user_ref=staff_ref, staff_name=staff_name).recording_id

    ada = [session.get(Recording, stored("+447700900071", RITA.ref, None, 40)),
           session.get(Recording, stored("+447700900071", KIM, "Kim Quay", 3))]
    ada[0].staff_name = None  # Rita's name is not on the call: only the audit trail has it
    ben = add_recording(session, patient_ref=BEN, external_number="+447700900072", staff_user_ref=RITA.ref,
                        staff_name=None)
    unmatched = add_recording(session, patient_ref=None, external_number="+447700900072", staff_user_ref=ZED,
                              staff_name=None)
    purged = add_recording(session, patient_ref=ADA, status="purged", staff_user_ref=RITA.ref, staff_name=None)
    session.commit()
    return ada, ben, unmatched, purged


def _audit_trail(app, ada, ben):
    """Rita acted while she worked here (the only place her name is kept); events about each kind of object."""
    with app.test_request_context():
        audit.record(Action.PLAY, "allowed", actor=RITA, recording=ada[0], purpose="compliance", reason="listened")
        audit.record("objection_recorded", "done", actor=RITA, object_type="patient", object_id=ADA, patient_ref=ADA)
        audit.record("objection_withdrawn", "done", actor=RITA, object_type="patient", object_id=BEN,
                     patient_ref=BEN)
        audit.record("link", "done", actor=RITA, recording=ada[0], object_type="complaint", object_id=COMPLAINT)
        audit.record(Action.ATTACH, "denied", actor=MO, object_type="complaint", object_id=COMPLAINT,
                     reason="not the complaint's handler")
        audit.record(Action.ASSESS, "denied", actor=MO, object_type="sampling_plan", object_id=PRACTICE,
                     reason="refused")
        audit.record(Action.HOLD, "allowed", actor=MO, object_type="holds", object_id="list", reason="page")
        holds.place_holds(MO, [ben], "regulator", "inspection", "CQC-1")
        holds.approve_group_release(RITA, holds_of(ben)[0])  # a first approval, by the one who has left
        holds.place_holds(RITA, [ada[1]], "investigation", "closed matter")
        holds.approve_group_release(MO, holds_of(ada[1])[0])  # a released request


def holds_of(recording):
    return hostapp.db.session.scalars(sa.select(Hold).where(Hold.recording_id == recording.id)).all()


def _rows(session, ada, ben, unmatched, purged, month):
    """One of every row that names a person or a patient, made by Rita (named nowhere on the row) or Zed."""
    now = utcnow()
    session.add_all([
        PatientObjection(practice_ref=PRACTICE, patient_ref=ADA, recorded_by_ref=RITA.ref, note="no recording"),
        PatientObjection(practice_ref=PRACTICE, patient_ref=BEN, recorded_by_ref=RITA.ref, withdrawn_at=now,
                         withdrawn_by_ref=RITA.ref, withdrawal_reason="agrees now"),
        Hold(recording_id=ada[0].id, practice_ref=PRACTICE, kind="investigation", reason="Zed's hold",
             placed_by_ref=ZED),
        ComplaintLink(recording_id=ada[0].id, practice_ref=PRACTICE, complaint_ref=COMPLAINT, note="the call",
                      linked_by_ref=RITA.ref),
        Assessment(recording_id=ada[1].id, practice_ref=PRACTICE, staff_user_ref=KIM, assessor_ref=RITA.ref,
                   outcome="meets", notes="Kind\nand clear", response="First line\nsecond line",
                   response_stance="agree", responded_at=now),
        Assessment(recording_id=purged.id, practice_ref=PRACTICE, staff_user_ref=RITA.ref, assessor_ref=MO.ref,
                   outcome="partly"),
        TrainingConsent(recording_id=ben.id, practice_ref=PRACTICE, staff_user_ref=RITA.ref, status="requested",
                        training_note="good opening", proposed_by_ref=MO.ref, proposed_at=now),
        Redaction(recording_id=ada[0].id, practice_ref=PRACTICE, source="staff", reason="card_details",
                  requested='[["1/2", "1"]]', ranges='[[0.5, 1.0]]', status="done", actor_ref=RITA.ref, done_at=now),
        ErasureRequest(recording_id=ada[1].id, practice_ref=PRACTICE, reason="asked to be forgotten",
                       requested_by_ref=RITA.ref),
        RetentionExtension(recording_id=ada[0].id, practice_ref=PRACTICE, reason_code="other", reason_text="claim",
                           previous_until=ada[0].retain_until, new_until=ada[0].retain_until + dt.timedelta(days=30),
                           extended_by_ref=RITA.ref),
        PatientMatch(recording_id=unmatched.id, practice_ref=PRACTICE, patient_ref=BEN, status="proposed",
                     reason="number now on the patient's record"),
        Job(kind="reconcile", status="failed", error="boom", practice_ref=PRACTICE, requested_by_ref=RITA.ref),
        Job(kind="purge", status="finished", practice_ref=PRACTICE, requested_by_ref=ZED),
        Export(practice_ref=PRACTICE, kind="subject_access", patient_ref=BEN, requested_by_ref=RITA.ref,
               status="building", progress_done=1, progress_total=3),
    ])
    ada[1].card_payment_flagged_at, ada[1].card_payment_flagged_by_ref = now, RITA.ref
    draw = SpotCheckDraw(practice_ref=PRACTICE, month=month, seed="seed", calls_per_staff=3, inbound_only=False,
                         min_duration_seconds=0, drawn_by_ref=RITA.ref)
    session.add(draw)
    session.flush()
    session.add_all([SpotCheck(draw_id=draw.id, practice_ref=PRACTICE, recording_id=rid, staff_user_ref=staff,
                               staff_name="", population=4) for rid, staff in ((ada[0].id, RITA.ref), (ben.id, ZED))])
    session.commit()


def _requests(app, session, ada_call):
    """Ada's subject-access request and its built bundle; a disclosure of her calls, approved and built."""
    entry = SubjectAccessRequest(practice_ref=PRACTICE, patient_ref=ADA, received_on=utcnow().date(),
                                 identity_method="passport seen", identity_verified_by="Kim Quay",
                                 requester_reference="SAR-2026-07", due_on=due_date(utcnow().date()),
                                 registered_by_ref=RITA.ref, registered_by_name=RITA.name, registered_at=utcnow())
    session.add(entry)
    session.commit()
    entry_id = entry.id  # building a bundle ends the session: keep ids, not rows
    with app.test_request_context():
        export, _job = exports.request_subject_access(RITA, entry)
        export_id = export.id
        exports.build_export(export_id)
        disclosure = exports.request_disclosure(
            RITA, recipient="CQC, inspector Smith", recipient_kind="regulator",
            legal_basis="Health and Social Care Act 2008 s.64\nletter of 1 December", reference="CQC-7",
            recording_ids=[ada_call])
        disclosure_id = disclosure.id
        disclosed, _job = exports.approve_disclosure(MO, disclosure)
        disclosed_id = disclosed.id
        exports.build_export(disclosed_id)
    session.commit()
    return entry_id, export_id, disclosure_id, disclosed_id


@pytest.fixture
def world(app, db_session):
    _host_rows(db_session)
    ada, ben, unmatched, purged = _calls(db_session)
    _audit_trail(app, ada, ben)
    db_session.commit()
    last_month = (utcnow().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    _rows(db_session, ada, ben, unmatched, purged, last_month)
    recordings = [ada[0].id, ada[1].id, ben.id, unmatched.id, purged.id]
    subject_access, bundle, disclosure, disclosed = _requests(app, db_session, ada[0].id)
    others = db_session.scalars(sa.select(Export.id).where(Export.id.not_in([bundle, disclosed]))).all()
    return {"recordings": recordings, "unmatched": recordings[3],
            "disclosure": disclosure, "exports": [bundle, disclosed, *others], "bundles": [bundle, disclosed],
            "subject_access": subject_access}


# -- the checks ----------------------------------------------------------------------------------------

# Words each page must show (a page that shows nothing would pass the id check): the one who left by
# the audit trail's name, the patients by the host's.
EXPECTED = {
    "/callrec/holds": ["Mo Quinn", "Ben Quarry", "Rita Quist"],
    "/callrec/holds?status=released": ["Rita Quist", "Ada Quill"],
    "/callrec/jobs?refresh=off": ["by Rita Quist"],
    "/callrec/assessments": ["Rita Quist", "Assessment read", "Kim Quay"],
    "/callrec/spot-checks": ["Rita Quist"],
    "/callrec/monitoring-summary": ["Rita Quist"],
    "/callrec/training": ["Rita Quist"],
    "/callrec/retention": ["requested by Rita Quist", "Call on "],
    "/callrec/disclosures": ["Rita Quist", "Mo Quinn"],
    "/callrec/audit?page_views=y": ["Ada Quill", "Late call back", "Call on ", "Holds page"],
}


@pytest.mark.parametrize("user", ["owner", MO.ref])
def test_every_page_names_people_and_patients_never_their_ids(app, world, login, user, monkeypatch):
    monkeypatch.setattr(audit_log, "PAGE_SIZE", 10_000)  # the whole trail on one page of the audit page
    client = login(user)
    found, missing = {}, {}
    urls = [url for endpoint in sorted(PAGES) for url in PAGES[endpoint](world)] + HOST_PAGES
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (user, url, response.status_code)
        text = visible(response.get_data(as_text=True))
        if ids_in(text):
            found[url] = [(ref, _around(text, ref)) for ref in ids_in(text)]
        lacking = [words for words in EXPECTED.get(url, []) if words not in text]
        if lacking:
            missing[url] = lacking
    assert (found, missing) == ({}, {}), f"as {user}: ids shown as text: {found}; names missing: {missing}"


def _around(text, ref):
    at = text.lower().find(ref.lower())
    return text[max(at - 60, 0):at + len(ref) + 60] if at >= 0 else ref


def test_the_assessed_member_of_staff_reads_names_too(app, world, login):
    page = login(KIM).get("/callrec/assessments").get_data(as_text=True)
    text = visible(page)
    assert ids_in(text) == [] and "assessed by Rita Quist" in text
    assert "First line<br>second line" in page  # the response as its writer typed it


def test_typed_text_keeps_its_line_breaks_and_calls_read_by_date(app, world, login):
    owner = login("owner")
    entry = owner.get(f"/callrec/disclosures/{world['disclosure']}").get_data(as_text=True)
    register = owner.get("/callrec/disclosures").get_data(as_text=True)
    assert "s.64<br>letter of 1 December" in entry and "s.64<br>letter of 1 December" in register
    assert re.search(rf'href="/callrec/recordings/{world["recordings"][0]}">Call on \d\d \w+ \d{{4}}', entry)


def test_bundle_cover_notes_name_the_practice_and_the_patient_never_their_ids(app, world, db_session):
    for export_id in world["bundles"]:
        export = db_session.get(Export, export_id)
        assert export.status == "ready", (export.kind, export.error)
        with zipfile.ZipFile(io.BytesIO(bundle_bytes(export))) as bundle:
            note = bundle.read("cover-note.txt").decode()
        assert ids_in(note) == [], (export.kind, note)
        assert "Practice: Harbour Dental" in note, note
        if export.kind == "subject_access":
            assert "Patient: Ada Quill\n" in note, note


def test_a_practice_the_host_does_not_name_is_left_out_of_the_cover_note(app, world, db_session, monkeypatch):
    monkeypatch.setitem(hostapp.PRACTICE_NAMES, PRACTICE, None)
    with app.app_context():
        export = db_session.get(Export, world["bundles"][0])
        note = exports._cover_subject_access({"practice_ref": PRACTICE, "id": export.id,
                                              "requested_by": {"name": "Rita Quist", "role": "manager"}},
                                             {"ref": ADA, "name": None}, [], [], [])
    assert "Practice:" not in note and ids_in(note) == [] and "Patient: " in note


def test_the_hold_finder_names_the_patient_not_their_id(app, world, login):
    page = post(app, login("owner"), "/callrec/holds", {
        "callrec-hold-find": "1", "callrec-hold-scope": "recording", "callrec-hold-patient_name": "Quarry"})
    text = visible(page.get_data(as_text=True))
    assert "Calls of Ben Quarry" in text and ids_in(text) == []
