"""Behaviours no other test pinned: each test here fails when one realistic one-line bug is made.

Found by hand-made mutations of the most critical code (issue 10, item 9): a grant scoped to the
wrong recording, a verify that trusts ``prev_hash``, a detach that releases every hold of the
complaint, a complaint purpose checked against the wrong complaint, a ``decide()`` that relies on
the caller's query for practice scoping, a hold released because the host forgot a complaint, a
manifest that disagrees with its ZIP, an off-by-one in the justification length.
"""
import datetime as dt
import hashlib
import io
import json
import zipfile

import pytest
import sqlalchemy as sa

from callrec_plugin import audit, holds, policy, purge
from callrec_plugin.identity import Actor
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import AuditEvent, ComplaintLink, Hold, Recording, utcnow
from callrec_plugin.roles import PURPOSES, Action
from tests import hostapp
from tests import jobs_support as js
from tests.audio_samples import wav_bytes
from tests.conftest import valid_csrf_token
from tests.factories import add_recording


def post(app, client, url, data):
    token = valid_csrf_token(app, client)
    prefixed = {f"{prefix}-csrf_token": token for prefix in ("callrec-attach", "callrec-detach")}
    return client.post(url, data={"csrf_token": token, **prefixed, **data})


def grant(app, client, recording_id, **fields):
    return post(app, client, f"/callrec/recordings/{recording_id}/grants", {"action": "play", **fields})


def ingest(source_ref, started_at=None, practice_ref="pA"):
    return ingest_audio(io.BytesIO(wav_bytes(2.0)), practice_ref=practice_ref,
                        started_at=started_at or utcnow() - dt.timedelta(days=2), direction="inbound",
                        from_number="+447700900001", to_number="201", source="t", source_ref=source_ref).recording_id


def last_event(db_session):
    db_session.expire_all()
    return db_session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()


def active_holds(db_session, recording_id):
    db_session.expire_all()
    return db_session.scalars(sa.select(Hold).where(Hold.recording_id == recording_id,
                                                    Hold.released_at.is_(None))).all()


def actor(roles, practice_ref="pA", ref="owner"):
    return Actor(user=None, ref=ref, name=ref, roles=frozenset(roles), practice_ref=practice_ref)


# -- a grant opens one recording only ----------------------------------------------------------------


@pytest.mark.parametrize("action", ["play", "download"])
def test_a_grant_for_recording_a_never_opens_recording_b_of_the_same_practice(app, db_session, login, action):
    first, second = ingest("grant-a"), ingest("grant-b")
    client = login("owner")
    assert grant(app, client, first, purpose="compliance", action=action).status_code == 302
    route = "audio" if action == "play" else "download"
    assert client.get(f"/callrec/recordings/{first}/{route}").status_code == 200
    refused = client.get(f"/callrec/recordings/{second}/{route}")
    assert refused.status_code == 403 and not refused.data.startswith(b"RIFF")
    event = last_event(db_session)
    assert (event.recording_id, event.outcome) == (second, "denied") and event.reason
    # and a Range request on B with A's grant is refused the same way
    assert client.get(f"/callrec/recordings/{second}/{route}", headers={"Range": "bytes=0-"}).status_code == 403


# -- the audit chain -------------------------------------------------------------------------------------


def _seed_chain(count):
    owner = actor({"owner"})
    for n in range(count):
        audit.record("view_metadata", "allowed", actor=owner, object_type="recording", object_id=f"r{n}",
                     reason=f"event {n}")
    hostapp.db.session.commit()


def _rewrite(db_session, seq, **changes):
    """What a careful forger does: change a row and give it a hash that matches its new contents."""
    event = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.seq == seq))
    for name, value in changes.items():
        setattr(event, name, value)
    event.hash = audit.chain_hash(event.prev_hash, audit.event_values(event))
    db_session.commit()
    return event.hash


def test_a_rewritten_row_with_a_recomputed_hash_and_a_patched_next_prev_hash_is_found(app, db_session):
    _seed_chain(6)
    new_hash = _rewrite(db_session, 3, reason="nothing happened here")
    follower = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.seq == 4))
    follower.prev_hash = new_hash  # the link looks right now; the next row's own hash does not
    db_session.commit()
    result = audit.verify(db_session)
    assert not result.ok and result.first_bad_seq == 4
    assert result.problem == "hash does not match the event's contents (the row was edited)"
    assert (result.checked, result.head_seq, result.head_hash) == (3, 3, new_hash)  # the last good link


