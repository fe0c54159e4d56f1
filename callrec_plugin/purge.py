"""Purge, reconciler, orphan sweeper and dry run: retention made real, without ever losing a held call.

Purge, one batch at a time (``CALLREC_PURGE_BATCH_SIZE`` rows, a fixed number of SQL statements
whatever the batch size):

1. select a batch with ``retention.eligible_for_purge`` and lock its rows
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: two workers take disjoint batches; a hold being placed
   holds a ``FOR KEY SHARE`` lock on the recording through its foreign key, so such a row is skipped);
2. load the batch's holds and re-check every row with ``retention.eligibility`` (the one rule);
3. in ONE transaction: destroy the wrapped data key (crypto-shredding: copies of the blob in backups
   become unreadable), status "purging", one tombstone and one audit event per recording; commit;
4. delete the blobs;
5. status "purged" and ``purged_at``: a second small commit; then the ``callrec_recording_purged`` hook.

A crash between 3 and 5 leaves rows "purging": key gone, tombstone written, blob maybe still there.
The reconciler (and the start of every purge run) finishes them. Blobs are never deleted before the
commit that makes them unreadable, so a rollback can never bring back a row whose audio is gone.

The reconciler also deletes orphan blobs (no row points at them) older than
``CALLREC_ORPHAN_GRACE_HOURS``, deletes blobs of purged rows and of expired exports, expires old
export links, re-queues jobs whose worker died, and reports (and audits, once) active rows whose blob
is missing.
"""
from __future__ import annotations

import collections
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from callrec_plugin import audit, clock
from callrec_plugin.state import db_session, get_state
from callrec_plugin.holds import sync_complaint_holds
from callrec_plugin.identity import SYSTEM
from callrec_plugin.jobs import heartbeat, kill_point
from callrec_plugin.models import AuditEvent, Export, Hold, Recording, RecordingStatus, Tombstone, utcnow
from callrec_plugin.playback import storage_backend
from callrec_plugin.retention import eligibility, eligible_for_purge, grace_period

log = logging.getLogger(__name__)

TOMBSTONE_REASON = "retention expired"
PAGE = 1000  # rows per page when the reconciler or the dry run walks a whole table
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

    def summary(self):
        text = (f"purged {self.purged} recording{'s' if self.purged != 1 else ''} in {self.batches} "
                f"batch{'es' if self.batches != 1 else ''}")
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
    backend = storage_backend()
    for key in keys:
        if key:
            backend.delete(key, durable=False)  # the data key is destroyed: the file is noise now
            kill_point(point)


def _mark_purged(session, ids, now):
    """'purging' -> 'purged' for the ids still purging; returns (id, practice_ref) of those changed."""
    if not ids:
        return []
    rows = session.execute(
        sa.update(Recording)
        .where(Recording.id.in_(ids), Recording.status == RecordingStatus.PURGING)
        .values(status=RecordingStatus.PURGED, purged_at=now)
        .returning(Recording.id, Recording.practice_ref)
        .execution_options(synchronize_session=False)
    ).all()
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


