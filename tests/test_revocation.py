"""Revocation at once: every audio request decides again, in one statement, whether its grant still holds.

For each cause (training approval withdrawn, complaint link detached, complaint closed, the user's
role gone, the recording purged) the listener gets 206 before, and the very next Range request is
refused with 403 and one "denied" audit event saying why. And the complaint purpose: an open
complaint of the practice the call is attached to, for every role.
"""
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from callrec_plugin import evidence
from callrec_plugin.identity import Actor
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import AuditEvent, ComplaintLink, Recording, utcnow
from tests import hostapp
from tests.audio_samples import wav_bytes
from tests.conftest import csrf_from

AUDIO = wav_bytes(10.0, rate=8000)  # 160 KB: three 64 KiB segments
OWNER = Actor(user=None, ref="owner", name="Owner", roles=frozenset({"owner"}), practice_ref="pA")


@pytest.fixture
def recording_id(app, db_session):
    result = ingest_audio(io.BytesIO(AUDIO), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=1),
                          direction="inbound", from_number="+447700900001", to_number="201", source="test",
                          source_ref="revocation", staff_user_ref="reception", staff_name="Rita Reception")
    recording = db_session.get(Recording, result.recording_id)
    recording.approved_for_training = True
    db_session.commit()
    evidence.link(OWNER, recording, {"ref": "cX", "status": "open"}, "the call complained of")
    db_session.commit()
    return result.recording_id


def choose(client, recording_id, **fields):
    page = client.get(f"/callrec/recordings/{recording_id}")
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "action": "play", **fields}
    return client.post(f"/callrec/recordings/{recording_id}/grants", data=data)


def range_request(client, recording_id, start=1000):
    return client.get(f"/callrec/recordings/{recording_id}/audio", headers={"Range": f"bytes={start}-"})


def head(db_session):
    db_session.expire_all()
    return db_session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0


def events_since(db_session, seq):
    db_session.expire_all()
    return db_session.scalars(sa.select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)).all()


def withdraw_training(db_session, recording_id):
    db_session.get(Recording, recording_id).approved_for_training = False
    db_session.commit()


def detach(db_session, recording_id):
    recording = db_session.get(Recording, recording_id)
    evidence.unlink(OWNER, recording, {"ref": "cX"}, "attached by mistake")
    db_session.commit()


def close_complaint(db_session, recording_id):
    db_session.get(hostapp.Complaint, "cX").status = "closed"  # the host's record: callrec asks it every time
    db_session.commit()


def take_role(username):
    def revoke(db_session, recording_id):
        db_session.get(hostapp.User, username).role = "staff"
        db_session.commit()
    return revoke


def purge_it(db_session, recording_id):
    from callrec_plugin import purge

    evidence.unlink(OWNER, db_session.get(Recording, recording_id), {"ref": "cX"}, "not needed")
    recording = db_session.get(Recording, recording_id)
    recording.retain_until = utcnow() - dt.timedelta(days=30)
    db_session.commit()
    purge.purge(now=utcnow() + dt.timedelta(days=60))  # past the grace period of the released complaint hold
    db_session.expire_all()
    assert db_session.get(Recording, recording_id).status == "purged"


# cause -> (user, the purpose they chose, what takes the lawful ground away, a word of the audit reason)
CAUSES = {
    "training approval withdrawn": ("trainer", {"purpose": "training"}, withdraw_training, "training"),
    "complaint link detached": ("handler", {"purpose": "complaint", "complaint_ref": "cX"}, detach, "attached"),
    "complaint closed": ("handler", {"purpose": "complaint", "complaint_ref": "cX"}, close_complaint, "closed"),
    "role gone (trainer)": ("trainer", {"purpose": "training"}, take_role("trainer"), "role"),
    "role gone (handler)": ("handler", {"purpose": "complaint", "complaint_ref": "cX"}, take_role("handler"), "role"),
    "manager's complaint closed": ("manager", {"purpose": "complaint", "complaint_ref": "cX"}, close_complaint,
                                   "closed"),
    "recording purged": ("owner", {"purpose": "compliance"}, purge_it, "purged"),
}


@pytest.mark.parametrize("cause", CAUSES)
def test_the_next_range_request_after_revocation_is_refused_and_audited_once(
        app, db_session, login, recording_id, cause):
    user, purpose, revoke, word = CAUSES[cause]
    client = login(user)
    assert choose(client, recording_id, **purpose).status_code == 302
    before = head(db_session)
    for start in (0, 70_000):
        response = range_request(client, recording_id, start)
        assert response.status_code == 206 and response.data == AUDIO[start:]
    assert events_since(db_session, before) == []  # allowed Range requests: audited once, at the grant

    revoke(db_session, recording_id)
    before = head(db_session)
    client = login(user)  # the same user, asked about afresh as on any request
    response = range_request(client, recording_id, 100_000)
    assert response.status_code == 403
    assert AUDIO[100_000:100_100] not in response.data
    events = events_since(db_session, before)
    assert [(e.action, e.outcome, e.actor_ref, e.recording_id) for e in events] == [
        ("play", "denied", user, recording_id)]
    assert word in events[0].reason, events[0].reason
    # the recording page no longer offers a player for the revoked grant
    page = client.get(f"/callrec/recordings/{recording_id}").get_data(as_text=True)
    assert "<audio" not in page


