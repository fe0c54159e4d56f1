"""Putting callrec jobs on RQ: the intent in the database first, then Redis; and the one scheduler.

``submit(kind, ...)`` writes a ``callrec_jobs`` row and commits it, then enqueues ``run_job(job_id)``
on the queue ``CALLREC_QUEUE`` with a bounded ``job_timeout`` (``CALLREC_JOB_TIMEOUT``) and
``Retry(max=CALLREC_JOB_RETRIES)`` with exponential back-off. Three outcomes:

* no ``CALLREC_REDIS_URL`` (the embedded demo default): the job runs here and now, in-process, and
  the log says so;
* Redis answers: the job is queued for ``flask callrec worker``;
* Redis does not answer: :class:`QueueUnavailable` is raised. The row stays ``queued``; the
  scheduler enqueues it when Redis is back (``requeue_pending``), so nothing the user asked for is
  lost. Views turn the exception into a 503 with ``Retry-After``.

The scheduler (``flask callrec scheduler``; run exactly one, a Redis lock makes extra copies idle)
calls :func:`scheduler_tick` every few seconds: it enqueues the purge every
``CALLREC_PURGE_INTERVAL_MINUTES`` (on the hour by default) and the reconciler daily, enqueues rows
still ``queued`` that have no live RQ job, and re-queues jobs whose worker died: silent for
``CALLREC_WORKER_DEAD_AFTER_SECONDS`` (worker_liveness.py), so such a job runs again within a minute.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets

import sqlalchemy as sa
from flask import current_app

from callrec_plugin import exports, jobs, worker_liveness
from callrec_plugin.job_records import create_job  # noqa: F401  (queueing.create_job, as before)
from callrec_plugin.models import Job, utcnow
from callrec_plugin.state import db_session

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
JOB_FUNCTION = "callrec_plugin.jobs.run_job"
SCHEDULER_REF = "scheduler"
MAX_BACKOFF_SECONDS = 3600
# A queued row younger than this may be between its commit and its enqueue: leave it alone.
REQUEUE_MIN_AGE_SECONDS = 5
LIVE_RQ_STATUSES = {"queued", "started", "deferred", "scheduled"}


class QueueUnavailable(RuntimeError):
    """Redis did not answer. The job's row is saved as queued and will be enqueued when it is back."""

    def __init__(self, job_id, cause):
        super().__init__(f"the job queue (Redis) is unavailable: {cause}")
        self.job_id = job_id
        self.retry_after = RETRY_AFTER_SECONDS


# -- Redis and RQ ------------------------------------------------------------------------------------


def redis_url(app=None):
    app = app or current_app
    return app.config["CALLREC_REDIS_URL"]


def connect(url=None):
    """A Redis client for ``url`` (CALLREC_REDIS_URL by default) with short timeouts, or None."""
    from redis import Redis

    url = url or redis_url()
    if not url:
        return None
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def rq_queue(connection, app=None):
    from rq import Queue

    app = app or current_app
    return Queue(app.config["CALLREC_QUEUE"], connection=connection)


def backoff_intervals(retries, base=None):
    """Seconds between retries: base, 4 x base, 16 x base ... capped at an hour."""
    base = current_app.config["CALLREC_JOB_RETRY_BASE_SECONDS"] if base is None else base
    return [min(MAX_BACKOFF_SECONDS, int(base * 4 ** n)) for n in range(retries)]


def stale_after():
    return dt.timedelta(seconds=current_app.config["CALLREC_JOB_STALE_SECONDS"])


def _redis_errors():
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def enqueue(job, connection=None):
    """Put the Job row on RQ (Retry + back-off + job_timeout); records the RQ id on the row (not committed)."""
    from rq import Retry

    config = current_app.config
    connection = connection or connect()
    retries = int(config["CALLREC_JOB_RETRIES"])
    rq_id = f"callrec-{job.id}-{secrets.token_hex(4)}"
    rq_queue(connection).enqueue(
        JOB_FUNCTION,
        job.id,
        job_id=rq_id,
        job_timeout=int(config["CALLREC_JOB_TIMEOUT"]),
        retry=Retry(max=retries, interval=backoff_intervals(retries)) if retries > 0 else None,
        result_ttl=7 * 24 * 3600,
        failure_ttl=30 * 24 * 3600,
        description=f"callrec {job.kind} {job.id}",
    )
    job.rq_job_id = rq_id
    return rq_id


def rq_job_alive(connection, rq_job_id):
    """Is there an RQ job with this id that is queued, scheduled, deferred or started?"""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob

    if not rq_job_id:
        return False
    try:
        status = RQJob.fetch(rq_job_id, connection=connection).get_status(refresh=False)
    except NoSuchJobError:
        return False
    return str(getattr(status, "value", status)) in LIVE_RQ_STATUSES


# -- submitting ----------------------------------------------------------------------------------------


def submit(kind, *, practice_ref=None, object_id=None, requested_by_ref=None):
    """Record a job and start it (in-process, or on RQ). Raises QueueUnavailable if Redis is down."""
    job = create_job(kind, practice_ref=practice_ref, object_id=object_id, requested_by_ref=requested_by_ref)
    dispatch(job.id)
    return db_session().get(Job, job.id)


