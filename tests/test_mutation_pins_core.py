"""Behaviours of the critical functions pinned against known answers, for the mutation run (``make mutate``).

Each test here was written for a mutant that survived ``tests/mutation.py``: it fails under that
one-line change. Most use no app and no database, so a mutant of the function is judged in
milliseconds; the expected values come from the format and the policy, not from running the code.
"""
import datetime as dt
import hashlib
import hmac
import io
import struct
import threading

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callrec_plugin import audit, crypto, grants, holds, playback, purge, retention
from callrec_plugin.identity import SYSTEM, Actor
from callrec_plugin.hooks import hookimpl
from callrec_plugin.models import (AccessGrant, AuditEvent, ComplaintLink, Disclosure, ErasureRequest, Hold, HoldKind,
                                   Recording, utcnow)
from callrec_plugin.roles import PURPOSES
from callrec_plugin.policy import deny as policy_deny
from callrec_plugin.practice_settings import forget_cached
from callrec_plugin.state import get_state
from tests import hostapp
from tests.factories import add_recording


def hkdf_sha256(key, salt, info, length=32):
    """RFC 5869, written out: the reference derive_file_key must agree with."""
    prk = hmac.new(salt, key, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm, counter = okm + block, counter + 1
    return okm[:length]


def test_the_file_key_is_hkdf_sha256_of_the_data_key_salted_with_the_recording_id_as_info():
    data_key, salt = bytes(range(32)), bytes(range(100, 132))
    expected = hkdf_sha256(data_key, salt, b"callrec CRE1 " + "rec-1".encode())
    assert crypto.derive_file_key(data_key, salt, "rec-1") == expected
    assert crypto.derive_file_key(bytearray(data_key), salt, "rec-1") == expected


def test_the_segment_nonce_is_the_prefix_the_index_and_the_last_flag():
    prefix = b"\x01\x02\x03\x04\x05\x06\x07"
    assert crypto._nonce(prefix, 0, False) == prefix + b"\x00\x00\x00\x00\x00"
    assert crypto._nonce(prefix, 258, True) == prefix + b"\x00\x00\x01\x02\x01"
    assert len(crypto._nonce(prefix, 2**32 - 1, True)) == 12


# -- the audit chain: the bytes that are hashed, and every field of an appended event ---------------------


def test_the_canonical_bytes_are_sorted_compact_utf8_json_of_the_hashed_fields_with_utc_times():
    london = dt.timezone(dt.timedelta(hours=1))
    values = {"seq": 7, "occurred_at": dt.datetime(2026, 3, 1, 13, 4, 5, 60, tzinfo=london), "reason": "Zoë",
              "roles": "owner", "not_hashed": "ignored"}
    expected = ('{"action":null,"actor_name":null,"actor_ref":null,"ip":null,"justification":null,'
                '"object_id":null,"object_type":null,"occurred_at":"2026-03-01T12:04:05.000060Z","outcome":null,'
                '"patient_ref":null,"practice_ref":null,"purpose":null,"reason":"Zoë","recording_id":null,'
                '"request_id":null,"roles":"owner","seq":7}').encode()
    assert audit.canonical(values) == expected
    assert audit.chain_hash("ab" * 32, values) == hashlib.sha256(("ab" * 32).encode() + expected).hexdigest()
    assert audit._canonical_value(5) == 5


def outside_any_request(app, work):
    """Run work(session) with an app context and no request (pytest-flask pushes one for every test)."""
    done = {}

    def run():
        with app.app_context():
            session = hostapp.db.session
            done["result"] = work(session)
            session.commit()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return done["result"]


def _events(db_session):
    db_session.expire_all()
    return db_session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)).all()


def test_an_event_about_a_recording_takes_its_practice_patient_and_ids_and_links_to_the_head(app, db_session):
    recording = add_recording(db_session, practice_ref="pA", patient_ref="pat2")
    owner = Actor(user=None, ref="u1", name="Olive", roles=frozenset({"owner", "dpo"}), practice_ref="pB")
    with app.test_request_context(headers={"X-Request-ID": "r" * 70}, environ_base={"REMOTE_ADDR": "192.0.2.9"}):
        first = audit.record("play", "allowed", actor=owner, reason="why", recording=recording, purpose="training",
                             justification="because")
        second = audit.record("note", "done", actor=None, object_type="hold", object_id="h1", practice_ref="pZ",
                              patient_ref="patZ", recording_id="rid")
    db_session.commit()
    one, two = _events(db_session)
    assert (one.seq, one.prev_hash, two.seq, two.prev_hash) == (1, audit.GENESIS_HASH, 2, one.hash)
    assert (one.actor_ref, one.actor_name, one.roles, one.practice_ref) == ("u1", "Olive", "dpo,owner", "pA")
    assert (one.object_type, one.object_id, one.recording_id, one.patient_ref) == (
        "recording", recording.id, recording.id, "pat2")
    assert (one.action, one.outcome, one.reason, one.purpose, one.justification) == (
        "play", "allowed", "why", "training", "because")
    assert (one.ip, one.request_id, two.request_id) == ("192.0.2.9", "r" * 64, "r" * 64)  # one id per request
    assert (two.actor_ref, two.actor_name, two.roles, two.practice_ref) == (None, None, "", "pZ")
    assert (two.object_type, two.object_id, two.recording_id, two.patient_ref) == ("hold", "h1", "rid", "patZ")
    for event in (one, two):
        assert event.hash == audit.chain_hash(event.prev_hash, audit.event_values(event))
    assert (first.seq, second.seq) == (1, 2)
    assert audit.verify(db_session).ok


def test_an_event_names_the_actors_practice_when_it_is_about_no_recording(app, db_session):
    manager = Actor(user=None, ref="m", name="M", roles=frozenset({"manager"}), practice_ref="pA")
    with app.test_request_context():
        audit.record("view_audit", "allowed", actor=manager)
        generated = audit.request_id()
    db_session.commit()
    (event,) = _events(db_session)
    assert (event.practice_ref, event.object_type, event.object_id, event.recording_id) == ("pA", None, None, None)
    assert event.request_id == generated and len(generated) == 32 and int(generated, 16) >= 0  # a fresh uuid4 hex
    assert outside_any_request(app, lambda session: audit.request_id()) is None  # no request, no id


def test_an_event_written_after_its_request_carries_the_ip_and_id_it_is_given(app, db_session):
    def write(session):
        audit.record("play", "failed", actor=SYSTEM, ip="198.51.100.4", request_ref="req-1")
        audit.record("play", "failed", actor=SYSTEM)

    outside_any_request(app, write)
    first, second = _events(db_session)
    assert (first.ip, first.request_id, first.roles, first.practice_ref) == ("198.51.100.4", "req-1", "", None)
    assert (second.ip, second.request_id) == (None, None)


def test_events_appended_in_one_insert_continue_the_chain(app, db_session):
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)

    def write(session):
        audit.record("first", "done", actor=SYSTEM)
        assert audit.record_many(session, []) == []
        return audit.record_many(session, [{"action": "purged", "outcome": "done", "recording_id": "r1"},
                                           {"action": "purged", "outcome": "done", "occurred_at": when,
                                            "roles": "owner", "ip": "192.0.2.1", "request_id": "q"}])

    rows = outside_any_request(app, write)
    first, second, third = _events(db_session)
    assert [row["seq"] for row in rows] == [2, 3]
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    assert (second.recording_id, second.roles, second.ip, second.request_id) == ("r1", "", None, None)
    assert (third.occurred_at, third.roles, third.ip, third.request_id) == (when, "owner", "192.0.2.1", "q")
    assert second.occurred_at is not None
    assert audit.verify(db_session).ok


def test_a_failed_append_is_logged_with_its_cause_and_refused(app, db_session, monkeypatch, caplog):
    def broken(session):
        raise sa.exc.OperationalError("SELECT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(audit, "_head", broken)
    with app.test_request_context(headers={"X-Request-ID": "req-9"}):
        with pytest.raises(audit.AuditWriteError) as raised:
            audit.record("play", "denied", actor=SYSTEM)
        assert str(raised.value).startswith("the audit event for play could not be written: (builtins.Exception) disk")
        with pytest.raises(audit.AuditWriteError) as many:
            audit.record_many(db_session, [{"action": "purged"}, {"action": "erased"}])
        assert str(many.value).startswith("audit events could not be written: (builtins.Exception) disk")
    messages = [record.getMessage() for record in caplog.records if record.name == "callrec_plugin.audit"]
    assert messages[0].startswith("callrec audit event play/denied could not be written (request req-9): ")
    assert messages[1].startswith("callrec audit: 2 events (erased, purged) could not be written (request req-9): ")
    assert all("disk I/O error" in message for message in messages)  # the cause, not just the fact
    assert all(record.levelname == "ERROR" and record.exc_info for record in caplog.records
               if record.name == "callrec_plugin.audit")


def sqlite_only(db_session):
    if db_session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite's write lock (PostgreSQL's advisory lock: tests/test_audit_concurrency.py)")


