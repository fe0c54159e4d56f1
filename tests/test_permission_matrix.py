"""Every role × purpose × action × object scope against the policy, spelled out here independently.

0 unauthorised 2xx, 0 authorised 4xx, 0 5xx; every denial audited with a reason; another practice's
recording and a missing one answer the same.
"""
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import AuditEvent, ComplaintLink, Recording
from tests.audio_samples import wav_bytes
from tests.conftest import valid_csrf_token
from tests.factories import add_recording

ROLES = ["owner", "manager", "handler", "trainer", "reception", "dpo", "norole"]
PURPOSES = ["compliance", "training", "complaint", "spot_check", "safety_crime", "", "bogus"]
SCOPES = ["own", "other_practice", "missing", "purged"]
ACTIONS = ["play", "download"]
MISSING_ID = "NoSuchRecording0000000"


def may_retrieve(user, purpose, action):
    """The policy of DESIGN.md §2, for a recording linked to complaint cX (handled by `handler`) and
    approved for training, with every purpose's precondition supplied."""
    if purpose not in {"compliance", "training", "complaint", "spot_check", "safety_crime"}:
        return False
    if user in ("owner", "manager"):
        return True
    if action == "download":
        return False
    return (user, purpose) in {("handler", "complaint"), ("trainer", "training")}


@pytest.fixture
def recordings(app, db_session):
    audio = wav_bytes(3.0)
    own = ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
                       direction="inbound", from_number="+447700900001", to_number="201", source="t", source_ref="own")
    recording = db_session.get(Recording, own.recording_id)
    recording.approved_for_training = True
    db_session.add(ComplaintLink(recording_id=recording.id, practice_ref="pA", complaint_ref="cX",
                                 linked_by_ref="handler"))
    db_session.commit()
    other = add_recording(db_session, practice_ref="pB", patient_ref="patB")
    purged = add_recording(db_session, status="purged", approved_for_training=True)
    db_session.add(ComplaintLink(recording_id=purged.id, practice_ref="pA", complaint_ref="cX", linked_by_ref="handler"))
    db_session.commit()
    return {"own": recording.id, "other_practice": other.id, "missing": MISSING_ID, "purged": purged.id,
            "audio": audio}


def last_event(db_session):
    db_session.expire_all()
    return db_session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()


def assert_denial_audited(db_session, response):
    event = last_event(db_session)
    assert event.outcome == "denied" and event.reason, (response.status_code, event.action, event.reason)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("purpose", PURPOSES)
@pytest.mark.parametrize("user", ROLES)
def test_choose_purpose_then_fetch_audio(app, db_session, login, recordings, user, purpose, action, scope):
    client = login(user)
    recording_id = recordings[scope]
    data = {"csrf_token": valid_csrf_token(app, client), "purpose": purpose, "action": action,
            "complaint_ref": "cX" if purpose == "complaint" else "",
            "justification": "Caller threatened staff; police asked for the call." if purpose == "safety_crime" else ""}
    granted = client.post(f"/callrec/recordings/{recording_id}/grants", data=data)
    audio = client.get(f"/callrec/recordings/{recording_id}/{'audio' if action == 'play' else 'download'}")
    authorised = scope == "own" and may_retrieve(user, purpose, action)
    assert granted.status_code < 500 and audio.status_code < 500
    if authorised:
        assert granted.status_code == 302
        assert audio.status_code == 200 and audio.data == recordings["audio"]
        return
    assert 400 <= granted.status_code < 500 and 400 <= audio.status_code < 500
    assert audio.data != recordings["audio"]
    if scope in ("other_practice", "missing"):
        assert granted.status_code == audio.status_code == 404
    assert_denial_audited(db_session, audio)
    denials = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert len(denials) == 2, [(e.action, e.reason) for e in denials]  # the grant attempt and the fetch


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("user", ROLES)
def test_recording_page(app, db_session, login, recordings, user, scope):
    response = login(user).get(f"/callrec/recordings/{recordings[scope]}")
    if scope in ("other_practice", "missing"):
        assert response.status_code == 404
        assert_denial_audited(db_session, response)
    elif user == "norole":
        assert response.status_code == 403
        assert_denial_audited(db_session, response)
    else:
        assert response.status_code == 200
        assert last_event(db_session).outcome == "allowed"


def test_other_practice_and_missing_answer_identically(app, db_session, login, recordings):
    client = login("owner")
    for suffix in ("", "/audio", "/download"):
        other = client.get(f"/callrec/recordings/{recordings['other_practice']}{suffix}")
        missing = client.get(f"/callrec/recordings/{MISSING_ID}{suffix}")
        assert (other.status_code, other.data, other.headers.get("Content-Type")) == \
               (missing.status_code, missing.data, missing.headers.get("Content-Type"))


@pytest.mark.parametrize("route", ["/callrec/audit", "/callrec/audit.csv"])
@pytest.mark.parametrize("user", ROLES)
def test_audit_pages(app, db_session, login, user, route):
    response = login(user).get(route)
    if user in ("owner", "manager", "dpo"):
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert_denial_audited(db_session, response)


@pytest.mark.parametrize("user", ROLES)
def test_record_objection(app, db_session, login, user):
    client = login(user)
    response = client.post("/callrec/patients/pat1/objections",
                           data={"callrec-objection-csrf_token": valid_csrf_token(app, client)})
    if user in ("owner", "manager", "handler", "reception"):
        assert response.status_code == 302
    else:
        assert response.status_code == 403
        assert_denial_audited(db_session, response)


def test_handler_of_y_may_not_play_a_call_linked_only_to_x(app, db_session, login, recordings):
    client = login("handler2")
    data = {"csrf_token": valid_csrf_token(app, client), "purpose": "complaint", "action": "play",
            "complaint_ref": "cY"}
    assert client.post(f"/callrec/recordings/{recordings['own']}/grants", data=data).status_code == 403
    assert client.get(f"/callrec/recordings/{recordings['own']}/audio").status_code == 403
