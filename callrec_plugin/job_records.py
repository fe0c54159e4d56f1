"""The ``callrec_jobs`` row: job kinds, statuses, recording an intent, and progress heartbeats.

What the work itself (purge, exports) needs to know about jobs, without the runner or the queue:
``jobs.py`` runs a row, ``queueing.py`` puts it on RQ, ``job_kinds.py`` maps a kind to its work.
"""
import sqlalchemy as sa

from callrec_plugin.models import Job, utcnow
from callrec_plugin.state import db_session

PURGE, RECONCILE, EXPORT = "purge", "reconcile", "export"
KINDS = (PURGE, RECONCILE, EXPORT)
QUEUED, RUNNING, FINISHED, FAILED = "queued", "running", "finished", "failed"


def create_job(kind, *, practice_ref=None, object_id=None, requested_by_ref=None, commit=True, now=None):
    """The database's record of the intent; committed before anything touches Redis."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = Job(kind=kind, practice_ref=practice_ref, object_id=object_id, requested_by_ref=requested_by_ref,
              status=QUEUED, created_at=now or utcnow())
    db_session().add(job)
    if commit:
        db_session().commit()
    return job


def heartbeat(job_id, done=None, total=None, commit=False):
    """Record progress and liveness of a running job (one UPDATE; committed when asked)."""
    values = {"heartbeat_at": utcnow()}
    if done is not None:
        values["progress_done"] = done
    if total is not None:
        values["progress_total"] = total
    session = db_session()
    session.execute(sa.update(Job).where(Job.id == job_id).values(**values))
    if commit:
        session.commit()