def assert_write_lock_held_until(db_session, end_transaction):
    """Another connection cannot take SQLite's write lock now, and can once end_transaction() ran."""
    other = sa.create_engine(db_session.get_bind().url, connect_args={"timeout": 0})
    try:
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            with other.begin() as connection:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
        end_transaction()
        with other.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            connection.exec_driver_sql("ROLLBACK")
    finally:
        other.dispose()


def test_an_append_holds_sqlites_write_lock_until_its_transaction_ends(app, db_session):
    sqlite_only(db_session)
    with app.app_context():
        audit.record("first", "done", actor=SYSTEM)  # the transaction now holds the write lock
        assert_write_lock_held_until(db_session, db_session.commit)


def test_the_chain_lock_is_sqlites_write_lock_taken_before_the_head_is_read(app, db_session):
    """Nothing written yet: without BEGIN IMMEDIATE, pysqlite would read the head outside any lock."""
    sqlite_only(db_session)
    with app.app_context():
        db_session.commit()
        audit._lock_chain(db_session)
        assert_write_lock_held_until(db_session, db_session.rollback)


def test_verify_against_a_checkpoint_names_deleted_and_rewritten_events(app, db_session):
    with app.app_context():
        for number in range(4):
            audit.record("e", "done", actor=SYSTEM, reason=str(number))
        db_session.commit()
        head = audit.verify(db_session)
        third = db_session.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == 3))
        assert audit.verify_against_checkpoint(db_session, {"seq": 3, "head_hash": third}) == head
        assert audit.verify_against_checkpoint(db_session, {"seq": 4, "head_hash": head.head_hash}).ok
        ahead = audit.verify_against_checkpoint(db_session, {"seq": 6, "head_hash": "x"})
        assert ahead == audit.VerifyResult(False, 4, 4, head.head_hash, 5,
                                           "events 5 to 6 were deleted (the checkpoint reaches seq 6)")
        forged = audit.verify_against_checkpoint(db_session, {"seq": 2, "head_hash": third})
        assert forged == audit.VerifyResult(False, 4, 4, head.head_hash, 2, "the chain was rewritten: its hash at "
                                            "the checkpoint differs from the signed one")
        db_session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 2).values(reason="edited"))
        broken = audit.verify_against_checkpoint(db_session, {"seq": 4, "head_hash": head.head_hash})
        assert (broken.ok, broken.first_bad_seq) == (False, 2)


def test_verify_reads_in_batches_and_checks_every_link(app, db_session):
    with app.app_context():
        for number in range(7):
            audit.record("e", "done", actor=SYSTEM, reason=str(number))
        db_session.commit()
        result = audit.verify(db_session, batch_size=3)
        assert (result.ok, result.checked, result.head_seq) == (True, 7, 7)
        db_session.execute(sa.delete(AuditEvent).where(AuditEvent.seq == 5))
        gap = audit.verify(db_session, batch_size=3)
        assert (gap.ok, gap.first_bad_seq, gap.checked, gap.head_seq) == (False, 6, 4, 4)
        assert gap.problem == "seq 6 found where 5 was expected (a row is missing or was inserted)"


# -- holds and grants ----------------------------------------------------------------------------------

OWNER = Actor(user=None, ref="owner", name="Olive Owner", roles=frozenset({"owner"}), practice_ref="pA")
MANAGER = Actor(user=None, ref="manager", name="Max Manager", roles=frozenset({"manager"}), practice_ref="pA")


def refusal(call):
    with pytest.raises(holds.HoldError) as raised:
        call()
    return str(raised.value)


def test_each_hold_that_cannot_be_released_by_hand_says_why():
    released = Hold(kind=HoldKind.INVESTIGATION, released_at=utcnow())
    assert refusal(lambda: holds.approve_release(OWNER, released)) == "the hold is already released"
    assert refusal(lambda: holds.approve_release(OWNER, Hold(kind=HoldKind.COMPLAINT))) == (
        "a complaint hold is released when the complaint is closed or the call detached")
    assert refusal(lambda: holds.approve_release(OWNER, Hold(kind=HoldKind.DISCLOSURE))) == (
        "a disclosure hold is released when the disclosure is refused, or a set period after its bundle was delivered")


def test_holds_of_groups_every_hold_by_its_call(app, db_session):
    first, second, unheld = (add_recording(db_session) for _ in range(3))
    placed = holds.place_holds(OWNER, [first, second], HoldKind.INVESTIGATION, "look")
    holds.place_holds(OWNER, [first], HoldKind.REGULATOR, "ICO asked", external_reference="ICO-1")
    db_session.commit()
    found = holds.holds_of([first.id, second.id, unheld.id])
    assert sorted(found) == sorted([first.id, second.id])
    assert sorted(hold.kind for hold in found[first.id]) == ["investigation", "regulator"]
    assert [hold.id for hold in found[second.id]] == [hold.id for hold in placed if hold.recording_id == second.id]
    assert holds.holds_of([]) == {}


def test_a_flag_is_a_named_boolean_parameter():
    flag = grants._flag("training_outright")
    assert (flag.key, flag.type.__class__) == ("training_outright", sa.Boolean)


def _audited(db_session, action):
    db_session.expire_all()
    return db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).all()


class HoldChanges:
    """A plugin that records callrec_hold_changed."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def callrec_hold_changed(self, recording_id, hold_id, change):
        self.seen.append((recording_id, hold_id, change))


def test_placing_a_hold_is_audited_per_call_and_checks_its_kind_and_reason(app, db_session):
    calls = [add_recording(db_session) for _ in range(2)]
    purged = add_recording(db_session, status="purged")
    assert refusal(lambda: holds.place_holds(OWNER, calls, "whim", "r")) == "unknown hold kind 'whim'"
    for reason, reference in (("  ", None), (None, None), ("ok", "ICO\x071"), ("bad\x00", None)):
        assert refusal(lambda: holds.place_holds(OWNER, calls, HoldKind.REGULATOR, reason, reference)) == (
            "give the reason for the hold, in plain text")
    placed = holds.place_holds(OWNER, [*calls, purged], HoldKind.REGULATOR, "  ICO asked  ", "ICO-7")
    db_session.commit()
    assert [hold.recording_id for hold in placed] == sorted([c.id for c in calls],
                                                            key=lambda i: db_session.get(type(calls[0]), i).started_at)
    assert len({hold.group_id for hold in placed}) == 1 and placed[0].group_id
    first = placed[0]
    assert (first.kind, first.reason, first.external_reference, first.practice_ref, first.complaint_ref) == (
        "regulator", "ICO asked", "ICO-7", "pA", None)
    assert (first.placed_by_ref, first.placed_by_name, first.released_at) == ("owner", "Olive Owner", None)
    events = _audited(db_session, "hold_placed")
    assert [(e.recording_id, e.object_type, e.object_id, e.outcome, e.reason, e.actor_ref) for e in events] == [
        (hold.recording_id, "hold", str(hold.id), "done", "regulator: ICO asked", "owner") for hold in placed]
    grouped = holds.place_holds(OWNER, calls[:1], HoldKind.COMPLAINT, "evidence", complaint_ref="cX", group_id="g1")
    assert (grouped[0].group_id, grouped[0].complaint_ref, grouped[0].external_reference) == ("g1", "cX", None)
    assert holds.place_holds(OWNER, [], HoldKind.INVESTIGATION, "nothing") == []
    assert holds.lock_active([]) == [] and holds.lock_active([purged]) == []


def test_a_hold_is_placed_at_callrecs_time(app, db_session, monkeypatch):
    """Retention runs on callrec's clock (clock.now), which tests and a replayed schedule move: a hold
    placed then is dated then, not at the machine's time."""
    from callrec_plugin import clock

    call = add_recording(db_session)
    monkeypatch.setattr(clock, "now", lambda: T0)
    (hold,) = holds.place_holds(OWNER, [call], HoldKind.INVESTIGATION, "check")
    db_session.commit()
    db_session.expire_all()
    assert db_session.get(Hold, hold.id).placed_at == T0


def test_a_two_approver_hold_needs_a_second_different_person_and_both_are_audited(app, db_session):
    changes = HoldChanges()
    get_state(app).pm.register(changes, name="hold_changes")
    call = add_recording(db_session)
    (hold,) = holds.place_holds(OWNER, [call], HoldKind.LAW_ENFORCEMENT, "police request", "CAD-1")
    db_session.commit()
    assert holds.approve_release(OWNER, hold) is False
    assert (hold.release_requested_by_ref, hold.release_requested_by_name, hold.released_at) == (
        "owner", "Olive Owner", None)
    assert hold.release_requested_at is not None
    (requested,) = _audited(db_session, "hold_release_requested")
    assert (requested.outcome, requested.object_type, requested.object_id, requested.recording_id,
            requested.practice_ref, requested.reason) == (
        "done", "hold", str(hold.id), call.id, "pA", "first approval; a second, different person must approve")
    assert refusal(lambda: holds.approve_release(OWNER, hold)) == (
        "a second, different person must approve releasing a regulator or law-enforcement hold")
    assert changes.seen == []
    assert holds.approve_release(MANAGER, hold) is True
    assert (hold.released_by_ref, hold.released_by_name) == ("manager", "Max Manager") and hold.released_at
    (released,) = _audited(db_session, "hold_released")
    assert (released.outcome, released.object_type, released.object_id, released.recording_id,
            released.practice_ref, released.reason, released.actor_ref) == (
        "done", "hold", str(hold.id), call.id, "pA", "law_enforcement hold released", "manager")
    assert changes.seen == [(call.id, hold.id, "released")]


