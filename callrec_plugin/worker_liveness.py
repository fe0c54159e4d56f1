"""Is the RQ worker that runs a callrec job still alive? Short heartbeats, read by the scheduler.

RQ on its own notices a dead worker late: a started job's registry entry, and the worker's key,
outlive the last heartbeat by the monitoring interval plus 60 s, and they are cleaned only on some
worker's maintenance round (every 10 minutes by default). A user then watches a frozen progress bar.

callrec's worker (``flask callrec worker``) therefore heartbeats every
``CALLREC_WORKER_HEARTBEAT_SECONDS`` while it runs a job (RQ's ``job_monitoring_interval``: the
worker process, not the work horse, writes ``last_heartbeat`` on its RQ worker key), and the
scheduler's every round asks, for each job row that says ``running``, whether its RQ job is still
started by a worker heard from within ``CALLREC_WORKER_DEAD_AFTER_SECONDS``. If not, the job is
abandoned: its RQ job is deleted from every registry (so RQ's own late clean-up can never run it a
second time) and the row is queued again with the reason.
"""
from __future__ import annotations

import datetime as dt

WORKER_TTL_SECONDS = 60  # how long an idle worker's key lives between its heartbeats (RQ's worker_ttl)
RQ_HEARTBEAT_GRACE = 60  # RQ gives a started job's registry entry its next heartbeat's time plus this
LATE_SECONDS = 2  # how late past its own schedule a heartbeat may be (the worker's loop, a busy machine)


def make_worker(queues, connection, name, config):
    """An RQ worker with callrec's short heartbeat while it runs a job."""
    from rq import Worker

    interval = max(1, int(config["CALLREC_WORKER_HEARTBEAT_SECONDS"]))
    return Worker(queues, connection=connection, name=name, job_monitoring_interval=interval,
                  worker_ttl=WORKER_TTL_SECONDS)


def why_abandoned(connection, rq_job_id, now, dead_after):
    """None while the RQ job is started by a live worker; else why the job cannot be running.

    ``now`` is an aware UTC datetime; ``dead_after`` a timedelta.
    """
    from rq import Worker
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob

    try:
        rq_job = RQJob.fetch(rq_job_id, connection=connection)
    except NoSuchJobError:
        return "its RQ job is gone"
    status = rq_job.get_status(refresh=False)
    status = str(getattr(status, "value", status))
    if status != "started":
        # The work horse died (RQ saw it and scheduled a retry, or gave up): the attempt is over.
        return f"the attempt ended without a result (RQ says {status})"
    name = rq_job.worker_name
    if not name:
        return "no worker holds its RQ job"
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=connection)
    if worker is None:
        return f"worker {name} is gone"
    if worker.last_heartbeat is None:
        return f"worker {name} never reported"
    silent = now - worker.last_heartbeat
    # Dead only when silent for dead_after AND past the heartbeat its worker itself scheduled: a plain
    # `rq worker` heartbeats every 30 s (RQ's default), and must not be taken for dead at 20 s.
    due = _heartbeat_due(connection, rq_job)
    overdue = due is None or now > due + dt.timedelta(seconds=LATE_SECONDS)
    if silent > dead_after and overdue:
        return f"worker {name} has not been heard from for {int(silent.total_seconds())} s"
    return None


def _heartbeat_due(connection, rq_job):
    """When the worker running ``rq_job`` promised its next heartbeat (RQ keeps it, plus a fixed grace,
    as the score of the job's StartedJobRegistry entry), or None if the job has no entry there."""
    from rq.registry import StartedJobRegistry

    key = StartedJobRegistry(rq_job.origin, connection=connection).key
    scores = [score for entry, score in connection.zrange(key, 0, -1, withscores=True)
              if (entry.decode() if isinstance(entry, bytes) else entry).split(":", 1)[0] == rq_job.id]
    if not scores or max(scores) < 0:  # -1 would mean "no expiry"
        return None
    return dt.datetime.fromtimestamp(max(scores) - RQ_HEARTBEAT_GRACE, tz=dt.timezone.utc)


def forget(connection, rq_job_id):
    """Remove an abandoned RQ job from its queue and every registry and delete it, so that nothing
    (RQ's late clean-up, a scheduled retry) runs it again behind callrec's back.

    Done by hand rather than with ``Job.delete``: in rq 2.x that raises when the dead worker's
    execution record has already expired, which is exactly the case here.
    """
    from rq import Queue
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob
    from rq.registry import (
        CanceledJobRegistry, DeferredJobRegistry, FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry,
    )

    try:
        rq_job = RQJob.fetch(rq_job_id, connection=connection)
    except NoSuchJobError:
        return
    for registry_class in (StartedJobRegistry, ScheduledJobRegistry, FailedJobRegistry, DeferredJobRegistry,
                           CanceledJobRegistry):
        key = registry_class(rq_job.origin, connection=connection).key
        for entry in connection.zrange(key, 0, -1):  # started entries are "<job id>:<execution id>"
            text = entry.decode() if isinstance(entry, bytes) else entry
            if text == rq_job.id or text.startswith(rq_job.id + ":"):
                connection.zrem(key, entry)
    Queue(rq_job.origin, connection=connection).remove(rq_job.id)
    connection.delete(rq_job.key)


def clean_started_registry(queue):
    """RQ's own clean-up of the queue's StartedJobRegistry (jobs whose entries expired), now rather
    than on a worker's ten-minute maintenance round."""
    from rq.registry import StartedJobRegistry

    StartedJobRegistry(queue=queue).cleanup()


def aware(value):
    """A naive UTC datetime (SQLite) as an aware one."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