def test_editing_the_very_first_event_is_found_and_verify_names_seq_1(app, db_session):
    _seed_chain(3)
    _rewrite(db_session, 1, actor_ref="someone-else")  # hash recomputed over the genesis link
    follower = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.seq == 2))
    assert follower.prev_hash != db_session.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == 1))
    assert audit.verify(db_session).first_bad_seq == 2  # the chain breaks at the next link...
    first = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.seq == 1))
    first.prev_hash = "f" * 64  # ...and a first row that does not start from the genesis hash is named itself
    db_session.commit()
    result = audit.verify(db_session)
    assert not result.ok and result.first_bad_seq == 1 and result.checked == 0
    assert result.problem == "prev_hash does not match the previous event's hash"
    assert (result.head_seq, result.head_hash) == (0, audit.GENESIS_HASH)


def test_an_intact_chain_reports_its_head(app, db_session):
    _seed_chain(4)
    last = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.seq == 4))
    result = audit.verify(db_session)
    assert (result.ok, result.checked, result.head_seq, result.head_hash) == (True, 4, 4, last.hash)


def test_handles_refuses_a_handler_when_the_summary_names_no_handlers(app):
    handler = actor({"complaint_handler"}, ref="handler")
    assert policy.handles(handler, {"ref": "cX", "practice_ref": "pA", "status": "open"}) is False
    assert policy.handles(handler, {"ref": "cX", "handler_refs": ["handler"]}) is True
    assert policy.handles(actor({"manager"}), {"ref": "cX"}) is True


def test_a_chain_whose_only_event_was_edited_is_refused_at_seq_1(app, db_session):
    _seed_chain(1)
    first = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.seq == 1))
    first.reason = "edited without recomputing"
    db_session.commit()
    result = audit.verify(db_session)
    assert not result.ok and result.first_bad_seq == 1 and "edited" in result.problem


# -- complaint holds -----------------------------------------------------------------------------------


def test_detaching_one_call_releases_only_that_calls_complaint_hold(app, db_session, login):
    calls = [add_recording(db_session).id for _ in range(3)]
    handler = login("handler")
    for call in calls:
        assert post(app, handler, "/callrec/complaints/cX/links",
                    {"callrec-attach-recording_id": call, "callrec-attach-note": "the call"}).status_code == 302
    assert all(len(active_holds(db_session, call)) == 1 for call in calls)
    detached = post(app, handler, "/callrec/complaints/cX/links/detach",
                    {"callrec-detach-recording_id": calls[1], "callrec-detach-reason": "wrong call"})
    assert detached.status_code == 302
    assert active_holds(db_session, calls[1]) == []
    assert [len(active_holds(db_session, call)) for call in (calls[0], calls[2])] == [1, 1]
    released = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "hold_released")).all()
    assert [event.recording_id for event in released] == [calls[1]]


def test_a_complaint_the_host_no_longer_reports_keeps_its_holds(app, db_session, login):
    """Decided: the hold stays. A complaint that vanished from the host (deleted, migrated, a host bug)
    is not a closed complaint; evidence is never released on silence. The host ends such holds by
    saying the complaint is closed (``callrec.complaint_closed(ref)``), which the audit trail records."""
    old = utcnow() - dt.timedelta(days=400)
    call = add_recording(db_session, started_at=old, retain_until=old + dt.timedelta(days=183))
    assert post(app, login("handler"), "/callrec/complaints/cX/links",
                {"callrec-attach-recording_id": call.id, "callrec-attach-note": "the call"}).status_code == 302
    db_session.delete(db_session.get(hostapp.Complaint, "cX"))  # the host forgets the complaint
    db_session.commit()
    assert holds.sync_complaint_holds() == 0
    report = purge.purge()
    assert report.purged == 0
    db_session.expire_all()
    assert db_session.get(Recording, call.id).status == "active"
    (hold,) = active_holds(db_session, call.id)
    assert (hold.kind, hold.complaint_ref) == ("complaint", "cX")
    with app.test_request_context():
        app.extensions["callrec"].extension.complaint_closed("cX")  # the host's way to end them
    assert active_holds(db_session, call.id) == []
    released = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "hold_released")).one()
    assert (released.recording_id, released.reason) == (call.id, "complaint hold released: complaint cX closed")