def test_an_investigation_hold_is_released_by_one_person(app, db_session):
    (hold,) = holds.place_holds(OWNER, [add_recording(db_session)], HoldKind.INVESTIGATION, "check")
    assert holds.approve_release(OWNER, hold) is True
    assert hold.released_by_ref == "owner" and hold.release_requested_by_ref is None


def test_a_group_is_its_active_holds_of_one_kind_in_one_practice(app, db_session):
    calls = [add_recording(db_session) for _ in range(3)]
    group = holds.place_holds(OWNER, calls, HoldKind.INVESTIGATION, "check", group_id="G")
    other_kind = holds.place_holds(OWNER, calls[:1], HoldKind.REGULATOR, "ICO", group_id="G")
    theirs = holds.place_holds(Actor(user=None, ref="b", name="B", roles=frozenset({"owner"}), practice_ref="pB"),
                               [add_recording(db_session, practice_ref="pB", patient_ref="patB")],
                               HoldKind.INVESTIGATION, "check", group_id="G")
    other_group = holds.place_holds(OWNER, calls[:1], HoldKind.INVESTIGATION, "other", group_id="H")
    db_session.commit()
    assert [h.id for h in holds.group_of(group[1])] == sorted(h.id for h in group)
    assert theirs and other_kind and other_group
    assert holds.approve_group_release(OWNER, group[0]) is True
    assert all(h.released_at is not None for h in group)
    assert other_kind[0].released_at is None and other_group[0].released_at is None and theirs[0].released_at is None
    assert refusal(lambda: holds.approve_group_release(OWNER, group[0])) == "the hold is already released"
    assert holds.group_of(group[0]) == []
    loose = Hold(kind=HoldKind.INVESTIGATION, group_id=None)
    assert holds.group_of(loose) == [loose]
    loose.released_at = utcnow()
    assert holds.group_of(loose) == []


def test_a_two_approver_group_records_the_first_approval_on_every_call(app, db_session):
    calls = [add_recording(db_session) for _ in range(2)]
    group = holds.place_holds(OWNER, calls, HoldKind.REGULATOR, "ICO", "ICO-2")
    assert holds.approve_group_release(OWNER, group[0]) is False
    assert [h.release_requested_by_ref for h in group] == ["owner", "owner"]
    assert holds.approve_group_release(MANAGER, group[1]) is True
    assert all(h.released_by_ref == "manager" for h in group)


def test_complaint_holds_are_found_by_complaint_and_call_and_released_when_it_closes(app, db_session):
    first, second = add_recording(db_session), add_recording(db_session)
    x1, = holds.place_holds(OWNER, [first], HoldKind.COMPLAINT, "evidence", complaint_ref="cX")
    x2, = holds.place_holds(OWNER, [second], HoldKind.COMPLAINT, "evidence", complaint_ref="cX")
    y1, = holds.place_holds(OWNER, [first], HoldKind.COMPLAINT, "evidence", complaint_ref="cY")
    inv, = holds.place_holds(OWNER, [first], HoldKind.INVESTIGATION, "cX", complaint_ref="cX")
    db_session.commit()
    assert {h.id for h in holds.active_complaint_holds("cX")} == {x1.id, x2.id}
    assert [h.id for h in holds.active_complaint_holds("cX", second.id)] == [x2.id]
    assert holds.complaint_closed("cX") == 2
    assert holds.active_complaint_holds("cX") == [] and y1.released_at is None and inv.released_at is None
    assert {e.practice_ref for e in _audited(db_session, "hold_released")} == {"pA"}  # the system works in none
    reasons = {e.recording_id: e.reason for e in _audited(db_session, "hold_released")}
    assert reasons == {first.id: "complaint hold released: complaint cX closed",
                       second.id: "complaint hold released: complaint cX closed"}
    assert holds.complaint_closed("cX") == 0


def test_the_purge_run_releases_holds_of_complaints_the_host_reports_closed_in_the_practice_asked(app, db_session):
    call = add_recording(db_session)
    theirs = add_recording(db_session, practice_ref="pB", patient_ref="patB")
    holds.place_holds(OWNER, [call], HoldKind.COMPLAINT, "evidence", complaint_ref="cX")
    holds.place_holds(OWNER, [call], HoldKind.COMPLAINT, "evidence", complaint_ref="cY")
    holds.place_holds(OWNER, [theirs], HoldKind.COMPLAINT, "evidence", complaint_ref="cB")
    db_session.commit()
    assert holds.sync_complaint_holds() == 0  # every complaint is open
    for ref in ("cX", "cB"):
        db_session.get(hostapp.Complaint, ref).status = "closed"
    db_session.commit()
    assert holds.sync_complaint_holds("pA") == 1  # cX only: cB is practice B's
    assert [h.complaint_ref for h in holds.active_complaint_holds("cB")] == ["cB"]
    assert holds.sync_complaint_holds() == 1
    assert holds.active_complaint_holds("cY") and not holds.active_complaint_holds("cB")


class AskedComplaints:
    """Notes which complaints callrec asks the host about, and lets the host answer."""

    def __init__(self):
        self.asked = []

    @hookimpl(tryfirst=True)
    def callrec_complaint_summary(self, complaint_ref):
        self.asked.append(complaint_ref)


def test_the_purge_run_asks_the_host_only_about_complaints_still_holding_calls_as_evidence(app, db_session):
    """A practice closes complaints every week: the purge run must not ask the host about each one ever held."""
    asked = AskedComplaints()
    get_state(app).pm.register(asked, name="asked_complaints")
    call = add_recording(db_session)
    holds.place_holds(OWNER, [call], HoldKind.COMPLAINT, "evidence", complaint_ref="cX")
    (done,) = holds.place_holds(OWNER, [call], HoldKind.COMPLAINT, "evidence", complaint_ref="cY")
    holds.place_holds(OWNER, [call], HoldKind.INVESTIGATION, "about cB", complaint_ref="cB")
    done.released_at = utcnow()
    db_session.commit()
    assert holds.sync_complaint_holds() == 0
    assert asked.asked == ["cX"]  # cY's evidence hold ended; cB holds the call for an investigation


def test_the_purge_run_counts_the_holds_of_every_closed_complaint(app, db_session):
    first, second = add_recording(db_session), add_recording(db_session, patient_ref="pat2")
    holds.place_holds(OWNER, [first], HoldKind.COMPLAINT, "evidence", complaint_ref="cX")
    holds.place_holds(OWNER, [second], HoldKind.COMPLAINT, "evidence", complaint_ref="cY")
    for ref in ("cX", "cY"):
        db_session.get(hostapp.Complaint, ref).status = "closed"
    db_session.commit()
    assert holds.sync_complaint_holds() == 2


def test_a_disclosure_hold_ends_the_moment_its_period_is_over_and_each_release_names_its_patient(app, db_session):
    calls = [add_recording(db_session, patient_ref=patient) for patient in ("pat1", "pat2")]
    for call in calls:
        disclosure = Disclosure(practice_ref="pA", recipient="ICO", recipient_kind="regulator", legal_basis="law",
                                reference="R", requested_by_ref="owner", delivered_at=T0)
        db_session.add(disclosure)
        db_session.flush()
        holds.place_holds(OWNER, [call], HoldKind.DISCLOSURE, "disclosure", group_id=disclosure.id)
    db_session.commit()
    period = dt.timedelta(days=app.config["CALLREC_DISCLOSURE_HOLD_DAYS"])
    assert holds.sync_disclosure_holds(T0 + period - dt.timedelta(microseconds=1)) == 0
    assert holds.sync_disclosure_holds(T0 + period) == 2
    released = {event.recording_id: event.patient_ref for event in _audited(db_session, "hold_released")}
    assert released == {calls[0].id: "pat1", calls[1].id: "pat2"}


def test_practices_past_retention_counts_a_call_due_this_very_moment_and_only_active_ones(app, db_session):
    add_recording(db_session, practice_ref="pB", patient_ref="patB", retain_until=T0)  # due exactly now
    add_recording(db_session, practice_ref="pA", retain_until=T0 - DAY, status="purged")  # already gone
    add_recording(db_session, practice_ref="pC", patient_ref="patC", retain_until=T0 + DAY)  # not yet
    db_session.commit()
    assert retention.practices_past_retention(db_session, T0) == ["pB"]
    assert retention.practices_past_retention(db_session, T0 + DAY) == ["pB", "pC"]