def dispatch(job_id):
    """Start a queued Job row: "inline" (ran here), or the RQ job id. QueueUnavailable if Redis is down."""
    session = db_session()
    if not redis_url():
        job = session.get(Job, job_id)
        log.info("CALLREC_REDIS_URL is not set: running callrec job %s (%s) in-process, not on an RQ worker",
                 job_id, job.kind)
        session.commit()
        jobs.run_inline(job_id)
        session.expire_all()
        return "inline"
    job = session.get(Job, job_id)
    try:
        rq_id = enqueue(job)
    except _redis_errors() as exc:
        session.rollback()
        log.warning("callrec job %s (%s) stays queued in the database: Redis is unavailable (%s); "
                    "the scheduler enqueues it when Redis is back", job_id, job.kind, exc)
        raise QueueUnavailable(job_id, exc) from exc
    session.commit()
    log.info("callrec job %s (%s) enqueued on RQ queue %r as %s", job_id, job.kind,
             current_app.config["CALLREC_QUEUE"], rq_id)
    return rq_id


def retry(job_id):
    """Queue a failed (or abandoned) job again, from the jobs page. Raises QueueUnavailable."""
    session = db_session()
    job = session.get(Job, job_id)
    if job is None or job.status not in (jobs.FAILED,):
        raise ValueError("only a failed job can be retried")
    job.status, job.error, job.finished_at, job.rq_job_id = jobs.QUEUED, None, None, None
    job.progress_done = 0
    job.attempts = 0  # a person decided to try again: a fresh budget for worker deaths as for errors
    if job.kind == jobs.EXPORT and job.object_id:
        exports.mark_queued_again(job.object_id)
    session.commit()
    return dispatch(job_id)


# -- the scheduler ---------------------------------------------------------------------------------------


RECONCILE_EVERY = dt.timedelta(hours=24)  # it walks every blob: daily is enough (a purge finishes its own crashes)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def purge_interval(app=None):
    app = app or current_app
    return dt.timedelta(minutes=float(app.config["CALLREC_PURGE_INTERVAL_MINUTES"]))