# -- the complaint purpose -------------------------------------------------------------------------------


@pytest.fixture
def linked_to_x_and_y(app, db_session):
    call = ingest("linked-xy")
    for complaint_ref in ("cX", "cY"):
        db_session.add(ComplaintLink(recording_id=call, practice_ref="pA", complaint_ref=complaint_ref,
                                     linked_by_ref="owner"))
    db_session.commit()
    return call


def test_complaint_purpose_naming_another_practices_complaint_is_refused(app, db_session, login, linked_to_x_and_y):
    call = linked_to_x_and_y
    db_session.add(ComplaintLink(recording_id=call, practice_ref="pA", complaint_ref="cB", linked_by_ref="owner"))
    db_session.commit()  # even a (forged) link to practice B's complaint does not make it usable
    client = login("owner")
    refused = grant(app, client, call, purpose="complaint", complaint_ref="cB")
    assert refused.status_code == 403
    event = last_event(db_session)
    assert event.outcome == "denied" and "no such complaint" in event.reason
    assert client.get(f"/callrec/recordings/{call}/audio").status_code == 403


def test_complaint_purpose_naming_a_complaint_the_call_is_not_linked_to_is_refused(app, db_session, login):
    call = ingest("linked-x")
    db_session.add(ComplaintLink(recording_id=call, practice_ref="pA", complaint_ref="cX", linked_by_ref="owner"))
    db_session.commit()
    refused = grant(app, login("owner"), call, purpose="complaint", complaint_ref="cY")
    assert refused.status_code == 403
    assert "not attached" in last_event(db_session).reason


def test_a_handler_of_one_linked_complaint_may_not_name_the_other(app, db_session, login, linked_to_x_and_y):
    call = linked_to_x_and_y
    handler2 = login("handler2")  # handles cY only; the call is linked to cX and cY
    refused = grant(app, handler2, call, purpose="complaint", complaint_ref="cX")
    assert refused.status_code == 403
    assert "does not handle" in last_event(db_session).reason
    assert handler2.get(f"/callrec/recordings/{call}/audio").status_code == 403
    assert grant(app, handler2, call, purpose="complaint", complaint_ref="cY").status_code == 302
    assert handler2.get(f"/callrec/recordings/{call}/audio").status_code == 200


# -- decide() scopes by practice itself ----------------------------------------------------------------------


def _all_actions():
    return sorted(value for name, value in vars(Action).items() if not name.startswith("_") and isinstance(value, str))


@pytest.mark.parametrize("action", _all_actions())
def test_decide_denies_another_practices_recording_for_every_action(app, db_session, action):
    theirs = add_recording(db_session, practice_ref="pB", patient_ref="patB", approved_for_training=True)
    everyone = actor({"owner", "manager", "complaint_handler", "trainer", "staff", "dpo"})
    with app.test_request_context():
        for purpose in [None, *PURPOSES]:
            decision = policy.decide(everyone, action, recording=theirs, purpose=purpose, complaint_ref="cB",
                                     justification="a long enough justification for anything")
            assert not decision and "another practice" in decision.reason, (action, purpose, decision)
        mine = add_recording(db_session)
        assert policy.decide(everyone, Action.VIEW_METADATA, recording=mine)  # the same actor, own practice


# -- justification length ----------------------------------------------------------------------------------


def test_a_justification_of_exactly_the_minimum_length_is_accepted_and_one_shorter_refused(app, db_session, login):
    minimum = policy.MIN_JUSTIFICATION_CHARS
    owner = actor({"owner"})
    recording = add_recording(db_session)
    with app.test_request_context():
        assert policy.decide(owner, Action.PLAY, recording, "safety_crime", justification="j" * minimum)
        assert not policy.decide(owner, Action.PLAY, recording, "safety_crime", justification="j" * (minimum - 1))
        padded = "   " + "j" * (minimum - 1) + "   "  # spaces do not count
        assert not policy.decide(owner, Action.PLAY, recording, "safety_crime", justification=padded)
    call = ingest("justified")
    client = login("owner")
    assert grant(app, client, call, purpose="safety_crime", justification="j" * (minimum - 1)).status_code == 403
    assert grant(app, client, call, purpose="safety_crime", justification="j" * minimum).status_code == 302