def test_a_disclosures_holds_end_a_set_period_after_delivery(app, db_session):
    now = utcnow()
    calls = [add_recording(db_session) for _ in range(3)]
    made = []
    for days_ago, call in zip((31, 29, None), calls):
        disclosure = Disclosure(practice_ref="pA", recipient="ICO", recipient_kind="regulator", legal_basis="law",
                                reference="R", requested_by_ref="owner",
                                delivered_at=None if days_ago is None else now - dt.timedelta(days=days_ago))
        db_session.add(disclosure)
        db_session.flush()
        made.append(holds.place_holds(OWNER, [call], HoldKind.DISCLOSURE, "disclosure", group_id=disclosure.id)[0])
    db_session.commit()
    assert holds.sync_disclosure_holds(now) == 1  # CALLREC_DISCLOSURE_HOLD_DAYS = 30
    assert [h.released_at is not None for h in made] == [True, False, False]
    (event,) = _audited(db_session, "hold_released")
    assert (event.recording_id, event.reason) == (
        calls[0].id, "disclosure hold released: disclosure delivered; its hold period ended")
    assert holds.sync_disclosure_holds(now) == 0
    assert holds.sync_disclosure_holds(now + dt.timedelta(days=1, seconds=1)) == 1
    same_group = holds.place_holds(OWNER, [calls[2]], HoldKind.INVESTIGATION, "own", group_id=made[2].group_id)[0]
    assert holds.release_disclosure_holds(made[2].group_id, "refused") == 1
    assert _audited(db_session, "hold_released")[-1].reason == "disclosure hold released: disclosure refused"
    assert same_group.released_at is None  # only the disclosure's own kind of hold
    assert holds.release_disclosure_holds(made[2].group_id, "refused") == 0  # released holds stay as they are


def test_what_a_hold_request_covers(app, db_session):
    day = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    at_start = add_recording(db_session, started_at=day)
    inside = add_recording(db_session, started_at=day + dt.timedelta(hours=5), patient_ref="pat2")
    at_end = add_recording(db_session, started_at=day + dt.timedelta(days=1))
    add_recording(db_session, started_at=day, status="purged")
    add_recording(db_session, started_at=day, practice_ref="pB", patient_ref="patB")
    cover = lambda scope, **kw: [r.id for r in holds.recordings_for_hold(OWNER, scope, **kw)]  # noqa: E731
    assert cover("recording", recording_id=inside.id) == [inside.id]
    assert cover("patient", patient_ref="pat2") == [inside.id]
    assert cover("range", start=day, end=day + dt.timedelta(days=1)) == [at_start.id, inside.id]
    assert cover("range", start=day, end=day) == []  # an empty range is not an error
    assert at_end.id in cover("range", start=day, end=day + dt.timedelta(days=2))
    for start, end in ((None, day), (day, None), (day, day - dt.timedelta(seconds=1))):
        assert refusal(lambda: holds.recordings_for_hold(OWNER, "range", start=start, end=end)) == (
            "give a date range whose end is not before its start")
    assert refusal(lambda: holds.recordings_for_hold(OWNER, "everything")) == (
        "choose what to hold: one call, a patient's calls, or a date range")


def _grant(db_session, recording, user_ref, purpose, complaint_ref=None, action="play", minutes=5, **fields):
    grant = AccessGrant(recording_id=recording.id, practice_ref=recording.practice_ref, user_ref=user_ref,
                        action=action, purpose=purpose, complaint_ref=complaint_ref,
                        expires_at=utcnow() + dt.timedelta(minutes=minutes), **fields)
    db_session.add(grant)
    db_session.commit()
    return grant


def _linked(db_session, *complaint_refs, **fields):
    recording = add_recording(db_session, wrapped_key=b"\0" * 60, **fields)  # a stored, playable call
    for ref in complaint_refs:
        db_session.add(ComplaintLink(recording_id=recording.id, practice_ref="pA", complaint_ref=ref,
                                     linked_by_ref="owner"))
    db_session.commit()
    return recording


def test_a_complaint_grant_under_a_names_complaint_rule_holds_for_a_role_that_handles_nothing(app, db_session):
    # A practice that lets trainers investigate any attached complaint (its own matrix): no handler check.
    app.config["CALLREC_PURPOSE_MATRIX"] = {"trainer": {"complaint": "names_complaint"}}
    call = _linked(db_session, "cX")
    trainer = Actor(user=None, ref="trainer", name="T", roles=frozenset({"trainer"}), practice_ref="pA")
    grant = _grant(db_session, call, "trainer", "complaint", "cX")
    with app.test_request_context():
        assert grants.check(trainer, call.id, "play").grant_id == grant.id
    app.config["CALLREC_PURPOSE_MATRIX"] = {"trainer": {"complaint": "handles_linked_complaint"}}
    with app.test_request_context():
        forget_cached()  # settings are read once per app context
        assert not grants.check(trainer, call.id, "play").granted  # now it must be a complaint they handle


def test_a_grant_check_says_which_grant_purpose_and_complaint_still_hold(app, db_session):
    call = _linked(db_session, "cX", approved_for_training=True)
    handler = Actor(user=None, ref="handler", name="H", roles=frozenset({"complaint_handler"}), practice_ref="pA")
    grant = _grant(db_session, call, "handler", "complaint", "cX")
    with app.test_request_context():
        result = grants.check(handler, call.id, "play")
        assert (result.recording.id, result.grant_id, result.purpose, result.complaint_ref) == (
            call.id, grant.id, "complaint", "cX")
        assert grants.recording_with_grant(handler, call.id, "play") == (result.recording, True)
        assert grants.valid_grant(handler, call, "play").id == grant.id
        assert grants.valid_grant(handler, call, "download") is None
        assert grants.recording_with_grant(handler, call.id, "download") == (result.recording, False)
        assert grants.check(handler, "NoSuchCall", "play") == grants.GrantCheck(None)
        outsider = Actor(user=None, ref="handler", name="H", roles=frozenset({"complaint_handler"}), practice_ref="pB")
        assert grants.check(outsider, call.id, "play") == grants.GrantCheck(None)
        nobody = Actor(user=None, ref=None, name="-", roles=frozenset({"owner"}), practice_ref="pA")
        assert grants.check(nobody, call.id, "play") == grants.GrantCheck(None)
        homeless = Actor(user=None, ref="owner", name="O", roles=frozenset({"owner"}), practice_ref=None)
        assert grants.check(homeless, call.id, "play") == grants.GrantCheck(None)
        db_session.get(hostapp.Complaint, "cX").status = "closed"
        db_session.commit()
        closed = grants.check(handler, call.id, "play")
        assert (closed.recording.id, closed.granted) == (call.id, False)


def test_the_rules_of_each_purpose_are_the_union_of_the_actors_roles(app):
    both = Actor(user=None, ref="x", name="x", roles=frozenset({"trainer", "complaint_handler"}), practice_ref="pA")
    with app.test_request_context():
        assert grants.rules_by_purpose(both) == {"training": {"approved_for_training"},
                                                 "complaint": {"handles_linked_complaint"}}
        flags = grants._parameters(grants.rules_by_purpose(both))
        assert flags["training_training"] and flags["complaint_complaint"]
        assert not any(flags[f"{purpose}_outright"] for purpose in PURPOSES)
        assert set(flags) == {f"{p}_{k}" for p in PURPOSES for k in ("outright", "training", "complaint")}
        owner_flags = grants._parameters(grants.rules_by_purpose(OWNER))
        assert all(owner_flags[f"{p}_outright"] for p in PURPOSES if p != "complaint")
        assert owner_flags["complaint_complaint"] and not owner_flags["complaint_outright"]
        assert grants.rules_by_purpose(Actor(user=None, ref="s", name="s", roles=frozenset({"staff"}),
                                             practice_ref="pA")) == {}


def test_a_refused_audio_request_says_why_no_grant_holds(app, db_session, monkeypatch):
    call = _linked(db_session, "cX")
    trainer = Actor(user=None, ref="trainer", name="T", roles=frozenset({"trainer"}), practice_ref="pA")
    with app.test_request_context():
        assert grants.refusal_reason(trainer, call, "play") == (
            "no valid access grant: choose a purpose on the recording page first")
        _grant(db_session, call, "trainer", "training", minutes=-1)  # expired: as if none
        assert grants.refusal_reason(trainer, call, "play").startswith("no valid access grant")
        _grant(db_session, call, "trainer", "training", minutes=5)
        _grant(db_session, call, "trainer", "training", minutes=9, justification="later")
        assert grants.refusal_reason(trainer, call, "play") == (
            "access grant revoked: the purpose training no longer applies "
            "(the recording is not approved for training)")
        assert grants.refusal_reason(trainer, call, "download").startswith("no valid access grant")
        _grant(db_session, call, "owner", "compliance")
        assert grants.refusal_reason(OWNER, call, "play") == (
            "access grant revoked: the purpose compliance no longer applies (its conditions no longer hold)")
        handler = Actor(user=None, ref="handler", name="H", roles=frozenset({"complaint_handler"}), practice_ref="pA")
        _grant(db_session, call, "handler", "complaint", "cX")
        monkeypatch.setattr(grants.policy, "decide", lambda *args, **kwargs: policy_deny("w" * 600))
        assert grants.refusal_reason(handler, call, "play") == (  # whatever the reason, it fits its column
            "access grant revoked: the purpose complaint no longer applies (" + "w" * 600 + ")")[:500]


