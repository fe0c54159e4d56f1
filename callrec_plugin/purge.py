"""Purge, reconciler, orphan sweeper and dry run: retention made real, without ever losing a held call.

A purge run goes practice by practice (each has its own grace period, ``callrec_practice_settings``),
one batch at a time (``CALLREC_PURGE_BATCH_SIZE`` rows). A batch is a fixed number of statements at
the server whatever its size (9, or 10 with a job's heartbeat; ``bench/purge_bench.py`` counts them
from psycopg's protocol trace): ids travel as one array (``= ANY(:ids)`` on PostgreSQL, never a
growing ``IN`` list) and tombstones and audit events as one multi-row INSERT each.

1. select a batch with ``retention.eligible_for_purge`` and lock its rows
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: two workers take disjoint batches; a hold being placed
   holds a ``FOR KEY SHARE`` lock on the recording through its foreign key, so such a row is skipped),
   with the approved erasure of each, if any (the tombstone says who approved it);
2. load the batch's holds and re-check every row with ``retention.eligibility`` (the one rule);
3. in ONE transaction: destroy the wrapped data key (crypto-shredding: see docs/format.md for what that
   does and does not do to backups) and clear every personal column of the row
   (``models.PURGED_RECORDING_COLUMNS``), status "purging", one tombstone (when, why, by what, until
   when it is kept) and one audit event per recording; commit;
4. delete the blobs;
5. status "purged" and ``purged_at``, and the text of the call's complaint links cleared: a second small
   commit; then the ``callrec_recording_purged`` hook.

At the end of a run, tombstones older than their practice's ``tombstone_years`` are deleted, and the
run is recorded in ``callrec_purge_runs`` (the retention page shows the last one and the next).

A crash between 3 and 5 leaves rows "purging": key gone, tombstone written, blob maybe still there.
The reconciler (and the start of every purge run) finishes them. Blobs are never deleted before the
commit that makes them unreadable, so a rollback can never bring back a row whose audio is gone.

The reconciler also deletes orphan blobs (no row points at them) older than
``CALLREC_ORPHAN_GRACE_HOURS``, deletes blobs of purged rows and of expired exports, expires old
export links, and reports (and audits, once) active rows whose blob is missing. Jobs whose worker
died are re-queued by the scheduler's every round (``queueing.requeue_pending``), not from here: the
work never imports the queue that runs it.
"""
from __future__ import annotations

import collections
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import aliased

from callrec_plugin import audit, clock, exports
from callrec_plugin.purged_sources import source_digest
from callrec_plugin.state import db_session, get_state
from callrec_plugin.holds import sync_complaint_holds, sync_disclosure_holds
from callrec_plugin.identity import SYSTEM
from callrec_plugin.job_records import heartbeat
from callrec_plugin.kill_points import kill_point
from callrec_plugin.models import (
    PURGED_RECORDING_COLUMNS,
    AuditEvent,
    ComplaintLink,
    ErasureRequest,
    Export,
    Hold,
    PatientMatch,
    PurgeRun,
    Recording,
    RecordingStatus,
    Redaction,
    Tombstone,
    utcnow,
)
from callrec_plugin.playback import storage_backend
from callrec_plugin.practice_settings import forget_cached, settings_for
from callrec_plugin.retention import (
    eligibility,
    eligible_for_purge,
    months_after,
    practices_past_retention,
)

log = logging.getLogger(__name__)

RETENTION_EXPIRED = "retention expired"
LAWFUL_ERASURE = "lawful erasure"
GRACE_AFTER_HOLD = "grace after a hold"
TOMBSTONE_REASON = RETENTION_EXPIRED  # the usual reason; see tombstone_reason
PAGE = 1000  # rows per page when the reconciler or the dry run walks a whole table
PURGE_RUNS_KEPT = dt.timedelta(days=90)
LOCK_RETRIES = 6  # a batch that meets "database is locked" (SQLite) or a deadlock is tried again


# -- reports ---------------------------------------------------------------------------------------