def test_download_grants_are_decided_again_too(app, db_session, login, recording_id):
    client = login("manager")
    assert choose(client, recording_id, purpose="complaint", complaint_ref="cX", action="download").status_code == 302
    assert client.get(f"/callrec/recordings/{recording_id}/download").status_code == 200
    close_complaint(db_session, recording_id)
    before = head(db_session)
    assert login("manager").get(f"/callrec/recordings/{recording_id}/download").status_code == 403
    assert [(e.action, e.outcome) for e in events_since(db_session, before)] == [("download", "denied")]


def test_the_audio_request_is_one_callrec_statement(app, db_session, login, recording_id):
    """Grant, recording and the re-check together: one statement on callrec's tables per Range request."""
    client = login("handler")
    assert choose(client, recording_id, purpose="complaint", complaint_ref="cX").status_code == 302
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "callrec_" in statement:
            statements.append(statement)

    engine = hostapp.db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert range_request(client, recording_id, 65536).status_code == 206
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    assert "callrec_complaint_links" in statements[0] and "callrec_access_grants" in statements[0]


# -- the complaint purpose ----------------------------------------------------------------------------------


def test_the_complaint_purpose_names_an_open_attached_complaint_for_every_role(app, db_session, login, recording_id):
    manager = login("manager")
    # cY is about another patient and the call is not attached to it
    refused = choose(manager, recording_id, purpose="complaint", complaint_ref="cY")
    assert refused.status_code == 403 and "attach it first" in refused.get_data(as_text=True)
    assert choose(manager, recording_id, purpose="complaint").status_code == 403  # no complaint named
    db_session.get(hostapp.Complaint, "cY").status = "closed"
    db_session.add(ComplaintLink(recording_id=recording_id, practice_ref="pA", complaint_ref="cY",
                                 linked_by_ref="owner"))
    db_session.commit()
    refused = choose(manager, recording_id, purpose="complaint", complaint_ref="cY")
    assert refused.status_code == 403 and "closed" in refused.get_data(as_text=True)
    assert choose(manager, recording_id, purpose="complaint", complaint_ref="cX").status_code == 302
    # a handler must name the complaint, and handle it
    assert choose(login("handler"), recording_id, purpose="complaint").status_code == 403
    assert choose(login("handler2"), recording_id, purpose="complaint", complaint_ref="cX").status_code == 403
    assert choose(login("handler"), recording_id, purpose="complaint", complaint_ref="cX").status_code == 302
    denied = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.outcome == "denied",
                                                            AuditEvent.action == "play")).all()
    assert len(denied) == 5 and all(e.reason for e in denied)


def test_the_purpose_form_offers_each_role_only_its_purposes(app, db_session, login, recording_id):
    def offered(user):
        page = login(user).get(f"/callrec/recordings/{recording_id}").get_data(as_text=True)
        return {key for key in ("compliance", "training", "complaint", "spot_check", "safety_crime")
                if f'<option value="{key}"' in page}, page

    assert offered("owner")[0] == {"compliance", "training", "complaint", "spot_check", "safety_crime"}
    assert offered("trainer")[0] == {"training"}
    purposes, page = offered("handler")
    assert purposes == {"complaint"}
    assert '<option value="cX">Rude call</option>' in page  # the open complaint it is attached to, by title
    for user in ("reception", "dpo"):
        purposes, page = offered(user)
        assert purposes == set() and "<form" not in page.split('id="callrec-no-player"')[0].split("<h1>")[-1]
        assert "You cannot listen to this call" in page, user


def test_a_trainer_is_told_why_a_call_not_approved_for_training_has_no_player(app, db_session, login, recording_id):
    withdraw_training(db_session, recording_id)
    page = login("trainer").get(f"/callrec/recordings/{recording_id}").get_data(as_text=True)
    assert 'name="purpose"' not in page and "<audio" not in page
    assert "only to calls approved" in page


def test_a_revoked_grant_does_not_hide_another_that_still_holds(app, db_session, login, recording_id):
    client = login("manager")
    assert choose(client, recording_id, purpose="compliance").status_code == 302
    assert choose(client, recording_id, purpose="complaint", complaint_ref="cX").status_code == 302  # newer
    close_complaint(db_session, recording_id)
    before = head(db_session)
    assert range_request(login("manager"), recording_id).status_code == 206  # the compliance grant holds
    assert events_since(db_session, before) == []