# -- retention ---------------------------------------------------------------------------------------------

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def test_whole_days_left_round_up_and_stop_at_zero():
    assert retention.days_until(None, T0) is None
    assert retention.days_until(T0, T0) == 0
    assert retention.days_until(T0 - DAY, T0) == 0
    assert retention.days_until(T0 + DAY, T0) == 1
    assert retention.days_until(T0 + DAY + dt.timedelta(seconds=1), T0) == 2
    assert retention.days_until(T0 + dt.timedelta(microseconds=1), T0) == 1
    assert retention.days_until(T0 + 3 * DAY - dt.timedelta(microseconds=1), T0) == 3
    assert retention.Eligibility(False, "x", T0 + 2 * DAY).days_left(T0) == 2


def test_a_recording_may_go_at_retention_or_after_the_grace_of_its_last_release():
    grace = 7 * DAY
    held, released = Hold(released_at=None), Hold(released_at=T0)
    assert retention.purge_after(T0, [], grace) == T0
    assert retention.purge_after(T0, [released, held], grace) is None
    assert retention.purge_after(T0, [released], grace) == T0 + grace
    assert retention.purge_after(T0 + 30 * DAY, [released], grace) == T0 + 30 * DAY
    later = Hold(released_at=T0 + 2 * DAY)
    assert retention.purge_after(T0, [later, released], grace) == T0 + 2 * DAY + grace
    assert retention.purge_after_summary(T0, True, None, grace) is None
    assert retention.purge_after_summary(T0, False, None, grace) == T0


def test_each_eligibility_answer_and_its_reason():
    grace = 7 * DAY

    def answer(status="active", holds_=(), now=T0):
        recording = Recording(status=status, retain_until=T0, practice_ref="pA")
        return retention.eligibility(recording, list(holds_), now, grace)

    assert answer("purged") == retention.Eligibility(False, "already purged", None)
    assert answer("purging") == retention.Eligibility(False, "being purged", None)
    held = [Hold(kind="regulator"), Hold(kind="complaint"), Hold(kind="complaint"),
            Hold(kind="investigation", released_at=T0)]
    assert answer(holds_=held, now=T0 + 99 * DAY) == retention.Eligibility(False, "held: complaint, regulator", None)
    assert answer(now=T0 - dt.timedelta(seconds=1)) == retention.Eligibility(False, "within the retention period", T0)
    assert answer(now=T0) == retention.Eligibility(True, "past retention and not held", T0)
    release = [Hold(kind="investigation", released_at=T0 - DAY)]
    assert answer(holds_=release, now=T0) == retention.Eligibility(False, retention.GRACE_REASON, T0 + 6 * DAY)
    assert retention.GRACE_REASON == "in the grace period after a hold was released"
    assert answer(holds_=release, now=T0 + 6 * DAY) == retention.Eligibility(
        True, "past the grace period after a hold was released", T0 + 6 * DAY)
    early = [Hold(kind="investigation", released_at=T0 - 30 * DAY)]  # its grace ended before retention did
    assert answer(holds_=early, now=T0) == retention.Eligibility(True, "past retention and not held", T0)


def test_eligibility_takes_the_practices_grace_when_none_is_given(app):
    recording = Recording(status="active", retain_until=T0, practice_ref="pA")
    release = [Hold(kind="investigation", released_at=T0)]
    with app.test_request_context():
        assert retention.grace_period("pA") == 7 * DAY
        assert retention.eligibility(recording, release, T0).purge_after == T0 + 7 * DAY
        # 13:00 in London in June (BST) -> 13:00 in London in December (GMT)
        assert retention.months_after(T0, 6, "pA") == dt.datetime(2026, 12, 1, 13, 0, tzinfo=dt.timezone.utc)
        assert retention.months_after(T0, 1, zone=dt.timezone(dt.timedelta(hours=-5))) == T0 + 30 * DAY
        assert retention.retain_until_for(T0, "pA") == dt.datetime(2026, 12, 1, 13, 0, tzinfo=dt.timezone.utc)
        assert retention.retain_until_for(T0, "pA", months=1) == T0 + 30 * DAY


def test_the_sql_form_of_eligibility_selects_the_same_calls(app, db_session):
    grace = 7 * DAY
    due = add_recording(db_session, retain_until=T0 - DAY)
    exactly = add_recording(db_session, retain_until=T0)
    add_recording(db_session, retain_until=T0 + dt.timedelta(seconds=1))  # not yet
    add_recording(db_session, retain_until=T0 - DAY, status="purged")
    theirs = add_recording(db_session, practice_ref="pB", patient_ref="patB", retain_until=T0 - DAY)
    held = add_recording(db_session, retain_until=T0 - DAY)
    graced = add_recording(db_session, retain_until=T0 - DAY)
    old_release = add_recording(db_session, retain_until=T0 - DAY)
    db_session.add_all([Hold(recording_id=held.id, practice_ref="pA", kind="investigation", placed_by_ref="o"),
                        Hold(recording_id=graced.id, practice_ref="pA", kind="investigation", placed_by_ref="o",
                             released_at=T0 - grace + dt.timedelta(seconds=1)),
                        Hold(recording_id=old_release.id, practice_ref="pA", kind="investigation", placed_by_ref="o",
                             released_at=T0 - grace)])
    db_session.commit()
    found = lambda **kw: sorted(db_session.scalars(retention.eligible_for_purge(T0, **kw)).all(),  # noqa: E731
                                key=lambda r: r.id)
    expected = sorted([due, exactly, old_release, theirs], key=lambda r: r.id)
    assert [r.id for r in found(grace=grace)] == [r.id for r in expected]
    assert {r.id for r in found(grace=grace, practice_ref="pA")} == {due.id, exactly.id, old_release.id}
    assert {r.id for r in found(practice_ref="pA")} == {due.id, exactly.id, old_release.id}  # pA's grace: 7 days
    assert retention.practices_past_retention(db_session, T0) == ["pA", "pB"]
    assert retention.practices_past_retention(db_session, T0 - 2 * DAY) == []


# -- playback: Range and If-Range as RFC 9110 says ---------------------------------------------------------

ETAG = '"rec-100-blob"'


def _ranged(range_header=None, if_range=None, length=100):
    environ = {"REQUEST_METHOD": "GET", "X": "kept"}
    if range_header is not None:
        environ["HTTP_RANGE"] = range_header
    if if_range is not None:
        environ["HTTP_IF_RANGE"] = if_range
    return playback._range_as_rfc_9110_says(environ, length, ETAG)


def test_if_range_keeps_the_range_only_for_the_current_strong_etag():
    assert _ranged("bytes=10-", ETAG)["HTTP_RANGE"] == "bytes=10-"
    assert _ranged("bytes=10-", f"  {ETAG} ")["HTTP_RANGE"] == "bytes=10-"
    for validator in ("W/" + ETAG, '"other"', "Tue, 01 Dec 2026 10:00:00 GMT", ""):
        whole = _ranged("bytes=10-", validator)
        assert "HTTP_RANGE" not in whole and "HTTP_IF_RANGE" not in whole and whole["X"] == "kept"
    assert _ranged(None, '"other"') == {"REQUEST_METHOD": "GET", "X": "kept", "HTTP_IF_RANGE": '"other"'}


def test_a_range_in_another_unit_is_ignored_and_a_long_suffix_is_the_whole_file():
    for header in ("items=0-5", " Items =0-5", "lines=1-2"):
        ignored = _ranged(header)
        assert "HTTP_RANGE" not in ignored and ignored["X"] == "kept"
    assert _ranged("BYTES=0-5")["HTTP_RANGE"] == "BYTES=0-5"  # the unit is case-insensitive: still a byte range
    assert _ranged("garbage")["HTTP_RANGE"] == "garbage"  # Werkzeug answers what it cannot parse
    assert _ranged("bytes=-101")["HTTP_RANGE"] == "bytes=0-"
    assert _ranged("bytes=-100")["HTTP_RANGE"] == "bytes=-100"
    assert _ranged("bytes=-99")["HTTP_RANGE"] == "bytes=-99"
    assert _ranged("bytes=-5", length=0)["HTTP_RANGE"] == "bytes=-5"
    assert _ranged("bytes=-")["HTTP_RANGE"] == "bytes=-"
    assert _ranged("bytes=-1x")["HTTP_RANGE"] == "bytes=-1x"
    assert _ranged() == {"REQUEST_METHOD": "GET", "X": "kept"}
    # a one-digit suffix longer than a tiny file, and a one-byte file
    assert _ranged("bytes=-9", length=5)["HTTP_RANGE"] == "bytes=0-"
    assert _ranged("bytes=-5", length=1)["HTTP_RANGE"] == "bytes=0-"
    # the unit is what comes before the first "=": a malformed byte range stays for Werkzeug to answer
    assert _ranged("bytes=1-2=3")["HTTP_RANGE"] == "bytes=1-2=3"