@dataclass
class PurgeReport:
    purged: int = 0
    batches: int = 0
    finished: int = 0  # rows left "purging" by an earlier run, finished first
    complaint_holds_released: int = 0  # complaint holds whose complaint the host now reports closed
    rejected: dict = field(default_factory=dict)  # id -> why the re-check under the lock kept it
    purged_ids: list = field(default_factory=list)
    reasons: collections.Counter = field(default_factory=collections.Counter)  # tombstone reason -> count
    tombstones_deleted: int = 0
    run_id: int | None = None

    def summary(self):
        text = (f"purged {self.purged} recording{'s' if self.purged != 1 else ''} in {self.batches} "
                f"batch{'es' if self.batches != 1 else ''}")
        if self.reasons:
            text += " (" + ", ".join(f"{count} {reason}" for reason, count in sorted(self.reasons.items())) + ")"
        if self.tombstones_deleted:
            text += f"; deleted {self.tombstones_deleted} tombstones past their keeping period"
        if self.finished:
            text += f"; finished {self.finished} interrupted purges"
        if self.complaint_holds_released:
            text += f"; released {self.complaint_holds_released} holds of complaints now closed"
        if self.rejected:
            text += f"; {len(self.rejected)} kept by the re-check under the row lock"
        return text


@dataclass
class ReconcileReport:
    finished: int = 0
    orphans_deleted: int = 0
    young_orphans: int = 0
    leftovers_deleted: int = 0  # blobs of purged rows or of expired/failed exports
    temp_files_removed: int = 0
    missing: list = field(default_factory=list)  # active recordings whose blob is gone
    newly_reported: int = 0
    exports_expired: int = 0
    jobs: dict = field(default_factory=dict)

    def summary(self):
        parts = [f"finished {self.finished} interrupted purges",
                 f"deleted {self.orphans_deleted} orphan blobs ({self.young_orphans} younger than the grace period kept)",
                 f"deleted {self.leftovers_deleted} blobs of purged recordings or expired exports",
                 f"{len(self.missing)} recordings whose blob is missing"]
        if self.exports_expired:
            parts.append(f"expired {self.exports_expired} export links")
        if any(self.jobs.values()):
            parts.append("jobs: " + ", ".join(f"{k} {v}" for k, v in self.jobs.items()))
        return "; ".join(parts)


@dataclass
class DryRunReport:
    now: dt.datetime
    would_purge: list = field(default_factory=list)  # (recording, Eligibility)
    kept: collections.Counter = field(default_factory=collections.Counter)  # reason -> count
    kept_examples: dict = field(default_factory=dict)  # reason -> [(recording, Eligibility)]
    interrupted: int = 0  # rows "purging": the next run or the reconciler finishes them

    def lines(self, show=20):
        yield f"dry run at {self.now.isoformat()}: {len(self.would_purge)} recordings would be purged"
        for recording, answer in self.would_purge:
            yield (f"  would purge {recording.id}  practice {recording.practice_ref}  call "
                   f"{recording.started_at:%Y-%m-%d %H:%M}  retain until {recording.retain_until:%Y-%m-%d}  "
                   f"({answer.reason})")
        if self.interrupted:
            yield f"{self.interrupted} interrupted purges (key already destroyed) would be finished"
        total = sum(self.kept.values())
        yield f"{total} recordings stay:"
        for reason, count in self.kept.most_common():
            yield f"  {count} {reason}"
            for recording, answer in self.kept_examples.get(reason, [])[:show]:
                after = f", may go after {answer.purge_after:%Y-%m-%d %H:%M}" if answer.purge_after else ""
                yield f"    {recording.id}  call {recording.started_at:%Y-%m-%d}{after}"
            if count > show and reason in self.kept_examples:
                yield f"    … and {count - min(show, len(self.kept_examples[reason]))} more"


# -- the audit trail, many events at once -------------------------------------------------------------


def _system_event(action, outcome, reason, recording_id, practice_ref, patient_ref, object_type="recording"):
    return {"actor_ref": SYSTEM.ref, "actor_name": SYSTEM.name, "roles": "", "practice_ref": practice_ref,
            "action": action, "object_type": object_type, "object_id": recording_id, "recording_id": recording_id,
            "patient_ref": patient_ref, "outcome": outcome, "reason": reason}


# -- purge -----------------------------------------------------------------------------------------------


def _fire_purged(pairs):
    hook = get_state().pm.hook
    for recording_id, practice_ref in pairs:
        try:
            hook.callrec_recording_purged(recording_id=recording_id, practice_ref=practice_ref)
        except Exception:  # a plugin's failure must not undo or stop the purge
            log.exception("callrec_recording_purged hook failed for %s", recording_id)


