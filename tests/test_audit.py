"""The audit trail: chained, verified link by link, checkpointed; no audio without its audit event."""
import random

import pytest
import sqlalchemy as sa

from callrec_plugin import audit
from callrec_plugin.checkpoints import generate_signing_key
from callrec_plugin.identity import SYSTEM
from callrec_plugin.models import AccessGrant, AuditEvent
from tests.factories import add_recording
from tests.conftest import csrf_from

EVENTS = 30


@pytest.fixture
def chain(app, db_session):
    for number in range(EVENTS):
        audit.record("test_event", "done", actor=SYSTEM, reason=f"event {number}", object_type="test",
                     object_id=str(number), practice_ref="pA")
    db_session.commit()
    return db_session


@pytest.fixture
def signing_key(app, tmp_path):
    path = str(tmp_path / "audit-signing.pem")
    generate_signing_key(path)
    app.config["CALLREC_AUDIT_SIGNING_KEY_FILE"] = path
    return path


def test_verify_passes_on_an_intact_chain(app, chain):
    result = app.test_cli_runner().invoke(args=["callrec", "audit", "verify"])
    assert result.exit_code == 0
    assert f"audit chain intact: {EVENTS} events, head seq {EVENTS}" in result.output


def test_verify_names_the_first_bad_seq_and_exits_non_zero(app, chain):
    chain.execute(sa.update(AuditEvent).where(AuditEvent.seq == 17).values(reason="nothing to see"))
    chain.commit()
    result = app.test_cli_runner().invoke(args=["callrec", "audit", "verify"])
    assert result.exit_code == 1
    assert "BROKEN at seq 17" in result.output


def _edit(session, rng):
    seq = rng.randint(1, EVENTS)
    field = rng.choice(["actor_ref", "reason", "outcome", "purpose", "object_id", "ip"])
    session.execute(sa.update(AuditEvent).where(AuditEvent.seq == seq).values({field: f"x{rng.randint(0, 99999)}"}))


def _delete(session, rng):
    session.execute(sa.delete(AuditEvent).where(AuditEvent.seq == rng.randint(1, EVENTS - 1)))


def _insert(session, rng):
    # A forged event appended with a correct-looking hash of its own, but in the middle of the chain.
    at = rng.randint(2, EVENTS)
    previous = session.get(AuditEvent, at - 1)
    session.execute(sa.update(AuditEvent).where(AuditEvent.seq >= at).values(seq=AuditEvent.seq + 1000))
    forged = AuditEvent(seq=at, occurred_at=previous.occurred_at, action="forged", outcome="done",
                        roles="", prev_hash=previous.hash, hash="")
    forged.hash = audit.chain_hash(forged.prev_hash, audit.event_values(forged))
    session.add(forged)
    session.flush()
    session.execute(sa.update(AuditEvent).where(AuditEvent.seq >= at + 1000).values(seq=AuditEvent.seq - 999))


def _swap(session, rng):
    first, second = rng.sample(range(1, EVENTS + 1), 2)
    rows = {seq: session.get(AuditEvent, seq) for seq in (first, second)}
    values = {seq: {c: getattr(rows[seq], c) for c in ("reason", "object_id", "hash", "prev_hash")} for seq in rows}
    for seq, other in ((first, second), (second, first)):
        session.execute(sa.update(AuditEvent).where(AuditEvent.seq == seq).values(values[other]))


def _delete_tail(session, rng):
    session.execute(sa.delete(AuditEvent).where(AuditEvent.seq > EVENTS - rng.randint(1, 5)))


MUTATIONS = [_edit, _delete, _insert, _swap, _delete_tail]


def test_two_hundred_random_mutations_are_all_detected(app, chain, signing_key, tmp_path):
    checkpoint = str(tmp_path / "checkpoint.json")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["callrec", "audit", "checkpoint", checkpoint]).exit_code == 0
    rng = random.Random(20261130)
    undetected = []
    engine = chain.get_bind()
    for attempt in range(200):
        mutation = MUTATIONS[attempt % len(MUTATIONS)]
        with engine.connect() as connection:
            transaction = connection.begin()
            session = sa.orm.Session(bind=connection)
            mutation(session, rng)
            session.flush()
            result = audit.verify(session)
            if result.ok and mutation is _delete_tail:
                from callrec_plugin.checkpoints import load_signing_key, read_checkpoint

                signed = read_checkpoint(checkpoint, load_signing_key(signing_key))
                result = audit.verify_against_checkpoint(session, signed)
            if result.ok:
                undetected.append(mutation.__name__)
            session.close()
            transaction.rollback()
    assert undetected == []
    assert audit.verify(chain).ok  # every mutation was rolled back


def test_checkpoint_cli_detects_a_deleted_tail(app, chain, signing_key, tmp_path):
    checkpoint = str(tmp_path / "checkpoint.json")
    runner = app.test_cli_runner()
    runner.invoke(args=["callrec", "audit", "checkpoint", checkpoint])
    chain.execute(sa.delete(AuditEvent).where(AuditEvent.seq > EVENTS - 3))
    chain.commit()
    assert runner.invoke(args=["callrec", "audit", "verify"]).exit_code == 0  # the chain alone cannot tell
    result = runner.invoke(args=["callrec", "audit", "verify", "--checkpoint", checkpoint])
    assert result.exit_code == 1
    assert f"BROKEN at seq {EVENTS - 2}" in result.output


def test_a_forged_checkpoint_is_refused(app, chain, signing_key, tmp_path):
    checkpoint = tmp_path / "checkpoint.json"
    app.test_cli_runner().invoke(args=["callrec", "audit", "checkpoint", str(checkpoint)])
    checkpoint.write_text(checkpoint.read_text().replace(f'"seq": {EVENTS}', '"seq": 3'))
    result = app.test_cli_runner().invoke(args=["callrec", "audit", "verify", "--checkpoint", str(checkpoint)])
    assert result.exit_code != 0 and "not signed" in result.output


def test_checkpoint_without_a_key_explains_how_to_make_one(app, chain, tmp_path):
    result = app.test_cli_runner().invoke(args=["callrec", "audit", "checkpoint", str(tmp_path / "c.json")])
    assert result.exit_code != 0 and "init-key" in result.output


def test_when_the_audit_write_fails_no_grant_and_no_audio(app, db_session, login, monkeypatch):
    recording = add_recording(db_session)
    client = login("owner")
    page = client.get(f"/callrec/recordings/{recording.id}")
    token = csrf_from(page.get_data(as_text=True))

    def failing_record(*args, **kwargs):
        raise audit.AuditWriteError("disk full")

    monkeypatch.setattr(audit, "record", failing_record)
    response = client.post(f"/callrec/recordings/{recording.id}/grants",
                           data={"csrf_token": token, "purpose": "compliance", "action": "play"})
    assert response.status_code == 503
    assert "audit" in response.get_data(as_text=True).lower()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AccessGrant)) == 0
    audio = client.get(f"/callrec/recordings/{recording.id}/audio")
    assert audio.status_code == 503 and b"RIFF" not in audio.data
    assert page.status_code == 200