def test_a_grant_records_who_chose_which_purpose_until_when(app, db_session):
    call = add_recording(db_session)
    app.config["CALLREC_GRANT_MINUTES"] = 7
    before = utcnow()
    grant = playback.issue_grant(OWNER, call, "play", "safety_crime", "", "threat", 41)
    db_session.commit()
    assert (grant.recording_id, grant.practice_ref, grant.user_ref, grant.action, grant.purpose) == (
        call.id, "pA", "owner", "play", "safety_crime")
    assert (grant.complaint_ref, grant.justification, grant.audit_seq) == (None, "threat", 41)
    assert before + dt.timedelta(minutes=7) <= grant.expires_at <= utcnow() + dt.timedelta(minutes=7)
    other = playback.issue_grant(OWNER, call, "download", "complaint", "cX", "", None)
    assert (other.complaint_ref, other.justification) == ("cX", None)
    db_session.flush()  # issue_grant added it to the session
    assert db_session.get(AccessGrant, other.id) is other


# -- purge: which calls a batch takes, and why each went ----------------------------------------------------


def test_the_tombstone_says_why_the_call_went():
    recording = Recording(retain_until=T0)
    assert purge.tombstone_reason(recording, retention.Eligibility(True, "", T0), ("e", "a", "b")) == \
        purge.LAWFUL_ERASURE
    assert purge.tombstone_reason(recording, retention.Eligibility(True, "", T0 + DAY), None) == purge.GRACE_AFTER_HOLD
    assert purge.tombstone_reason(recording, retention.Eligibility(True, "", T0), None) == purge.RETENTION_EXPIRED
    assert purge.tombstone_reason(recording, retention.Eligibility(False, "", None), None) == purge.RETENTION_EXPIRED
    assert len({purge.LAWFUL_ERASURE, purge.GRACE_AFTER_HOLD, purge.RETENTION_EXPIRED}) == 3


def test_a_batch_takes_the_oldest_due_calls_of_its_practice_with_their_approved_erasures(app, db_session):
    calls = [add_recording(db_session, retain_until=T0 - n * DAY) for n in (1, 3, 2)]
    add_recording(db_session, retain_until=T0 + DAY)
    add_recording(db_session, practice_ref="pB", patient_ref="patB", retain_until=T0 - 9 * DAY)
    erased, withdrawn, unapproved = calls
    db_session.add_all([
        ErasureRequest(recording_id=erased.id, practice_ref="pA", requested_by_ref="r1", approved_by_ref="a1",
                       approved_at=T0 - DAY, reason="asked"),
        ErasureRequest(recording_id=withdrawn.id, practice_ref="pA", requested_by_ref="r2", approved_by_ref="a2",
                       approved_at=T0 - DAY, withdrawn_at=T0 - DAY, reason="asked"),
        ErasureRequest(recording_id=unapproved.id, practice_ref="pA", requested_by_ref="r3", reason="asked"),
    ])
    db_session.commit()
    erasure_id = db_session.scalar(sa.select(ErasureRequest.id).where(ErasureRequest.recording_id == erased.id))
    context = purge.BatchContext(practice_ref="pA", now=T0, grace=7 * DAY, batch_size=2, purged_by="test",
                                 delete_after=T0)
    batch = purge._candidates(db_session, context, rejected=set())
    assert [(r.id, erasure) for r, erasure in batch] == [(withdrawn.id, None), (unapproved.id, None)]
    db_session.rollback()
    wide = purge.BatchContext(practice_ref="pA", now=T0, grace=7 * DAY, batch_size=10, purged_by="test",
                              delete_after=T0)
    batch = purge._candidates(db_session, wide, rejected={withdrawn.id})
    assert [(r.id, erasure) for r, erasure in batch] == [(unapproved.id, None), (erased.id, (erasure_id, "r1", "a1"))]
    db_session.rollback()


# -- the CRE1 format, checked by an independent reader and writer (docs/format.md) -------------------------

RID = "rec-format-1"
DATA_KEY = bytes(range(32, 64))
SEG = crypto.SEGMENT_SIZE


def reference_decrypt(blob, data_key=DATA_KEY, recording_id=RID):
    """docs/format.md, written out: header, HKDF file key, segment nonces, the header as AAD."""
    header = blob[:48]
    magic, version, segment_size, salt, prefix = struct.unpack(">4sBI32s7s", header)
    assert (magic, version, segment_size) == (b"CRE1", 1, SEG)
    aead = AESGCM(hkdf_sha256(data_key, salt, b"callrec CRE1 " + recording_id.encode()))
    body, plain, index = blob[48:], b"", 0
    while True:
        segment, body = body[:SEG + 16], body[SEG + 16:]
        last = not body
        plain += aead.decrypt(prefix + struct.pack(">IB", index, 1 if last else 0), segment, header)
        index += 1
        if last:
            return plain


def reference_encrypt(plain, data_key=DATA_KEY, recording_id=RID, salt=b"s" * 32, prefix=b"p" * 7):
    header = struct.pack(">4sBI32s7s", b"CRE1", 1, SEG, salt, prefix)
    aead = AESGCM(hkdf_sha256(data_key, salt, b"callrec CRE1 " + recording_id.encode()))
    pieces = [plain[i:i + SEG] for i in range(0, len(plain), SEG)] or [b""]
    return header + b"".join(aead.encrypt(prefix + struct.pack(">IB", i, 1 if i == len(pieces) - 1 else 0), p, header)
                             for i, p in enumerate(pieces))


SIZES = (0, 1, SEG - 1, SEG, SEG + 1, 4 * SEG - 1, 4 * SEG, 4 * SEG + 1, 8 * SEG, 9 * SEG + 5)


def test_what_encrypt_stream_writes_is_cre1_as_documented():
    for size in SIZES:
        plain = bytes((i * 7 + size) % 251 for i in range(size))
        out = io.BytesIO()
        result = crypto.encrypt_stream(io.BytesIO(plain), out, DATA_KEY, RID)
        blob = out.getvalue()
        assert reference_decrypt(blob) == plain, size
        assert (result.plaintext_size, result.stored_size) == (size, len(blob)) == (size, crypto.stored_length_for(size))
        assert result.sha256 == hashlib.sha256(plain).hexdigest()
        assert crypto.encrypt_stream(io.BytesIO(plain), io.BytesIO(), DATA_KEY, RID, hash_plaintext=False).sha256 is None


def test_the_reader_reads_cre1_as_documented():
    for size in SIZES:
        plain = bytes((i * 5 + size) % 253 for i in range(size))
        blob = reference_encrypt(plain)
        reader = crypto.DecryptingReader(io.BytesIO(blob), DATA_KEY, RID, len(blob))
        assert reader.length == size and reader.read() == plain, size
        if size > SEG:
            reader.seek(SEG - 3)
            assert reader.read(6) == plain[SEG - 3:SEG + 3]
        reader.close()


def test_the_stored_size_arithmetic():
    assert [crypto._segment_count(n) for n in (0, 1, SEG, SEG + 1, 2 * SEG)] == [1, 1, 1, 2, 2]
    assert crypto.stored_length_for(0) == 48 + 16
    assert crypto.stored_length_for(SEG + 1) == 48 + SEG + 1 + 32
    with pytest.raises(ValueError, match=r"^plaintext_size must be >= 0$"):
        crypto.stored_length_for(-1)
    assert crypto.plaintext_length_for(48 + 16) == 0
    assert crypto.plaintext_length_for(48 + SEG + 16) == SEG
    assert crypto.plaintext_length_for(48 + SEG + 16 + 17) == SEG + 1
    with pytest.raises(crypto.FormatError, match=r"^a CRE1 blob of 63 bytes is too short to hold a segment$"):
        crypto.plaintext_length_for(63)
    with pytest.raises(crypto.FormatError, match=r"^\d+ bytes is not a valid CRE1 blob size \(truncated or extended\)$"):
        crypto.plaintext_length_for(48 + SEG + 16 + 16)
    huge = 48 + (2**32 + 1) * (SEG + 16)
    with pytest.raises(crypto.FormatError, match=r"^CRE1 blob has more segments than the format allows$"):
        crypto.plaintext_length_for(huge)
    assert crypto.plaintext_length_for(48 + 2**32 * (SEG + 16)) == 2**32 * SEG


def test_argument_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"^data_key must be 32 bytes$"):
        crypto.derive_file_key(b"k" * 31, b"s", RID)
    with pytest.raises(ValueError, match=r"^data_key must be 32 bytes$"):
        crypto.derive_file_key("k" * 32, b"s", RID)
    with pytest.raises(TypeError, match=r"^recording_id must be a str, not bytes$"):
        crypto.derive_file_key(DATA_KEY, b"s", b"rec")
    with pytest.raises(ValueError, match=r"^max_bytes must be >= 0$"):
        crypto.encrypt_stream(io.BytesIO(b""), io.BytesIO(), DATA_KEY, RID, max_bytes=-1)


def test_max_bytes_is_the_largest_size_accepted():
    for limit in (0, 5, SEG, 4 * SEG):
        exact = crypto.encrypt_stream(io.BytesIO(b"a" * limit), io.BytesIO(), DATA_KEY, RID, max_bytes=limit)
        assert exact.plaintext_size == limit
        with pytest.raises(crypto.TooLargeError, match=rf"^recording is larger than the limit of {limit} bytes$"):
            crypto.encrypt_stream(io.BytesIO(b"a" * (limit + 1)), io.BytesIO(), DATA_KEY, RID, max_bytes=limit)