def _delete_blobs(keys, point):
    """Delete the blobs of rows whose data keys are destroyed (the files are noise now): many per request
    where the backend can (an object store), one at a time through ``delete`` for a backend without
    ``delete_many``."""
    backend = storage_backend()
    keys = [key for key in keys if key]
    delete_many = getattr(backend, "delete_many", None)
    if delete_many is not None:
        delete_many(keys, on_deleted=lambda count: kill_point(point))
        return
    for key in keys:
        backend.delete(key, durable=False)
        kill_point(point)


class UnclassifiedColumnError(RuntimeError):
    """callrec_recordings has a column PURGED_RECORDING_COLUMNS does not classify: no purge may run."""


def scrubbed_values():
    """The SET clause that leaves a purged row nothing personal: every "cleared" column of
    models.PURGED_RECORDING_COLUMNS. Refuses to answer while a column is unclassified, so a new
    column can never silently outlive the call it describes."""
    columns = Recording.__table__.columns
    unknown = sorted(set(columns.keys()) - set(PURGED_RECORDING_COLUMNS))
    if unknown:
        raise UnclassifiedColumnError(
            "callrec_recordings has columns a purge does not know what to do with: " + ", ".join(unknown)
            + ". Classify each as kept or cleared in models.PURGED_RECORDING_COLUMNS.")
    values = {}
    for name, fate in PURGED_RECORDING_COLUMNS.items():
        if fate == "kept" or name not in columns:
            continue
        if name == "source_ref":  # NOT NULL and unique per source: the id is both, and says nothing
            values[name] = sa.literal("purged:") + Recording.id
        elif not columns[name].nullable:
            raise UnclassifiedColumnError(f"callrec_recordings.{name} is NOT NULL: say what a purge sets it to")
        else:
            values[name] = None
    return values


def among(session, column, ids):
    """``column = ANY(:ids)`` on PostgreSQL (one array parameter: the same statement whatever the
    batch size), ``column IN (...)`` elsewhere."""
    ids = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(f"ids_{column.name}", ids, type_=ARRAY(column.type), unique=True))
    return column.in_(ids)


def insert_rows(session, table, rows, chunk=1000):
    """Rows as multi-row INSERT statements (one per ``chunk`` rows), never executemany, which the
    driver sends as one statement per row."""
    for start in range(0, len(rows), chunk):
        session.execute(sa.insert(table).values(rows[start:start + chunk]))


def _mark_purged(session, ids, now):
    """'purging' -> 'purged' for the ids still purging, the text of their complaint links cleared;
    returns (id, practice_ref) of those changed."""
    if not ids:
        return []
    rows = session.execute(
        sa.update(Recording)
        .where(among(session, Recording.id, ids), Recording.status == RecordingStatus.PURGING)
        .values(status=RecordingStatus.PURGED, purged_at=now)
        .returning(Recording.id, Recording.practice_ref)
        .execution_options(synchronize_session=False)
    ).all()
    session.execute(
        sa.update(ComplaintLink).where(among(session, ComplaintLink.recording_id, ids))
        .values(note="", unlink_reason=None).execution_options(synchronize_session=False))
    kill_point("before_purged_commit")
    session.commit()
    return [(row[0], row[1]) for row in rows]


def _with_lock_retries(work):
    """Run work() again after a lock conflict (SQLite 'database is locked', a PostgreSQL deadlock)."""
    session = db_session()
    for attempt in range(LOCK_RETRIES):
        try:
            return work()
        except sa.exc.OperationalError as exc:
            session.rollback()
            if attempt == LOCK_RETRIES - 1:
                raise
            log.info("purge batch met a lock conflict (%s); trying again", str(exc).splitlines()[0])
            time.sleep(0.05 * 2 ** attempt)
        except sa.exc.IntegrityError:
            # Another purger tombstoned a row between our re-check and our update: take a new batch.
            session.rollback()
            if attempt == LOCK_RETRIES - 1:
                raise
    return None  # pragma: no cover


@dataclass
class BatchContext:
    """What every batch of one practice in one run shares."""

    practice_ref: str | None
    now: dt.datetime
    grace: dt.timedelta
    batch_size: int
    purged_by: str
    delete_after: dt.datetime
    job_id: str | None = None


