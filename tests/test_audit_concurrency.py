"""Concurrent audited requests: every one answered, one chain, contiguous ``seq`` — on SQLite too.

Each refused audio request writes one audit event. Many threads at once used to make two requests
read the same chain head on SQLite and the second fail the unique ``seq`` (503 "Audit trail
unavailable"). The append now takes the database's write lock before reading the head.
"""
import threading

import sqlalchemy as sa

from callrec_plugin import audit
from callrec_plugin.models import AuditEvent
from tests.factories import add_recording

THREADS = 8
REQUESTS_PER_THREAD = 25


def test_threads_of_audited_requests_all_answer_and_the_chain_verifies(app, db_session, login):
    recording = add_recording(db_session)
    url = f"/callrec/recordings/{recording.id}/audio"
    users = ["reception", "owner", "manager", "trainer"]
    clients = [login(users[n % len(users)]) for n in range(THREADS)]
    before = db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    db_session.commit()  # no transaction of the test's own stays open during the load
    statuses, errors = [], []
    start = threading.Barrier(THREADS)

    def run(client):
        try:
            start.wait(timeout=30)
            for _ in range(REQUESTS_PER_THREAD):
                statuses.append(client.get(url).status_code)  # no grant: refused, and audited
        except Exception as exc:  # a crash in a thread must fail the test, not vanish
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    total = THREADS * REQUESTS_PER_THREAD
    assert len(statuses) == total
    assert statuses.count(403) == total, {status: statuses.count(status) for status in set(statuses)}

    db_session.expire_all()
    seqs = db_session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    assert len(seqs) == before + total
    assert seqs == list(range(1, len(seqs) + 1))  # contiguous: no gap, no duplicate
    refused = db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.recording_id == recording.id, AuditEvent.outcome != "allowed"))
    assert refused == total
    result = audit.verify(db_session)
    assert result.ok and result.checked == len(seqs), result


def test_an_audit_write_failure_is_logged_with_its_cause(app, db_session, login, monkeypatch, caplog):
    recording = add_recording(db_session)
    audit.record("test_event", "done", reason="the first event")
    db_session.commit()
    # A stale head, as two appenders without the lock would read: the insert breaks the unique seq.
    monkeypatch.setattr(audit, "_head", lambda session: (0, audit.GENESIS_HASH))
    with caplog.at_level("ERROR", logger="callrec_plugin.audit"):
        response = login("reception").get(f"/callrec/recordings/{recording.id}/audio")
    assert response.status_code == 503 and b"Audit trail unavailable" in response.data
    logged = [r for r in caplog.records if r.name == "callrec_plugin.audit"]
    assert logged, "the refusal's cause was not logged"
    message = logged[0].getMessage().lower()
    assert "could not be written" in message and "unique" in message and "seq" in message
    db_session.expire_all()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 1
