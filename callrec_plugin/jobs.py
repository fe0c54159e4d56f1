"""callrec's RQ job functions: they take a Job id only and open their own app context.

The database holds the truth. A ``callrec_jobs`` row is written (and committed) before anything is
enqueued; the RQ job carries nothing but that row's id. ``run_job`` is what RQ imports and calls:

    run_job(job_id)  ->  an app context of the host  ->  execute(job_id)

Every kind of job is idempotent: purge re-selects what is eligible now, the reconciler finishes what
a dead worker left half-done, an export rebuilds from scratch. So RQ running a job twice (a retry
after a crash, a re-enqueue by the scheduler) does no harm.

What each kind does is in ``job_kinds.py`` (the dispatch table); the row's vocabulary and
``heartbeat`` are in ``job_records.py``, so the work never imports this runner.

Finding the host app in a worker process, first match wins:

1. the app ``flask callrec worker`` was started with (``set_worker_app``; the work horse forked by
   RQ inherits it);
2. the environment variable ``CALLREC_APP_FACTORY``, an import string ``"package.module:factory"``
   (e.g. ``examples.practice_host:create_app``) called with no arguments, for a plain ``rq worker``.
"""
from __future__ import annotations

import importlib
import logging
import os
import traceback

import sqlalchemy as sa
from flask import current_app, has_app_context

from callrec_plugin.job_kinds import FAILURE_HANDLERS, HANDLERS
# The row's vocabulary and the crash points live in leaf modules; re-exported here for callers.
from callrec_plugin.job_records import (  # noqa: F401
    EXPORT, FAILED, FINISHED, KINDS, PURGE, QUEUED, RECONCILE, RUNNING, heartbeat,
)
from callrec_plugin.kill_points import KILL_ENV, kill_point  # noqa: F401
from callrec_plugin.models import Job, utcnow
from callrec_plugin.state import db_session, get_state

log = logging.getLogger(__name__)

APP_FACTORY_ENV = "CALLREC_APP_FACTORY"

_worker_app = None
_factory_apps = {}
_pool_pid = {}


class JobSetupError(RuntimeError):
    """A worker cannot find the host app; the message says how to tell it."""


# -- the app -------------------------------------------------------------------------------------


def set_worker_app(app):
    """Remember the host app for job functions run in this process (and in RQ's forked horses)."""
    global _worker_app
    _worker_app = app


def load_factory(spec):
    """Import ``"module:callable"`` and return the callable."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise JobSetupError(f"{APP_FACTORY_ENV} must look like 'package.module:create_app', not {spec!r}")
    factory = importlib.import_module(module_name)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    return factory


def worker_app():
    """The host app a job runs in (see the module docstring for the order)."""
    if _worker_app is not None:
        return _worker_app
    spec = os.environ.get(APP_FACTORY_ENV)
    if not spec:
        raise JobSetupError(
            "callrec job functions need the host app: start the worker with "
            "`flask --app yourpms callrec worker`, or set the environment variable "
            f"{APP_FACTORY_ENV}='yourpms:create_app' for a plain `rq worker`."
        )
    if spec not in _factory_apps:
        _factory_apps[spec] = load_factory(spec)()
    return _factory_apps[spec]


def _fresh_connections_after_fork(app):
    """A forked work horse must not reuse pooled database connections inherited from its parent."""
    pid = os.getpid()
    if _pool_pid.get(id(app)) != pid:
        get_state(app).db.engine.dispose(close=False)  # forget inherited connections, never close them
        _pool_pid[id(app)] = pid


# -- entry points ----------------------------------------------------------------------------------


def run_job(job_id):
    """What RQ calls: open an app context of the host, then run the job (ids only, never objects)."""
    app = worker_app()
    with app.app_context():
        _fresh_connections_after_fork(app)
        return execute(job_id)


def run_inline(job_id):
    """Run a job synchronously in this process (no CALLREC_REDIS_URL), in its own app context.

    A fresh app context gives the job its own database session, separate from the request's.
    """
    app = current_app._get_current_object() if has_app_context() else worker_app()
    with app.app_context():
        try:
            return execute(job_id, retrying=False)
        except Exception:  # recorded on the Job row by execute(); the caller reads it from there
            log.exception("callrec job %s failed in-process", job_id)
            return None


def _rq_will_retry():
    try:
        from rq import get_current_job
    except ImportError:  # pragma: no cover - rq is a dependency
        return False
    job = get_current_job()
    return bool(job is not None and job.retries_left and job.retries_left > 0)


def _current_rq_id():
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:  # pragma: no cover
        return None
    return job.id if job is not None else None


def execute(job_id, retrying=None):
    """Run one callrec job in the current app context; the Job row records every step.

    Returns the handler's summary (a short string). On an exception, the row says "failed" (or
    "queued" when RQ will retry it) with the error, the kind's failure handler runs, and the
    exception propagates so RQ applies its Retry policy.
    """
    session = db_session()
    job = session.get(Job, job_id)
    if job is None:
        log.warning("callrec job %s does not exist (deleted?); nothing to do", job_id)
        return "no such job"
    if job.status == FINISHED:
        log.info("callrec job %s (%s) already finished; nothing to do", job_id, job.kind)
        return "already finished"
    handler = HANDLERS.get(job.kind)
    if handler is None:
        job.status, job.error, job.finished_at = FAILED, f"unknown job kind {job.kind!r}", utcnow()
        session.commit()
        return "unknown kind"
    now = utcnow()
    job.status, job.attempts = RUNNING, (job.attempts or 0) + 1
    job.started_at = job.heartbeat_at = now
    job.finished_at, job.error = None, None
    job.rq_job_id = _current_rq_id() or job.rq_job_id
    kind = job.kind
    session.commit()
    log.info("callrec job %s (%s) started, attempt %s", job_id, kind, job.attempts)
    try:
        summary = handler(job_id)
    except Exception as exc:
        session.rollback()
        will_retry = _rq_will_retry() if retrying is None else retrying
        _record_failure(job_id, exc, will_retry)
        raise
    session.execute(
        sa.update(Job).where(Job.id == job_id).values(status=FINISHED, finished_at=utcnow(), heartbeat_at=utcnow(),
                                                     error=None)
    )
    session.commit()
    log.info("callrec job %s (%s) finished: %s", job_id, kind, summary)
    return summary


def _record_failure(job_id, exc, will_retry):
    session = db_session()
    message = f"{type(exc).__name__}: {exc}"[:2000]
    job = session.get(Job, job_id)
    if job is None:
        return
    job.error = (f"attempt {job.attempts} failed, RQ will retry: " if will_retry else "") + message
    job.status = QUEUED if will_retry else FAILED
    job.finished_at = None if will_retry else utcnow()
    kind, object_id = job.kind, job.object_id
    session.commit()
    log.error("callrec job %s (%s) failed%s: %s\n%s", job_id, kind, " (will retry)" if will_retry else "", message,
              traceback.format_exc())
    hook = FAILURE_HANDLERS.get(kind)
    if hook is not None:
        try:
            hook(job_id, object_id, message, final=not will_retry)
        except Exception:  # the failure itself is recorded; do not mask it
            session.rollback()
            log.exception("callrec job %s: the failure handler failed", job_id)