# -- the bundle's manifest -------------------------------------------------------------------------------------


def test_the_manifest_lists_exactly_the_zip_entries_with_their_sizes_and_digests(app, db_session, login):
    blobs = js.Blobs(app)
    rows = []
    for n in range(3):
        row = js.recording_row(utcnow() - dt.timedelta(days=1 + n), practice_ref="pA", patient_ref="pat1")
        row.update(blobs.write(row["id"], bytes([n + 1]) * (5000 + n)))
        rows.append(row)
    db_session.execute(sa.insert(Recording), rows)
    db_session.commit()
    client = login("dpo")
    export_id = js.request_bundle(client, app, "pat1")
    response = client.get(f"/callrec/exports/{export_id}/download")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.data)) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        listed = {entry["name"]: (entry["size"], entry["sha256"]) for entry in manifest["files"]}
        # manifest.json and SHA256SUMS are written after the list and describe it; everything else is in it
        entries = [info.filename for info in bundle.infolist()]
        assert sorted(set(entries) - {"manifest.json", "SHA256SUMS"}) == sorted(listed)
        assert len(entries) == len(set(entries)) == len(listed) + 2
        for name, (size, digest) in listed.items():
            data = bundle.read(name)
            assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest), name
        sums = dict(reversed(line.split("  ", 1)) for line in bundle.read("SHA256SUMS").decode().splitlines())
        manifest_digest = hashlib.sha256(bundle.read("manifest.json")).hexdigest()
        assert sums == {**{name: digest for name, (_, digest) in listed.items()}, "manifest.json": manifest_digest}
        calls = {call["file"]: (call["size"], call["sha256"]) for call in manifest["calls"]}
        assert len(calls) == 3 and all(listed[name] == value for name, value in calls.items())


# -- every refusal says exactly why (the audit trail shows it to the data protection lead) ---------------


def _reason(app, db_session, actor_roles, action, recording=None, practice_ref="pA", ref="owner", **kwargs):
    with app.test_request_context():
        decision = policy.decide(actor(actor_roles, practice_ref=practice_ref, ref=ref), action, recording, **kwargs)
    return decision.allowed, decision.reason


def test_each_refusal_of_decide_gives_its_own_exact_reason(app, db_session):
    mine = add_recording(db_session)
    purged = add_recording(db_session, status="purged")
    theirs = add_recording(db_session, practice_ref="pB", patient_ref="patB")
    linked = add_recording(db_session)
    db_session.add(ComplaintLink(recording_id=linked.id, practice_ref="pA", complaint_ref="cX", linked_by_ref="owner"))
    closed = hostapp.Complaint(id="cZ", title="Closed", practice="pA", patient_id="pat1", handler_id="handler",
                               status="closed")
    db_session.add(closed)
    db_session.add(ComplaintLink(recording_id=linked.id, practice_ref="pA", complaint_ref="cZ", linked_by_ref="owner"))
    db_session.commit()
    owner, handler = {"owner"}, {"complaint_handler"}
    with app.test_request_context():
        anonymous = Actor(user=None, ref=None, name="anonymous", roles=frozenset(), practice_ref=None)
        assert policy.decide(anonymous, Action.PLAY, mine).reason == "not signed in"
    cases = [
        ((owner, Action.PLAY, mine), {"practice_ref": None}, "the user works in no practice"),
        ((owner, "fly", mine), {}, "unknown action 'fly'"),
        ((owner, Action.PLAY, theirs), {"purpose": "compliance"}, "the recording belongs to another practice"),
        (({"staff"}, Action.DOWNLOAD, mine), {}, "no role of the user may download"),
        (({"staff"}, Action.VIEW_AUDIT, None), {}, "no role of the user may view audit"),
        ((owner, Action.PLAY, None), {"purpose": "compliance"}, "no recording named"),
        ((owner, Action.PLAY, purged), {"purpose": "compliance"}, "the recording has been purged"),
        ((owner, Action.PLAY, mine), {}, "no purpose chosen"),
        ((owner, Action.PLAY, mine), {"purpose": "curiosity"}, "'curiosity' is not a purpose of the policy"),
        (({"trainer"}, Action.PLAY, mine), {"purpose": "compliance"},
         "no role of the user may retrieve recordings for purpose compliance"),
        (({"trainer"}, Action.PLAY, mine), {"purpose": "training"}, "the recording is not approved for training"),
        ((owner, Action.PLAY, mine), {"purpose": "safety_crime", "justification": "short"},
         "a written justification of at least 15 characters is required"),
        ((owner, Action.PLAY, linked), {"purpose": "complaint"}, "name the complaint being investigated"),
        ((owner, Action.PLAY, linked), {"purpose": "complaint", "complaint_ref": "cB"},
         "no such complaint in the user's practice"),
        ((owner, Action.PLAY, linked), {"purpose": "complaint", "complaint_ref": "cZ"}, "the complaint is closed"),
        ((owner, Action.PLAY, linked), {"purpose": "complaint", "complaint_ref": "cY"},
         "the call is not attached to this complaint: attach it first"),
        ((handler, Action.PLAY, linked), {"purpose": "complaint", "complaint_ref": "cX", "ref": "handler2"},
         "the user does not handle this complaint"),
    ]
    for (roles, action, recording), extra, expected in cases:
        extra = dict(extra)
        practice_ref = extra.pop("practice_ref", "pA")
        ref = extra.pop("ref", "owner")
        assert _reason(app, db_session, roles, action, recording, practice_ref=practice_ref, ref=ref, **extra) \
            == (False, expected), (action, extra)
    # two roles whose rules both refuse: both reasons, in the roles' order
    assert _reason(app, db_session, {"owner", "complaint_handler"}, Action.PLAY, linked, purpose="complaint") \
        == (False, "name the complaint being investigated; name the complaint being investigated")
    assert _reason(app, db_session, owner, Action.PLAY, mine, purpose="spot_check") \
        == (True, "play allowed for purpose spot_check")
    assert _reason(app, db_session, owner, Action.VIEW_AUDIT) == (True, "view_audit allowed")


