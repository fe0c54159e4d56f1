"""``flask callrec worker | scheduler | purge | reconcile``: the commands that run callrec's jobs.

``register(group)`` adds them to the ``flask callrec`` group (cli.make_cli calls it).

Processes to run in production (docs/jobs.md):

* ``flask --app yourpms callrec worker`` — any number: real RQ workers on ``CALLREC_QUEUE``, each
  started with RQ's scheduler (needed for the back-off of ``Retry``; RQ elects one of them by a lock);
* ``flask --app yourpms callrec scheduler`` — exactly one: enqueues the purge every
  ``CALLREC_PURGE_INTERVAL_MINUTES`` (hourly) and the reconciler daily, and re-enqueues what the database says is still to do. A second copy waits idle
  on a Redis lock instead of scheduling twice.
"""
import logging
import os
import signal
import socket
import time

import click
from flask import current_app, g
from flask.cli import with_appcontext

from callrec_plugin import jobs, queueing, worker_liveness
from callrec_plugin.redis_wait import connection_errors, wait_for_redis
from callrec_plugin.state import db_session


def register(group):
    """Add worker, scheduler, purge and reconcile to the ``flask callrec`` click group."""
    for command in (worker_command, scheduler_command, purge_command, reconcile_command):
        if command.name not in group.commands:
            group.add_command(command)
    return group


def _logging(verbose):
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("callrec_plugin").setLevel(level)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty (tests, cron-style runs).")
@click.option("--name", default=None, help="Worker name (default: host and process id).")
@click.option("--with-scheduler/--without-scheduler", default=True, show_default=True,
              help="Run RQ's scheduler in this worker (needed for Retry back-off); RQ lets one worker hold it.")
@click.option("--max-jobs", type=click.IntRange(1), default=None, help="Stop after this many jobs.")
@click.option("-v", "--verbose", is_flag=True)
@with_appcontext
def worker_command(burst, name, with_scheduler, max_jobs, verbose):
    """Run an RQ worker for callrec's queue (needs CALLREC_REDIS_URL)."""
    _logging(verbose)
    app = current_app._get_current_object()
    url = queueing.redis_url(app)
    if not url:
        raise click.ClickException(
            "CALLREC_REDIS_URL is not set: without Redis, callrec runs its jobs in-process and needs no worker. "
            "Set CALLREC_REDIS_URL (and run Redis with maxmemory-policy noeviction) to use workers.")
    jobs.set_worker_app(app)  # RQ's forked work horses inherit it
    db_session().remove()
    app.extensions["sqlalchemy"].engine.dispose()  # no pooled connection crosses the fork
    while True:  # Redis down at start or lost later: wait, reconnect, start a fresh RQ worker
        connection = wait_for_redis(url)
        queue = queueing.rq_queue(connection, app)
        # Short heartbeats while a job runs, so that the scheduler sees a dead worker within seconds.
        worker = worker_liveness.make_worker([queue], connection,
                                             name or f"callrec-{socket.gethostname()}-{os.getpid()}", app.config)
        click.echo(f"callrec worker {worker.name} on queue {queue.name!r} at {_redacted(url)}"
                   f"{' (burst)' if burst else ''}{' with RQ scheduler' if with_scheduler else ''}")
        try:
            worker.work(burst=burst, with_scheduler=with_scheduler, max_jobs=max_jobs,
                        logging_level="DEBUG" if verbose else "INFO")
            return
        except connection_errors() as exc:
            logging.getLogger("callrec_plugin.redis").warning("lost Redis at %s (%s); reconnecting", _redacted(url), exc)


def _redacted(url):
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@click.command("scheduler")
@click.option("--interval", type=click.FloatRange(0.2), default=10.0, show_default=True,
              help="Seconds between rounds (a job whose worker died runs again within "
                   "CALLREC_WORKER_DEAD_AFTER_SECONDS plus this).")
@click.option("--once", is_flag=True, help="Do one round and exit.")
@click.option("-v", "--verbose", is_flag=True)
@with_appcontext
def scheduler_command(interval, once, verbose):
    """Run THE scheduler: the hourly purge, the daily reconcile, and re-enqueueing of saved intents. Run one."""
    _logging(verbose)
    log = logging.getLogger("callrec_plugin.scheduler")
    app = current_app._get_current_object()
    lock = None
    if queueing.redis_url(app):
        wait_for_redis(queueing.redis_url(app))  # Redis down at start: wait, logging each try
        lock = queueing.SchedulerLock(queueing.connect(), app.config["CALLREC_QUEUE"], ttl=max(10, int(interval * 3)))
    else:
        log.info("CALLREC_REDIS_URL is not set: scheduled jobs run in-process, in this scheduler")
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"callrec scheduler: purge every {app.config['CALLREC_PURGE_INTERVAL_MINUTES']:g} min, reconcile daily, "
               f"a round every {interval:g} s")
    try:
        while not stopping:
            try:
                done = queueing.scheduler_tick(lock=lock)
            except Exception:
                db_session().rollback()
                log.exception("callrec scheduler round failed; trying again next round")
                done = {}
            finally:
                db_session().remove()
            if done.get("skipped"):
                log.info("scheduler round skipped: %s", done["skipped"])
            elif done.get("scheduled") or any(done.get(k) for k in ("enqueued", "requeued", "abandoned")):
                log.info("scheduler round: %s", done)
            if once:
                break
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.2, interval))
    finally:
        if lock is not None:
            lock.release()


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="List what would be purged and why the rest stays; change nothing.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=None,
              help="Recordings per transaction (default CALLREC_PURGE_BATCH_SIZE).")
@click.option("--show", type=click.IntRange(0), default=20, show_default=True,
              help="With --dry-run: recordings listed per reason for staying.")
@with_appcontext
def purge_command(dry_run, batch_size, show):
    """Purge recordings past retention and not held, now, in this process."""
    from callrec_plugin import purge

    if dry_run:
        report = purge.dry_run(examples=show)
        for line in report.lines(show=show):
            click.echo(line)
        return
    job = queueing.create_job(jobs.PURGE, requested_by_ref="cli")
    if batch_size:
        current_app.config["CALLREC_PURGE_BATCH_SIZE"] = batch_size
    summary = jobs.execute(job.id, retrying=False)
    click.echo(summary)


@click.command("reconcile")
@with_appcontext
def reconcile_command():
    """Finish interrupted purges, delete orphan blobs, report recordings whose blob is missing."""
    job = queueing.create_job(jobs.RECONCILE, requested_by_ref="cli")
    click.echo(jobs.execute(job.id, retrying=False))
    report = g.get("_callrec_report")
    try:  # what the scheduler does every round: saved intents and jobs of dead workers go back on the queue
        requeued = queueing.requeue_pending()
    except queueing.QueueUnavailable as exc:
        requeued = {"skipped": str(exc)}
    if any(requeued.values()):
        click.echo("jobs: " + ", ".join(f"{k} {v}" for k, v in requeued.items()))
    for recording_id in getattr(report, "missing", []):
        click.echo(f"blob missing: recording {recording_id} (see the audit trail, action blob_missing)")