def _destroy_keys(session, now, grace, batch_size, rejected, job_id, done):
    """Steps 1-3 of a batch. Returns (batch_was_empty, [(id, practice_ref, storage_key)])."""
    query = (eligible_for_purge(now, grace)
             .order_by(Recording.retain_until, Recording.id)
             .limit(batch_size)
             .with_for_update(skip_locked=True, of=Recording))
    if rejected:
        query = query.where(Recording.id.not_in(list(rejected)))
    candidates = session.scalars(query).all()
    if not candidates:
        session.rollback()
        return True, []
    kill_point("after_lock")
    ids = [recording.id for recording in candidates]
    holds = collections.defaultdict(list)
    for hold in session.scalars(sa.select(Hold).where(Hold.recording_id.in_(ids))):
        holds[hold.recording_id].append(hold)
    going = {}
    for recording in candidates:
        answer = eligibility(recording, holds[recording.id], now, grace)
        if answer.eligible:
            going[recording.id] = (recording, answer)
        else:
            rejected[recording.id] = answer.reason
    if not going:
        session.rollback()
        return False, []
    kill_point("after_recheck")
    changed = session.execute(
        sa.update(Recording)
        .where(Recording.id.in_(list(going)), Recording.status == RecordingStatus.ACTIVE)
        .values(wrapped_key=None, key_id=None, status=RecordingStatus.PURGING)
        .returning(Recording.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()
    kill_point("after_key_destroyed")
    if not changed:
        session.rollback()
        return False, []
    chosen = [going[recording_id] for recording_id in sorted(changed)]
    session.execute(sa.insert(Tombstone), [
        {"recording_id": r.id, "practice_ref": r.practice_ref, "patient_ref": r.patient_ref,
         "started_at": r.started_at, "retain_until": r.retain_until, "purged_at": now, "reason": TOMBSTONE_REASON}
        for r, _ in chosen
    ])
    kill_point("after_tombstones")
    audit.record_many(session, [
        _system_event("purge", "done", f"{TOMBSTONE_REASON} ({answer.reason}); data key destroyed, tombstone written",
                      r.id, r.practice_ref, r.patient_ref)
        for r, answer in chosen
    ])
    if job_id:
        heartbeat(job_id, done=done + len(chosen))
    kill_point("before_commit")
    result = [(r.id, r.practice_ref, r.storage_key) for r, _ in chosen]
    session.commit()
    return False, result


def purge(now=None, batch_size=None, job_id=None, max_batches=None, on_batch=None):
    """Purge every recording eligible at ``now`` (default: the clock), batch by batch. Returns a PurgeReport.

    ``on_batch(report)`` is called after each batch (the bench counts statements with it).
    """
    session = db_session()
    now = now or clock.now()
    grace = grace_period()
    batch_size = batch_size or int(current_app.config["CALLREC_PURGE_BATCH_SIZE"])
    report = PurgeReport()
    report.finished = finish_interrupted(now, batch_size)
    # A host that closed a complaint without telling callrec still ends its holds here (grace from now).
    report.complaint_holds_released = sync_complaint_holds()
    if job_id:
        total = session.scalar(sa.select(sa.func.count()).select_from(eligible_for_purge(now, grace).subquery()))
        heartbeat(job_id, done=0, total=total, commit=True)
    session.commit()
    kill_point("after_start")
    rejected = {}
    while max_batches is None or report.batches < max_batches:
        outcome = _with_lock_retries(
            lambda: _destroy_keys(session, now, grace, batch_size, rejected, job_id, report.purged))
        empty, chosen = outcome
        if empty:
            break
        if not chosen:
            continue  # the whole batch was kept by the re-check or taken by another purger
        kill_point("after_commit")
        _delete_blobs([key for _, _, key in chosen], "mid_delete")
        kill_point("after_delete")
        changed = _with_lock_retries(lambda: _mark_purged(session, [rid for rid, _, _ in chosen], now))
        kill_point("after_purged")
        report.batches += 1
        report.purged += len(chosen)
        report.purged_ids.extend(rid for rid, _, _ in chosen)
        _fire_purged(changed)
        kill_point("after_hooks")
        if on_batch is not None:
            on_batch(report)
    report.rejected = rejected
    if rejected:
        log.info("purge: %d recordings kept by the re-check under the lock: %s", len(rejected),
                 ", ".join(f"{k} ({v})" for k, v in list(rejected.items())[:20]))
    log.info("purge: %s", report.summary())
    kill_point("purge_done")
    return report


def finish_interrupted(now=None, batch_size=None):
    """Finish rows left "purging" (key destroyed, tombstone written): delete the blob, mark purged."""
    session = db_session()
    now = now or clock.now()
    batch_size = batch_size or int(current_app.config["CALLREC_PURGE_BATCH_SIZE"])
    finished, seen = 0, set()
    while True:
        query = sa.select(Recording.id, Recording.storage_key).where(Recording.status == RecordingStatus.PURGING)
        if seen:
            query = query.where(Recording.id.not_in(list(seen)))
        rows = session.execute(query.order_by(Recording.id).limit(batch_size)).all()
        session.commit()
        if not rows:
            return finished
        seen.update(row.id for row in rows)
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
    from callrec_plugin import exports, queueing

    now = now or clock.now()
    report = ReconcileReport()
    report.finished = finish_interrupted(now)
    if job_id:
        heartbeat(job_id, done=1, total=4, commit=True)
    report.exports_expired = exports.expire_due(utcnow())
    sweep_orphans(report, now)
    if job_id:
        heartbeat(job_id, done=2, total=4, commit=True)
    find_missing_blobs(report)
    if job_id:
        heartbeat(job_id, done=3, total=4, commit=True)
    try:
        report.jobs = queueing.requeue_pending(utcnow())
    except queueing.QueueUnavailable as exc:
        log.warning("reconcile: could not re-enqueue jobs: %s", exc)
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
    grace = grace_period()
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
            answer = eligibility(recording, holds[recording.id], now, grace)
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