def purge_due_at(now, interval=None):
    """The most recent moment (<= now) a scheduled purge was due: whole multiples of the interval
    since midnight UTC 1 January 1970, so an hourly purge runs on the hour whoever starts when."""
    interval = interval or purge_interval()
    return _EPOCH + interval * ((now - _EPOCH) // interval)


def _last_scheduled(kind):
    return db_session().scalar(sa.select(sa.func.max(Job.created_at)).where(
        Job.kind == kind, Job.requested_by_ref == SCHEDULER_REF))


def schedule_periodic(now=None):
    """Submit the purge once per CALLREC_PURGE_INTERVAL_MINUTES (hourly by default) and the reconciler
    once a day. Returns the ids of the jobs made.

    The database decides whether this period's run exists, so a restarted scheduler never runs it
    twice and a scheduler that was down catches up at once.
    """
    now = now or utcnow()
    due = purge_due_at(now)
    session = db_session()
    made = []
    last_reconcile = _last_scheduled(jobs.RECONCILE)
    if last_reconcile is None or now - last_reconcile >= RECONCILE_EVERY:
        made.append(create_job(jobs.RECONCILE, requested_by_ref=SCHEDULER_REF, commit=False, now=now))
    last_purge = _last_scheduled(jobs.PURGE)
    if last_purge is None or last_purge < due:
        made.append(create_job(jobs.PURGE, requested_by_ref=SCHEDULER_REF, commit=False, now=now))
    if not made:
        return []
    session.commit()
    log.info("callrec scheduler: %s recorded (purge due %s)",
             ", ".join(f"{job.kind} {job.id}" for job in made), due.isoformat())
    ids = [job.id for job in made]
    for job_id in ids:
        try:
            dispatch(job_id)
        except QueueUnavailable:
            pass  # stays queued; requeue_pending enqueues it later
    return ids


def requeue_pending(now=None, connection=None):
    """Enqueue every queued row without a live RQ job; re-queue (or fail) jobs whose worker died.

    Returns {"enqueued": n, "requeued": n, "abandoned": n}.
    """
    now = now or utcnow()
    session = db_session()
    counts = {"enqueued": 0, "requeued": 0, "abandoned": 0}
    inline = not redis_url()
    connection = None if inline else (connection or connect())
    max_attempts = int(current_app.config["CALLREC_JOB_RETRIES"]) + 1

    again = []
    for job_id, attempts, kind, object_id, rq_job_id, why in _dead_attempts(session, now, connection, inline):
        given_up = attempts >= max_attempts
        error = (f"abandoned: the worker stopped responding {attempts} times (last: {why})" if given_up else
                 f"the worker stopped during attempt {attempts} ({why}); queued again")
        # Conditional: the attempt may have finished (or failed) since it was read.
        changed = session.execute(
            sa.update(Job).where(Job.id == job_id, Job.status == jobs.RUNNING, Job.attempts == attempts)
            .values(status=jobs.FAILED if given_up else jobs.QUEUED, error=error,
                    finished_at=now if given_up else None, rq_job_id=None)
        ).rowcount
        if not changed:
            continue
        if rq_job_id and not inline:
            worker_liveness.forget(connection, rq_job_id)  # RQ's late clean-up must not run it again
        if given_up:
            counts["abandoned"] += 1
            if kind == jobs.EXPORT and object_id:
                exports.mark_failed(object_id, error, final=True, commit=False)
        else:
            again.append(job_id)  # an export stays "building" (never downloadable) until the new attempt starts
        log.warning("callrec job %s (%s): %s", job_id, kind, error)
    session.commit()
    session.expire_all()
    for job_id in again:
        dispatch(job_id)
        counts["requeued"] += 1
    if not inline:
        worker_liveness.clean_started_registry(rq_queue(connection))

    pending = session.scalars(
        sa.select(Job.id).where(Job.status == jobs.QUEUED,
                                Job.created_at <= now - dt.timedelta(seconds=REQUEUE_MIN_AGE_SECONDS))
        .order_by(Job.created_at)
    ).all()
    for job_id in pending:
        if job_id in again:
            continue
        job = session.get(Job, job_id)
        if job is None or job.status != jobs.QUEUED:
            continue
        if not inline and rq_job_alive(connection, job.rq_job_id):
            continue
        dispatch(job_id)
        counts["enqueued"] += 1
    return counts


def _dead_attempts(session, now, connection, inline):
    """Rows that say running but whose attempt cannot finish: (id, attempts, kind, object_id, rq id, why).

    A job an RQ worker runs is dead as soon as worker_liveness says so (its worker silent for
    CALLREC_WORKER_DEAD_AFTER_SECONDS, or RQ already ended the attempt); one run in a process of its
    own (``flask callrec purge``, or no Redis: no RQ id) when its own heartbeat is older than
    CALLREC_JOB_STALE_SECONDS, since nothing else can tell whether that process lives.
    """
    config = current_app.config
    dead_after = dt.timedelta(seconds=float(config["CALLREC_WORKER_DEAD_AFTER_SECONDS"]))
    rows = session.execute(
        sa.select(Job.id, Job.attempts, Job.kind, Job.object_id, Job.rq_job_id,
                  sa.func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at).label("last"))
        .where(Job.status == jobs.RUNNING).order_by(Job.created_at)
    ).all()
    found = []
    for row in rows:
        if row.rq_job_id and not inline:
            why = worker_liveness.why_abandoned(connection, row.rq_job_id, utcnow(), dead_after)
        else:
            last = worker_liveness.aware(row.last)
            why = f"no heartbeat for {int((now - last).total_seconds())} s" if last < now - stale_after() else None
        if why:
            found.append((row.id, row.attempts or 0, row.kind, row.object_id, row.rq_job_id, why))
    return found


def pending_intents():
    """Rows queued without an RQ job (e.g. submitted while Redis was down)."""
    return db_session().scalar(
        sa.select(sa.func.count()).select_from(Job).where(Job.status == jobs.QUEUED, Job.rq_job_id.is_(None))
    )


class SchedulerLock:
    """At most one scheduler per queue: a Redis lock that expires if its holder dies."""

    def __init__(self, connection, queue_name, ttl):
        self.lock = connection.lock(f"callrec:scheduler:{queue_name}", timeout=ttl, blocking=False,
                                    thread_local=False)
        self.held = False

    def ensure(self):
        """Take the lock or keep it; False while another scheduler holds it."""
        if self.held:
            try:
                self.lock.reacquire()
                return True
            except Exception:  # lost it (expired, or Redis restarted): try to take it again
                self.held = False
        self.held = bool(self.lock.acquire(blocking=False))
        return self.held

    def release(self):
        if self.held:
            try:
                self.lock.release()
            except Exception:
                pass
            self.held = False


def _draw_spot_checks(now):
    """Issue 13: last month's spot-check draw on the first of the month (spot_checks.draw_due; quick,
    done here rather than as a job). A failure is logged and tried again next round, never fatal."""
    from callrec_plugin import spot_checks

    try:
        return spot_checks.draw_due(now)
    except Exception:
        db_session().rollback()
        log.exception("callrec scheduler: the monthly spot-check draw failed; trying again next round")
        return []


def scheduler_tick(now=None, lock=None):
    """One round of the scheduler. Returns what it did, for the log and for tests."""
    now = now or utcnow()
    if redis_url():
        try:
            if lock is not None and not lock.ensure():
                return {"skipped": "another callrec scheduler holds the lock"}
            connection = connect()
            connection.ping()
        except _redis_errors() as exc:
            return {"skipped": f"Redis unavailable: {exc}"}
    else:
        connection = None
    done = {"scheduled": schedule_periodic(now)}
    done["spot_checks"] = _draw_spot_checks(now)
    try:
        done.update(requeue_pending(now, connection))
    except QueueUnavailable as exc:
        done["skipped"] = str(exc)
    return done