def test_the_readers_header_errors_name_what_is_wrong():
    blob = reference_encrypt(b"hello")

    def opened(data):
        return crypto.DecryptingReader(io.BytesIO(data), DATA_KEY, RID, len(data))

    with pytest.raises(crypto.FormatError, match=r"^not a CRE1 blob: shorter than the 48-byte header$"):
        opened(blob[:47])
    with pytest.raises(crypto.FormatError, match=r"^not a CRE1 blob: magic is b'CRE2', expected b'CRE1'$"):
        opened(b"CRE2" + blob[4:])
    with pytest.raises(crypto.FormatError, match=r"^unsupported CRE1 version 2 \(this code reads version 1\)$"):
        opened(blob[:4] + b"\x02" + blob[5:])
    with pytest.raises(crypto.FormatError, match=r"^unsupported CRE1 segment size 4096 \(this code reads 65536\)$"):
        opened(blob[:5] + struct.pack(">I", 4096) + blob[9:])
    reader = opened(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(crypto.TamperedError, match=r"^CRE1 segment 0 of 1 failed authentication: the recording was "
                                                   r"modified, truncated, extended or reordered, or the wrong data "
                                                   r"key or recording id was used$"):
        reader.read()
    with pytest.raises(crypto.TamperedError, match=r"^refusing to read after an authentication failure: CRE1 segment 0"):
        reader.read()


class Unmappable(io.RawIOBase):
    """A seekable file with no fileno (an object store's stream): the reader reads instead of mapping."""

    def __init__(self, data, chunk=None):
        self._data, self._pos, self._chunk = data, 0, chunk

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        self._pos = offset if whence == io.SEEK_SET else (self._pos + offset if whence == io.SEEK_CUR
                                                          else len(self._data) + offset)
        return self._pos

    def readinto(self, buffer):
        n = min(len(buffer), len(self._data) - self._pos, self._chunk or len(buffer))
        buffer[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def test_a_stream_that_cannot_be_mapped_is_read_segment_by_segment_even_in_small_pieces():
    plain = bytes(i % 249 for i in range(3 * SEG + 10))
    blob = reference_encrypt(plain)
    for chunk in (None, 1000):
        reader = crypto.DecryptingReader(Unmappable(blob, chunk), DATA_KEY, RID, len(blob))
        assert reader.read() == plain
        reader.seek(SEG + 1)
        assert reader.read(5) == plain[SEG + 1:SEG + 6]
    stated = len(blob) + SEG + 16  # the storage says the blob is one segment longer than it is
    reader = crypto.DecryptingReader(Unmappable(blob), DATA_KEY, RID, stated)
    with pytest.raises(crypto.TamperedError, match=r"^CRE1 segment 4 is truncated: the blob is shorter than its stated size$"):
        reader.length


def test_events_appended_in_one_insert_during_a_request_carry_its_ip_and_id(app, db_session):
    with app.test_request_context(headers={"X-Request-ID": "req-many"}, environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        audit.record_many(db_session, [{"action": "purged", "outcome": "done"}])
        db_session.commit()
    (event,) = _events(db_session)
    assert (event.ip, event.request_id) == ("192.0.2.7", "req-many")


def test_the_refusal_reason_reads_this_users_latest_live_grant_for_this_call(app, db_session, monkeypatch):
    call, other = _linked(db_session), _linked(db_session)
    with app.test_request_context():
        _grant(db_session, other, "owner", "compliance")  # a grant for another call says nothing about this one
        assert grants.refusal_reason(OWNER, call, "play").startswith("no valid access grant")
        _grant(db_session, call, "owner", "safety_crime", justification="The caller threatened a receptionist.")
        assert grants.refusal_reason(OWNER, call, "play") == (
            "access grant revoked: the purpose safety_crime no longer applies (its conditions no longer hold)")
        frozen = utcnow() + dt.timedelta(hours=1)
        expiring = _grant(db_session, call, "owner", "training", minutes=60)
        expiring.expires_at = frozen
        db_session.commit()
        monkeypatch.setattr(grants, "utcnow", lambda: frozen)  # the grant expires exactly now: it is gone
        assert grants.refusal_reason(OWNER, call, "play").startswith("no valid access grant")


class ReadOnly:
    """A seekable stream with read() only: no readinto, no fileno (some storage clients' streams)."""

    def __init__(self, data, chunk):
        self._data, self._pos, self._chunk = data, 0, chunk

    def seek(self, offset, whence=io.SEEK_SET):
        self._pos = offset
        return offset

    def read(self, n=-1):
        n = min(n, self._chunk) if n >= 0 else self._chunk
        chunk, self._pos = self._data[self._pos:self._pos + n], self._pos + min(n, len(self._data) - self._pos)
        return chunk

    def close(self):
        pass


def test_a_stream_without_readinto_is_read_in_pieces():
    plain = bytes(i % 241 for i in range(2 * SEG + 3))
    blob = reference_encrypt(plain)
    reader = crypto.DecryptingReader(ReadOnly(blob, 777), DATA_KEY, RID, len(blob))
    assert reader.length == len(plain) and reader.read() == plain
    short = crypto.DecryptingReader(ReadOnly(blob, 777), DATA_KEY, RID, len(blob) + SEG + 16)
    with pytest.raises(crypto.TamperedError, match=r"^CRE1 segment 3 is truncated"):
        short.length


def test_a_batch_takes_calls_in_the_order_they_fell_due_with_the_contexts_grace(app, db_session):
    calls = [add_recording(db_session, retain_until=T0 - n * DAY) for n in (5, 1, 4, 2, 6, 3)]
    released = add_recording(db_session, retain_until=T0 - 9 * DAY)
    db_session.add(Hold(recording_id=released.id, practice_ref="pA", kind="investigation", placed_by_ref="o",
                        released_at=T0 - DAY))
    db_session.commit()
    no_grace = purge.BatchContext(practice_ref="pA", now=T0, grace=dt.timedelta(0), batch_size=10,
                                  purged_by="test", delete_after=T0)
    batch = [r.id for r, _ in purge._candidates(db_session, no_grace, rejected=set())]
    db_session.rollback()
    assert batch == [released.id] + [c.id for c in sorted(calls, key=lambda c: c.retain_until)]
    week = purge.BatchContext(practice_ref="pA", now=T0, grace=7 * DAY, batch_size=10, purged_by="test",
                              delete_after=T0)
    assert released.id not in [r.id for r, _ in purge._candidates(db_session, week, rejected=set())]
    db_session.rollback()


def test_a_release_request_names_the_holds_practice_whoever_approves(app, db_session):
    (hold,) = holds.place_holds(OWNER, [add_recording(db_session)], HoldKind.REGULATOR, "ICO", "ICO-3")
    roaming = Actor(user=None, ref="auditor", name="A", roles=frozenset({"owner"}), practice_ref=None)
    assert holds.approve_release(roaming, hold) is False
    assert _audited(db_session, "hold_release_requested")[0].practice_ref == "pA"


def test_a_stream_whose_read_returns_none_is_a_truncated_blob():
    blob = reference_encrypt(b"x" * 10)

    class Dry(ReadOnly):
        def read(self, n=-1):
            return super().read(n) or None

    reader = crypto.DecryptingReader(Dry(blob, 64), DATA_KEY, RID, len(blob) + SEG + 16)
    with pytest.raises(crypto.TamperedError, match=r"is truncated"):
        reader.length


def test_the_refusal_names_the_grant_that_expires_last(app, db_session):
    call = _linked(db_session)
    trainer = Actor(user=None, ref="trainer", name="T", roles=frozenset({"trainer"}), practice_ref="pA")
    with app.test_request_context():
        _grant(db_session, call, "trainer", "training", minutes=5)
        _grant(db_session, call, "trainer", "spot_check", minutes=9)
        assert grants.refusal_reason(trainer, call, "play").startswith(
            "access grant revoked: the purpose spot_check no longer applies")


def test_calls_due_at_the_same_moment_are_taken_in_id_order(app, db_session):
    calls = [add_recording(db_session, retain_until=T0 - DAY) for _ in range(6)]
    context = purge.BatchContext(practice_ref="pA", now=T0, grace=7 * DAY, batch_size=10, purged_by="test",
                                 delete_after=T0)
    batch = [r.id for r, _ in purge._candidates(db_session, context, rejected=set())]
    db_session.rollback()
    assert batch == sorted(c.id for c in calls)


def test_a_hold_request_lists_its_calls_in_the_order_they_were_made(app, db_session):
    day = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    made = [add_recording(db_session, started_at=day + dt.timedelta(hours=h)) for h in (5, 1, 3)]
    found = holds.recordings_for_hold(OWNER, "range", start=day, end=day + DAY)
    assert [r.id for r in found] == [made[1].id, made[2].id, made[0].id]


def test_months_are_counted_on_the_zone_given_else_on_the_practices_own_calendar(app):
    class NewYork:
        @hookimpl
        def callrec_practice_settings(self, practice_ref):
            return {"timezone": "America/New_York"} if practice_ref == "pA" else None

    get_state(app).pm.register(NewYork(), name="new_york")
    late_on_the_30th = dt.datetime(2027, 1, 30, 23, 30, tzinfo=dt.timezone.utc)  # 31 January in Karachi
    karachi = dt.timezone(dt.timedelta(hours=5))
    with app.test_request_context():
        forget_cached()
        # Karachi: 31 Jan 04:30 + 1 month = 28 Feb 04:30 there; London (the default): 30 Jan -> 28 Feb 23:30
        assert retention.months_after(late_on_the_30th, 1, "pA", zone=karachi) == dt.datetime(
            2027, 2, 27, 23, 30, tzinfo=dt.timezone.utc)
        assert retention.months_after(late_on_the_30th, 1) == dt.datetime(2027, 2, 28, 23, 30, tzinfo=dt.timezone.utc)
        # 1 July 03:30 UTC is 30 June 23:30 in New York, so six months on is 30 December 23:30 EST there
        # (31 December 04:30 UTC); in London it is 1 July 04:30 BST, six months on 1 January 04:30 GMT
        july = dt.datetime(2026, 7, 1, 3, 30, tzinfo=dt.timezone.utc)
        assert retention.months_after(july, 6, "pA") == dt.datetime(2026, 12, 31, 4, 30, tzinfo=dt.timezone.utc)
        assert retention.months_after(july, 6) == dt.datetime(2027, 1, 1, 4, 30, tzinfo=dt.timezone.utc)


def test_the_sql_eligibility_uses_the_practices_own_grace(app, db_session):
    class ShortGrace:
        @hookimpl
        def callrec_practice_settings(self, practice_ref):
            return {"grace_days": 1} if practice_ref == "pA" else None

    get_state(app).pm.register(ShortGrace(), name="short_grace")
    call = add_recording(db_session, retain_until=T0 - 9 * DAY)
    db_session.add(Hold(recording_id=call.id, practice_ref="pA", kind="investigation", placed_by_ref="o",
                        released_at=T0 - 2 * DAY))
    db_session.commit()
    with app.test_request_context():
        forget_cached()
        assert retention.grace_period("pA") == DAY and retention.grace_period(None) == 7 * DAY
        found = db_session.scalars(retention.eligible_for_purge(T0, practice_ref="pA")).all()
    assert [r.id for r in found] == [call.id]  # released two days ago: past pA's one-day grace


def test_more_events_than_one_insert_holds_are_each_appended_once(app, db_session):
    rows = audit.record_many(db_session, [{"action": "purged", "outcome": "done", "object_id": str(n)}
                                          for n in range(1001)])
    db_session.commit()
    assert [row["seq"] for row in rows] == list(range(1, 1002))
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 1001
    result = audit.verify(db_session)
    assert (result.ok, result.checked) == (True, 1001)


# -- crypto: the paths the first runs did not reach ----------------------------------------------------------


def _crypto_round_trip(data, **kwargs):
    blob = io.BytesIO()
    result = crypto.encrypt_stream(io.BytesIO(data), blob, bytes(range(32)), "rec-1", **kwargs)
    reader = crypto.DecryptingReader(io.BytesIO(blob.getvalue()), bytes(range(32)), "rec-1", result.stored_size)
    return result, reader.read()


def test_without_encrypt_into_older_cryptography_writes_the_same_readable_blob(monkeypatch):
    """cryptography < 44 has no AESGCM.encrypt_into: the fallback must write every segment, in full."""
    data = bytes(range(256)) * (crypto.SEGMENT_SIZE * 5 // 256) + b"tail"  # one batch and a bit more
    monkeypatch.setattr(crypto, "_HAS_ENCRYPT_INTO", False)
    result, plain = _crypto_round_trip(data)
    assert plain == data and result.plaintext_size == len(data)
    assert result.stored_size == crypto.stored_length_for(len(data))


class CountingSource(io.RawIOBase):
    def __init__(self, size):
        self.left, self.given = size, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = b"\x07" * n
        self.left, self.given = self.left - n, self.given + n
        return n


def test_a_capped_encryption_reads_no_more_than_one_byte_past_the_cap():
    cap = crypto.SEGMENT_SIZE * 5  # past the first batch of four segments
    source = CountingSource(cap * 3)
    with pytest.raises(crypto.TooLargeError):
        crypto.encrypt_stream(source, io.BytesIO(), bytes(range(32)), "rec-1", max_bytes=cap)
    assert source.given == cap + 1


def test_a_stream_of_more_segments_than_cre1_numbers_is_refused_with_its_reason(monkeypatch):
    monkeypatch.setattr(crypto, "_MAX_SEGMENTS", 4)
    _crypto_round_trip(b"\x01" * crypto.SEGMENT_SIZE * 4)  # exactly the maximum: fine
    with pytest.raises(crypto.TooLargeError) as refused:
        crypto.encrypt_stream(io.BytesIO(b"\x01" * (crypto.SEGMENT_SIZE * 4 + 1)), io.BytesIO(), bytes(range(32)),
                              "rec-1")
    assert str(refused.value) == "stream exceeds the CRE1 maximum of 2**32 segments"


def test_a_blob_shorter_than_its_stated_size_is_named_truncated(tmp_path):
    data = b"\x02" * (crypto.SEGMENT_SIZE * 3)
    blob = io.BytesIO()
    result = crypto.encrypt_stream(io.BytesIO(data), blob, bytes(range(32)), "rec-1")
    path = tmp_path / "cut.cre"
    path.write_bytes(blob.getvalue()[:crypto.HEADER_SIZE + crypto.SEGMENT_SIZE + crypto.TAG_SIZE + 10])
    with pytest.raises(crypto.TamperedError) as damaged:
        reader = crypto.DecryptingReader(open(path, "rb"), bytes(range(32)), "rec-1", result.stored_size)
        reader.read()
    assert "is truncated: the blob is shorter than its stated size" in str(damaged.value)
    assert str(damaged.value).startswith("CRE1 segment ")


# -- the practice's own purpose matrix and grace, where callrec asks with the practice ----------------------


def test_the_revocation_recheck_and_eligibility_ask_with_the_actors_practice(app, db_session):
    class PracticeA:
        @hookimpl
        def callrec_practice_settings(self, practice_ref):
            if practice_ref != "pA":
                return None
            return {"grace_days": 2, "purpose_matrix": {"owner": {"compliance": "allow"}}}

    get_state(app).pm.register(PracticeA(), name="practice_a")
    recording = Recording(status="active", retain_until=T0, practice_ref="pA")
    with app.test_request_context():
        forget_cached()
        assert grants.rules_by_purpose(OWNER) == {"compliance": {"allow"}}
        assert retention.eligibility(recording, [Hold(kind="investigation", released_at=T0)], T0).purge_after == (
            T0 + 2 * DAY)


def test_a_decision_on_a_call_is_audited_against_that_call(app, db_session):
    from callrec_plugin import policy
    from callrec_plugin.roles import Action

    call = add_recording(db_session, patient_ref="pat2")
    db_session.commit()
    decision = policy.authorize(OWNER, Action.PLAY, call)  # no purpose chosen: refused, and committed
    assert not decision
    (event,) = _audited(db_session, Action.PLAY)
    assert (event.recording_id, event.practice_ref, event.patient_ref, event.outcome) == (
        call.id, "pA", "pat2", "denied")


def test_a_local_time_in_the_spring_gap_is_the_very_microsecond_the_clocks_jump_and_is_utc():
    import zoneinfo

    london = zoneinfo.ZoneInfo("Europe/London")
    jump = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.timezone.utc)
    for wall in (dt.datetime(2026, 3, 29, 1, 30), dt.datetime(2026, 3, 29, 1, 59, 59, 999999)):
        found = retention.local_to_utc(wall, london)
        assert found == jump and found.tzinfo is dt.timezone.utc
    autumn = retention.local_to_utc(dt.datetime(2026, 10, 25, 1, 30), london)  # the repeated hour: its first time
    assert autumn == dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.timezone.utc) and autumn.tzinfo is dt.timezone.utc


def test_the_hashed_time_is_utc_whatever_the_servers_own_zone(monkeypatch):
    import time

    moment = dt.datetime(2026, 3, 1, 12, 4, 5, 60, tzinfo=dt.timezone.utc)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert audit._canonical_value(moment) == "2026-03-01T12:04:05.000060Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_event_without_an_actor_has_no_practice_and_a_request_keeps_its_own_id(app, db_session):
    def outside(session):
        event = audit.record("key_rotated", "done", reason="no one asked")
        return event.practice_ref, event.actor_ref, event.request_id

    assert outside_any_request(app, outside) == (None, None, None)
    with app.test_request_context(headers={"X-Request-ID": "req-from-the-proxy"}):
        inside = audit.record("key_rotated", "done", actor=SYSTEM, request_ref="an-earlier-request")
        assert inside.request_id == "req-from-the-proxy"
    db_session.rollback()
