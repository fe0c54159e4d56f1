"""A subject-access bundle carries what the data subject is entitled to, and nothing else.

Ada Patient's calls were assessed, held by the police, and listened to for health and safety / crime
with a written justification. Her bundle holds every call's audio and, for each access, who in role
terms, for which purpose and when: searching the whole ZIP finds no outcome, justification, staff
name or hold reference.
"""
import csv
import datetime as dt
import io
import json
import zipfile

import sqlalchemy as sa

from callrec_plugin import audit, holds, visibility
from callrec_plugin.identity import Actor
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import Assessment, Export, Recording, SubjectAccessRequest, utcnow
from tests import hostapp
from tests.audio_samples import wav_bytes
from tests.conftest import csrf_from
from tests.subject_access_support import build_bundle, register_request

NAMES = {"owner": "Elliott Ballantyne", "manager": "Natalie Ballantyne", "dpo": "Priya Protection",
         "handler": "Hannah Handler", "reception": "Rita Reception"}
EXCLUDED = [
    "Does not meet", "Partly meets", "ASSESS-NOTE-8841", "ASSESS-RESPONSE-2290", "assessment",
    "JUSTIFICATION-6612", "threats made to reception",
    "Suspected fraud", "GMP/2026/7", "law_enforcement", "law enforcement", "Greater Manchester Police",
    *NAMES.values(), "Reception Desk",
]


def _rename_staff(db_session):
    for username, name in NAMES.items():
        db_session.get(hostapp.User, username).name = name
    db_session.commit()


def _calls(db_session):
    audio = {}
    for n in range(3):
        data = wav_bytes(1.0 + n, rate=8000)
        result = ingest_audio(io.BytesIO(data), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=5 - n),
                              direction="inbound", from_number="+447700900001", to_number="201", source="test",
                              source_ref=f"sar-{n}", staff_user_ref="reception", staff_name="Rita Reception")
        audio[result.recording_id] = data
    return audio


def _history(app, db_session, login, audio):
    """Assessed, held by the police, listened to for safety/crime with a justification."""
    first = next(iter(audio))
    recording = db_session.get(Recording, first)
    manager = Actor(user=None, ref="manager", name=NAMES["manager"], roles=frozenset({"manager"}), practice_ref="pA")
    assessment = Assessment(recording_id=first, practice_ref="pA", staff_user_ref="reception", assessor_ref="manager",
                            assessor_name=NAMES["manager"], outcome="does_not_meet", notes="ASSESS-NOTE-8841",
                            response="ASSESS-RESPONSE-2290", created_at=utcnow())
    db_session.add(assessment)
    db_session.flush()
    audit.record("assessment_created", "done", actor=manager, recording=recording, object_type="assessment",
                 object_id=str(assessment.id), reason=visibility.ASSESSMENT_RECORDED)
    audit.record("assessment_created", "done", actor=manager, recording=recording, object_type="assessment",
                 object_id="legacy", reason="Does not meet the standard")  # as events were written before
    holds.place_holds(manager, list(db_session.scalars(sa.select(Recording))), "law_enforcement",
                      "Suspected fraud by staff member X, Greater Manchester Police", "GMP/2026/7")
    db_session.commit()
    owner = login("owner")
    page = owner.get(f"/callrec/recordings/{first}").get_data(as_text=True)
    granted = owner.post(f"/callrec/recordings/{first}/grants", data={
        "csrf_token": csrf_from(page), "action": "play", "purpose": "safety_crime",
        "justification": "JUSTIFICATION-6612 threats made to reception"})
    assert granted.status_code == 302
    assert owner.get(f"/callrec/recordings/{first}/audio", headers={"Range": "bytes=0-"}).status_code == 206
    assert login("trainer").get(f"/callrec/recordings/{first}/audio").status_code == 403  # a refused access


def test_the_bundle_holds_every_call_and_none_of_the_excluded_information(app, db_session, login):
    _rename_staff(db_session)
    audio = _calls(db_session)
    _history(app, db_session, login, audio)
    dpo = login("dpo")
    entry_id = register_request(dpo, app, "pat1")
    assert build_bundle(dpo, app, entry_id).status_code == 302
    export = db_session.scalar(sa.select(Export).where(Export.subject_access_id == entry_id))
    response = dpo.get(f"/callrec/exports/{export.id}/download")
    assert response.status_code == 200
    data = response.data

    text = data.decode("latin-1")  # entries are stored, not deflated: every byte is searchable
    hits = [word for word in EXCLUDED if word.lower() in text.lower()]
    assert hits == [], f"the subject-access bundle leaks {hits}"

    bundle = zipfile.ZipFile(io.BytesIO(data))
    calls = {name: bundle.read(name) for name in bundle.namelist() if name.startswith("calls/")}
    assert sorted(calls.values()) == sorted(audio.values())  # every call's audio, exactly
    manifest = json.loads(bundle.read("manifest.json"))
    assert manifest["subject_access_request"]["id"] == entry_id
    assert manifest["requested_by"] == {"role": "data protection lead"}

    rows = list(csv.DictReader(io.StringIO(bundle.read("audit-extract.csv").decode())))
    assert {"accessed_by", "access", "purpose", "occurred_at", "outcome"} <= set(rows[0])
    assert not {"actor_name", "actor_ref", "justification", "reason", "ip"} & set(rows[0])
    listened = [r for r in rows if r["access"] == "listened to the call" and r["outcome"] == "allowed"]
    assert [(r["accessed_by"], r["purpose"]) for r in listened] == [("practice owner", "safety_crime")]
    assert any(r["accessed_by"] == "trainer" and r["outcome"] == "denied" for r in rows)
    assert {r["access"] for r in rows} <= {"listened to the call", "downloaded the call", "looked at the call's details"}

    # delivering the bundle answers the request
    db_session.expire_all()
    assert db_session.get(SubjectAccessRequest, entry_id).responded_at is not None


def test_objections_csv_says_how_each_objection_was_made_and_when_why_and_by_whom_it_was_withdrawn(
        app, db_session, login):
    from tests.test_objection_lifecycle import withdraw
    from tests.test_objections import record

    _rename_staff(db_session)
    assert record(login("reception"), "pat1", method="letter", note="Letter of 3 March").status_code == 302
    reason = "Patient phoned to say recording is fine now"
    assert withdraw(login("manager"), "pat1", reason).status_code == 302
    assert record(login("owner"), "pat1", method="in_person", note="Said so at the desk").status_code == 302
    dpo = login("dpo")
    entry_id = register_request(dpo, app, "pat1")
    assert build_bundle(dpo, app, entry_id).status_code == 302
    export = db_session.scalar(sa.select(Export).where(Export.subject_access_id == entry_id))
    data = dpo.get(f"/callrec/exports/{export.id}/download").data

    text = zipfile.ZipFile(io.BytesIO(data)).read("objections.csv").decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ("recorded_at,recorded_by,method,call,note,withdrawn_at,withdrawn_by,"
                                    "withdrawal_reason")
    assert [(r["recorded_by"], r["method"], r["note"], r["withdrawn_by"], r["withdrawal_reason"]) for r in rows] == [
        ("staff", "By letter", "Letter of 3 March", "practice manager", reason),
        ("practice owner", "In person", "Said so at the desk", "", ""),
    ]
    withdrawn_at = dt.datetime.strptime(rows[0]["withdrawn_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert abs(withdrawn_at - utcnow()) < dt.timedelta(minutes=5) and rows[1]["withdrawn_at"] == ""
    assert not [name for name in NAMES.values() if name in text]  # staff by role, never by name
