"""The append-only, hash-chained audit trail.

Each event's hash is SHA-256 of the previous event's hash followed by the canonical JSON of the
event, so editing, inserting, deleting or reordering any row breaks the chain at that row. Deleting
the newest rows is caught by comparing against a signed checkpoint (see checkpoints.py).
"""
import datetime as dt
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from flask import g, has_request_context, request

from callrec_plugin.state import db_session
from callrec_plugin.models import AuditEvent, utcnow

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64

# The fields covered by the hash, in canonical order. Adding one changes every hash: never reorder.
HASHED_FIELDS = (
    "seq", "occurred_at", "actor_ref", "actor_name", "roles", "practice_ref", "action", "object_type",
    "object_id", "recording_id", "patient_ref", "purpose", "justification", "outcome", "reason", "ip",
    "request_id",
)

# An arbitrary constant: the PostgreSQL advisory lock that serialises appends to the chain.
_PG_CHAIN_LOCK = 0x63616C6C  # "call"


class AuditWriteError(RuntimeError):
    """The audit event could not be written; the action it describes must not happen."""


def _canonical_value(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def canonical(values):
    """The canonical bytes of an event: sorted-key compact JSON of the hashed fields."""
    body = {name: _canonical_value(values.get(name)) for name in HASHED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash, values):
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(values)).hexdigest()


def event_values(event):
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def request_id():
    if not has_request_context():
        return None
    if "_callrec_request_id" not in g:
        g._callrec_request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
    return g._callrec_request_id


def _lock_chain(session):
    """Hold the chain's write lock, until this transaction ends, before the head is read.

    Two appenders that read the same head both write the next ``seq``; one then fails the unique
    constraint. PostgreSQL: a transaction-scoped advisory lock. SQLite has none, and pysqlite starts
    a transaction only at the first INSERT/UPDATE/DELETE, so the head would be read outside any
    lock: open the transaction with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented pysqlite recipe),
    which takes SQLite's single write lock now, waiting up to the busy timeout. A transaction that
    has already written holds that lock already.
    """
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_CHAIN_LOCK})
    elif dialect == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _head(session):
    row = session.execute(
        sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (row.seq, row.hash) if row else (0, GENESIS_HASH)


def record(action, outcome, *, actor=None, reason=None, recording=None, object_type=None, object_id=None,
           purpose=None, justification=None, patient_ref=None, practice_ref=None, recording_id=None,
           ip=None, request_ref=None):
    """Append one event to the chain in the current transaction (flushed, not committed).

    ``ip`` and ``request_ref`` stand in for the request's when there is none any more (an event about
    a response that was still streaming after its request ended)."""
    session = db_session()
    try:
        _lock_chain(session)
        seq, prev_hash = _head(session)
        event = AuditEvent(
            seq=seq + 1,
            occurred_at=utcnow(),
            actor_ref=actor.ref if actor else None,
            actor_name=actor.name if actor else None,
            roles=",".join(sorted(actor.roles)) if actor else "",
            practice_ref=practice_ref or (recording.practice_ref if recording is not None else None)
            or (actor.practice_ref if actor else None),
            action=action,
            object_type=object_type or ("recording" if recording is not None else None),
            object_id=object_id or (recording.id if recording is not None else None),
            recording_id=recording.id if recording is not None else recording_id,
            patient_ref=patient_ref or (recording.patient_ref if recording is not None else None),
            purpose=purpose,
            justification=justification,
            outcome=outcome,
            reason=reason,
            ip=request.remote_addr if has_request_context() else ip,
            request_id=request_id() if has_request_context() or request_ref is None else request_ref,
            prev_hash=prev_hash,
        )
        event.hash = chain_hash(prev_hash, event_values(event))
        session.add(event)
        session.flush()
    except sa.exc.SQLAlchemyError as exc:
        session.rollback()
        log.error("callrec audit event %s/%s could not be written (request %s): %s", action, outcome,
                  request_id() or request_ref, exc, exc_info=exc)
        raise AuditWriteError(f"the audit event for {action} could not be written: {exc}") from exc
    return event


def record_many(session, events):
    """Append events to the audit chain with one INSERT (the same chain and fields as audit.record).

    ``events`` are dicts of the hashed fields other than seq (missing ones are None). Flushed in the
    current transaction, not committed. This keeps a purge batch at a fixed number of statements.
    """
    if not events:
        return []
    try:
        _lock_chain(session)
        seq, prev_hash = _head(session)
        ip = request.remote_addr if has_request_context() else None
        rows = []
        for values in events:
            seq += 1
            row = {name: values.get(name) for name in HASHED_FIELDS}
            row.update(seq=seq, occurred_at=values.get("occurred_at") or utcnow(), ip=values.get("ip", ip),
                       request_id=values.get("request_id", request_id()), roles=values.get("roles") or "")
            row["prev_hash"] = prev_hash
            row["hash"] = prev_hash = chain_hash(prev_hash, row)
            rows.append(row)
        # Multi-row INSERTs: executemany would reach the server as one statement per event.
        for start in range(0, len(rows), 1000):
            session.execute(sa.insert(AuditEvent).values(rows[start:start + 1000]))
    except sa.exc.SQLAlchemyError as exc:
        log.error("callrec audit: %d events (%s) could not be written (request %s): %s", len(events),
                  ", ".join(sorted({str(values.get("action")) for values in events})), request_id(), exc,
                  exc_info=exc)
        raise AuditWriteError(f"audit events could not be written: {exc}") from exc
    return rows


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(session, batch_size=5000):
    """Recompute every link of the chain, in seq order; name the first bad seq."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    last_seq = 0
    while True:
        rows = session.scalars(
            sa.select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch_size)
        ).all()
        if not rows:
            return VerifyResult(True, checked, expected_seq - 1, prev_hash)
        for event in rows:
            problem = _check_link(event, expected_seq, prev_hash)
            if problem:
                return VerifyResult(False, checked, expected_seq - 1, prev_hash, event.seq, problem)
            prev_hash, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
        last_seq = rows[-1].seq
        session.expunge_all()


def verify_against_checkpoint(session, checkpoint):
    """verify, and also that the chain still reaches the checkpoint's seq with the same hash there."""
    result = verify(session)
    if not result.ok:
        return result
    seq, head_hash = checkpoint["seq"], checkpoint["head_hash"]
    if result.head_seq < seq:
        return VerifyResult(False, result.checked, result.head_seq, result.head_hash, result.head_seq + 1,
                            f"events {result.head_seq + 1} to {seq} were deleted (the checkpoint reaches seq {seq})")
    stored = session.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == seq))
    if stored != head_hash:
        return VerifyResult(False, result.checked, result.head_seq, result.head_hash, seq,
                            "the chain was rewritten: its hash at the checkpoint differs from the signed one")
    return result


def _check_link(event, expected_seq, prev_hash):
    if event.seq != expected_seq:
        return f"seq {event.seq} found where {expected_seq} was expected (a row is missing or was inserted)"
    if event.prev_hash != prev_hash:
        return "prev_hash does not match the previous event's hash"
    if event.hash != chain_hash(prev_hash, event_values(event)):
        return "hash does not match the event's contents (the row was edited)"
    return None