def tombstone_reason(recording, answer, erasure):
    """Why the call went: a lawful erasure (named approvers), the grace after a hold, or its retention."""
    if erasure is not None:
        return LAWFUL_ERASURE
    if answer.purge_after is not None and answer.purge_after > recording.retain_until:
        return GRACE_AFTER_HOLD
    return RETENTION_EXPIRED


def _candidates(session, context, rejected):
    """Step 1: a locked batch, each with its approved erasure request (id, requester, approver) or None."""
    erasure = aliased(ErasureRequest)
    query = (eligible_for_purge(context.now, context.grace, context.practice_ref)
             .add_columns(erasure.id, erasure.requested_by_ref, erasure.approved_by_ref)
             .outerjoin(erasure, sa.and_(erasure.recording_id == Recording.id, erasure.approved_at.is_not(None),
                                         erasure.withdrawn_at.is_(None)))
             .order_by(Recording.retain_until, Recording.id)
             .limit(context.batch_size)
             .with_for_update(skip_locked=True, of=Recording))
    if rejected:  # the few rows the re-check under the lock kept this run (usually none)
        query = query.where(sa.not_(among(session, Recording.id, rejected)))
    found = {}
    for recording, erasure_id, requested_by, approved_by in session.execute(query):
        if erasure_id is not None or recording.id not in found:
            found[recording.id] = (recording, None if erasure_id is None else (erasure_id, requested_by, approved_by))
    return list(found.values())