def test_a_complaint_summary_without_handlers_denies_a_handler_instead_of_failing(app, db_session, monkeypatch):
    linked = add_recording(db_session)
    db_session.add(ComplaintLink(recording_id=linked.id, practice_ref="pA", complaint_ref="cX", linked_by_ref="owner"))
    db_session.commit()
    # a host's summary may leave out handler_refs when nobody is assigned yet
    monkeypatch.setattr(policy, "complaint_summary",
                        lambda ref: {"ref": ref, "practice_ref": "pA", "status": "open"})
    assert _reason(app, db_session, {"complaint_handler"}, Action.PLAY, linked, ref="handler",
                   purpose="complaint", complaint_ref="cX") == (False, "the user does not handle this complaint")
    assert _reason(app, db_session, {"owner"}, Action.PLAY, linked, purpose="complaint", complaint_ref="cX") \
        == (True, "play allowed for purpose complaint")


def test_a_role_without_any_purpose_rule_does_not_hide_the_next_roles_rule(app, db_session):
    """A receptionist who also trains: "staff" has no row in the matrix, "trainer" has one for training."""
    approved = add_recording(db_session, approved_for_training=True)
    assert _reason(app, db_session, {"staff", "trainer"}, Action.PLAY, approved, purpose="training") \
        == (True, "play allowed for purpose training")
    assert _reason(app, db_session, {"dpo", "trainer"}, Action.PLAY, approved, purpose="compliance") \
        == (False, "no role of the user may retrieve recordings for purpose compliance")


def test_the_practices_own_purpose_matrix_is_the_one_applied(app, db_session, monkeypatch):
    recording = add_recording(db_session)
    asked = []

    def practice_matrix(practice_ref=None):
        asked.append(practice_ref)
        return {"owner": {"compliance": "justification"}} if practice_ref == "pA" else policy.DEFAULT_PURPOSE_MATRIX

    monkeypatch.setattr(policy, "purpose_matrix", practice_matrix)
    assert _reason(app, db_session, {"owner"}, Action.PLAY, recording, purpose="compliance") \
        == (False, "a written justification of at least 15 characters is required")
    assert asked == ["pA"]
    monkeypatch.setattr(policy, "purpose_matrix", lambda practice_ref=None: {"owner": {"compliance": "bogus"}})
    assert _reason(app, db_session, {"owner"}, Action.PLAY, recording, purpose="compliance") \
        == (False, "unknown rule 'bogus' in the purpose matrix")