def _destroy_keys(session, context, rejected, done):
    """Steps 1-3 of a batch. Returns (batch_was_empty, [(id, practice_ref, storage_key, reason)])."""
    candidates = _candidates(session, context, rejected)
    if not candidates:
        session.rollback()
        return True, []
    kill_point("after_lock")
    ids = [recording.id for recording, _ in candidates]
    holds = collections.defaultdict(list)
    for hold in session.scalars(sa.select(Hold).where(among(session, Hold.recording_id, ids))):
        holds[hold.recording_id].append(hold)
    going = {}
    for recording, erasure in candidates:
        answer = eligibility(recording, holds[recording.id], context.now, context.grace)
        if answer.eligible:
            going[recording.id] = (recording, answer, erasure)
        else:
            rejected[recording.id] = answer.reason
    if not going:
        session.rollback()
        return False, []
    kill_point("after_recheck")
    changed = session.execute(
        sa.update(Recording)
        .where(among(session, Recording.id, list(going)), Recording.status == RecordingStatus.ACTIVE)
        .values(status=RecordingStatus.PURGING, **scrubbed_values())
        .returning(Recording.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()
    kill_point("after_key_destroyed")
    if not changed:
        session.rollback()
        return False, []
    chosen = []
    for recording_id in sorted(changed):
        recording, answer, erasure = going[recording_id]
        # The ORM object still holds the values read under the lock (synchronize_session=False).
        chosen.append((recording, answer, erasure, tombstone_reason(recording, answer, erasure)))
    insert_rows(session, Tombstone, [
        {"recording_id": r.id, "practice_ref": r.practice_ref, "patient_ref": r.patient_ref,
         "started_at": r.started_at, "retain_until": r.retain_until, "purged_at": context.now, "reason": reason,
         "purged_by": context.purged_by, "erasure_request_id": erasure[0] if erasure else None,
         "approved_by_refs": f"{erasure[1]}, {erasure[2]}" if erasure else None,
         "delete_after": context.delete_after,
         "source_digest": source_digest(r.practice_ref, r.source, r.source_ref)}
        for r, _, erasure, reason in chosen
    ])
    kill_point("after_tombstones")
    audit.record_many(session, [
        _system_event("purge", "done",
                      f"{reason}" + (f" (erasure request {erasure[0]}, approved by {erasure[1]} and {erasure[2]})"
                                     if erasure else f" ({answer.reason})")
                      + f"; data key destroyed, personal fields cleared, tombstone written by {context.purged_by}",
                      r.id, r.practice_ref, r.patient_ref)
        for r, answer, erasure, reason in chosen
    ])
    if context.job_id:
        heartbeat(context.job_id, done=done + len(chosen))
    kill_point("before_commit")
    result = [(r.id, r.practice_ref, r.storage_key, reason) for r, _, _, reason in chosen]
    session.commit()
    return False, result


def _purge_practice(session, context, report, max_batches, on_batch):
    rejected = {}
    while max_batches is None or report.batches < max_batches:
        empty, chosen = _with_lock_retries(lambda: _destroy_keys(session, context, rejected, report.purged))
        if empty:
            break
        if not chosen:
            continue  # the whole batch was kept by the re-check or taken by another purger
        kill_point("after_commit")
        _delete_blobs([key for _, _, key, _ in chosen], "mid_delete")
        kill_point("after_delete")
        changed = _with_lock_retries(lambda: _mark_purged(session, [rid for rid, _, _, _ in chosen], context.now))
        kill_point("after_purged")
        report.batches += 1
        report.purged += len(chosen)
        report.purged_ids.extend(rid for rid, _, _, _ in chosen)
        report.reasons.update(reason for _, _, _, reason in chosen)
        _fire_purged(changed)
        kill_point("after_hooks")
        if on_batch is not None:
            on_batch(report)
    report.rejected.update(rejected)


def delete_expired_tombstones(session, now):
    """Tombstones past their keeping period (the practice's tombstone_years) go, with one audit event."""
    fallback = months_after(now, -12 * int(settings_for(None).tombstone_years), zone=dt.timezone.utc)
    due = sa.or_(Tombstone.delete_after <= now,
                 sa.and_(Tombstone.delete_after.is_(None), Tombstone.purged_at <= fallback))
    deleted = session.execute(sa.delete(Tombstone).where(due).execution_options(synchronize_session=False)).rowcount
    if deleted:
        audit.record_many(session, [{
            "actor_ref": SYSTEM.ref, "actor_name": SYSTEM.name, "action": "tombstones_expired", "outcome": "done",
            "object_type": "tombstone", "reason": f"{deleted} tombstones past their keeping period deleted"}])
    session.commit()
    return deleted or 0


def scrub_rows_about_purged_calls(session):
    """Rows of other tables that say something personal about a purged call: a person's link of the call
    to a patient (and why) goes; a redaction keeps when and why, not who. Once per run, not per batch:
    the statements per batch stay constant, and a crash between batches leaves nothing a later run misses."""
    purged = sa.select(Recording.id).where(Recording.status == RecordingStatus.PURGED)
    session.execute(sa.delete(PatientMatch).where(PatientMatch.recording_id.in_(purged))
                    .execution_options(synchronize_session=False))
    session.execute(sa.update(Redaction).where(Redaction.recording_id.in_(purged), Redaction.actor_name != "")
                    .values(actor_name="").execution_options(synchronize_session=False))
    session.commit()


def purge(now=None, batch_size=None, job_id=None, max_batches=None, on_batch=None, trigger=None):
    """Purge every recording eligible at ``now`` (default: the clock), practice by practice, batch by
    batch, then delete expired tombstones. Returns a PurgeReport; the run is kept in callrec_purge_runs.

    ``on_batch(report)`` is called after each batch (the bench counts statements with it).
    """
    session = db_session()
    now = now or clock.now()
    batch_size = batch_size or int(current_app.config["CALLREC_PURGE_BATCH_SIZE"])
    forget_cached()  # a long-lived scheduler's context must see a practice's settings as they are now
    report = PurgeReport()
    run = PurgeRun(started_at=now, status="running",
                   trigger=trigger or (f"job {job_id}" if job_id else "purge()"))
    session.add(run)
    session.commit()
    report.run_id = run.id
    try:
        _run(session, now, batch_size, job_id, max_batches, on_batch, report)
    except Exception as exc:  # a kill (SIGKILL, or a test's BaseException) leaves the run "running"
        session.rollback()
        _finish_run(session, report.run_id, "failed", report, f"{type(exc).__name__}: {exc}"[:2000])
        raise
    _finish_run(session, report.run_id, "finished", report)
    return report


def _finish_run(session, run_id, status, report, error=None):
    try:
        session.execute(sa.update(PurgeRun).where(PurgeRun.id == run_id).values(
            status=status, finished_at=clock.now(), purged=report.purged,
            tombstones_deleted=report.tombstones_deleted, summary=report.summary()[:2000], error=error))
        session.commit()
    except sa.exc.SQLAlchemyError:  # recording the run must never hide the purge's own outcome
        session.rollback()
        log.exception("could not record purge run %s", run_id)


def _run(session, now, batch_size, job_id, max_batches, on_batch, report):
    report.finished = finish_interrupted(now, batch_size)
    # A host that closed a complaint without telling callrec still ends its holds here (grace from now).
    report.complaint_holds_released = sync_complaint_holds()
    sync_disclosure_holds(now)  # a delivered disclosure's hold ends after its period (H9's holds module)
    practices = practices_past_retention(session, now)
    if job_id:
        total = sum(session.scalar(sa.select(sa.func.count()).select_from(
            eligible_for_purge(now, practice_ref=ref).subquery())) for ref in practices)
        heartbeat(job_id, done=0, total=total, commit=True)
    session.commit()
    kill_point("after_start")
    purged_by = f"purge job {job_id}" if job_id else f"purge run {report.run_id}"
    for practice_ref in practices:
        settings = settings_for(practice_ref)
        context = BatchContext(practice_ref=practice_ref, now=now, grace=dt.timedelta(days=settings.grace_days),
                               batch_size=batch_size, purged_by=purged_by, job_id=job_id,
                               delete_after=months_after(now, 12 * settings.tombstone_years, practice_ref))
        _purge_practice(session, context, report, max_batches, on_batch)
    report.tombstones_deleted = delete_expired_tombstones(session, now)
    scrub_rows_about_purged_calls(session)
    # The runs' own record is for the retention page and operators, not an archive: 90 days of it.
    session.execute(sa.delete(PurgeRun).where(PurgeRun.started_at < now - PURGE_RUNS_KEPT))
    session.commit()
    if report.rejected:
        log.info("purge: %d recordings kept by the re-check under the lock: %s", len(report.rejected),
                 ", ".join(f"{k} ({v})" for k, v in list(report.rejected.items())[:20]))
    log.info("purge: %s", report.summary())
    kill_point("purge_done")
    return report


def finish_interrupted(now=None, batch_size=None):
    """Finish rows left "purging" (key destroyed, tombstone written): delete the blob, mark purged."""
    session = db_session()
    now = now or clock.now()
    batch_size = batch_size or int(current_app.config["CALLREC_PURGE_BATCH_SIZE"])
    finished, last = 0, ""
    while True:
        # Keyset pagination (id > the last one seen), not a growing NOT IN list of the ids done.
        rows = session.execute(
            sa.select(Recording.id, Recording.storage_key)
            .where(Recording.status == RecordingStatus.PURGING, Recording.id > last)
            .order_by(Recording.id).limit(batch_size)).all()
        session.commit()
        if not rows:
            return finished
        last = rows[-1].id
        _delete_blobs([row.storage_key for row in rows], "reconcile_delete")
        changed = _with_lock_retries(lambda: _mark_purged(session, [row.id for row in rows], now))
        finished += len(changed)
        _fire_purged(changed)


# -- reconciler ------------------------------------------------------------------------------------------


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


KEEP_EXPORT_STATUSES = ("queued", "building", "ready")


def sweep_orphans(report, now=None):
    """Delete blobs no live row points at: at once for purged rows and dead exports, after the grace
    period for blobs no row knows (an ingest writes its blob just before committing its row)."""
    session = db_session()
    backend = storage_backend()
    wall_now = time.time()
    grace_seconds = float(current_app.config["CALLREC_ORPHAN_GRACE_HOURS"]) * 3600
    for keys in _chunks(backend.iter_keys(), PAGE):
        recordings = dict(session.execute(
            sa.select(Recording.storage_key, Recording.status).where(Recording.storage_key.in_(keys))).all())
        exports = dict(session.execute(
            sa.select(Export.storage_key, Export.status).where(Export.storage_key.in_(keys))).all())
        session.commit()
        for key in keys:
            if key in recordings:
                if recordings[key] == RecordingStatus.ACTIVE:
                    continue
                backend.delete(key)  # the row's key is destroyed already
                report.leftovers_deleted += 1
            elif key in exports:
                if exports[key] in KEEP_EXPORT_STATUSES:
                    continue
                backend.delete(key)
                report.leftovers_deleted += 1
            else:
                mtime = backend.modified_at(key)
                if mtime is None or wall_now - mtime < grace_seconds:
                    report.young_orphans += 1
                    continue
                backend.delete(key)
                report.orphans_deleted += 1
                kill_point("orphan_delete")
    remove_stale = getattr(backend, "remove_stale_temp_files", None)
    if remove_stale is not None:
        report.temp_files_removed = remove_stale(grace_seconds)


def find_missing_blobs(report):
    """Active rows whose blob is gone: reported every run, audited once per recording."""
    session = db_session()
    backend = storage_backend()
    last = ""
    while True:
        rows = session.execute(
            sa.select(Recording.id, Recording.storage_key, Recording.practice_ref, Recording.patient_ref)
            .where(Recording.status == RecordingStatus.ACTIVE, Recording.storage_key.is_not(None), Recording.id > last)
            .order_by(Recording.id).limit(PAGE)
        ).all()
        if not rows:
            session.commit()
            return
        last = rows[-1].id
        missing = [row for row in rows if not backend.exists(row.storage_key)]
        if missing:
            report.missing.extend(row.id for row in missing)
            known = set(session.scalars(
                sa.select(AuditEvent.recording_id).where(AuditEvent.action == "blob_missing",
                                                         AuditEvent.recording_id.in_([row.id for row in missing]))))
            new = [row for row in missing if row.id not in known]
            audit.record_many(session, [
                _system_event("blob_missing", "failed", "the encrypted audio of this recording is missing from storage",
                              row.id, row.practice_ref, row.patient_ref) for row in new])
            report.newly_reported += len(new)
            for row in missing:
                log.error("callrec recording %s points at blob %s, which is missing", row.id, row.storage_key)
        session.commit()


def reconcile(now=None, job_id=None):
    """Finish what crashed workers left: see the module docstring. Returns a ReconcileReport."""
    now = now or clock.now()
    report = ReconcileReport()
    report.finished = finish_interrupted(now)
    from callrec_plugin import redaction  # redactions a crash interrupted: redone or finished before the sweep

    if redaction.finish_interrupted():
        log.info("reconcile: finished interrupted redactions")
    if job_id:
        heartbeat(job_id, done=1, total=4, commit=True)
    report.exports_expired = exports.expire_due(utcnow())
    sweep_orphans(report, now)
    if job_id:
        heartbeat(job_id, done=2, total=4, commit=True)
    find_missing_blobs(report)
    if job_id:
        heartbeat(job_id, done=3, total=4, commit=True)
    session = db_session()
    audit.record_many(session, [{
        "actor_ref": SYSTEM.ref, "actor_name": SYSTEM.name, "action": "reconcile", "outcome": "done",
        "object_type": "job", "object_id": job_id, "reason": report.summary()[:2000]}])
    if job_id:
        heartbeat(job_id, done=4, total=4)
    session.commit()
    log.info("reconcile: %s", report.summary())
    return report


# -- dry run ---------------------------------------------------------------------------------------------


def dry_run(now=None, examples=50):
    """What a purge at ``now`` would delete, and why every other recording stays (nothing changes)."""
    session = db_session()
    now = now or clock.now()
    report = DryRunReport(now=now)
    report.interrupted = session.scalar(
        sa.select(sa.func.count()).select_from(Recording).where(Recording.status == RecordingStatus.PURGING))
    last = ""
    while True:
        page = session.scalars(
            sa.select(Recording).where(Recording.status == RecordingStatus.ACTIVE, Recording.id > last)
            .order_by(Recording.id).limit(PAGE)
        ).all()
        if not page:
            break
        last = page[-1].id
        holds = collections.defaultdict(list)
        for hold in session.scalars(sa.select(Hold).where(Hold.recording_id.in_([r.id for r in page]))):
            holds[hold.recording_id].append(hold)
        for recording in page:
            answer = eligibility(recording, holds[recording.id], now)  # the practice's own grace
            if answer.eligible:
                report.would_purge.append((recording, answer))
            else:
                report.kept[answer.reason] += 1
                bucket = report.kept_examples.setdefault(answer.reason, [])
                if len(bucket) < examples:
                    bucket.append((recording, answer))
        session.expunge_all()
    session.rollback()
    report.would_purge.sort(key=lambda pair: (pair[0].retain_until, pair[0].id))
    return report
