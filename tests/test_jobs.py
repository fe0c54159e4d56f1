"""Job plumbing: in-process without Redis, RQ jobs with Retry and timeout, real workers, the scheduler,
dead workers' jobs re-queued, and the jobs page with its retry button."""
import datetime as dt
import logging
import shutil
import subprocess

import pytest
import sqlalchemy as sa
from click import Group

from callrec_plugin import cli_jobs, jobs, queueing
from callrec_plugin.models import Export, Job, Recording, utcnow
from tests import jobs_support as js
from tests.conftest import valid_csrf_token


@pytest.fixture
def redis_conn():
    return js.redis_or_skip()


@pytest.fixture
def queue_name(redis_conn):
    name = js.unique_queue()
    yield name
    js.delete_queue_keys(redis_conn, name)


def with_redis(app, queue_name, **extra):
    app.config.update(CALLREC_REDIS_URL=js.REDIS_URL, CALLREC_QUEUE=queue_name, **extra)
    return {key: value for key, value in app.config.items()
            if key.startswith("CALLREC_") or key == "SQLALCHEMY_DATABASE_URI"}


def test_without_redis_jobs_run_in_process_and_the_log_says_so(app, db_session, caplog):
    assert app.config["CALLREC_REDIS_URL"] is None
    with caplog.at_level(logging.INFO, logger="callrec_plugin"):
        job = queueing.submit("reconcile", requested_by_ref="test")
    assert job.status == "finished" and job.attempts == 1 and job.rq_job_id is None
    assert "CALLREC_REDIS_URL is not set: running callrec job" in caplog.text and "in-process" in caplog.text


def test_every_job_is_enqueued_with_retry_backoff_and_a_bounded_timeout(app, db_session, queue_name, redis_conn):
    from rq.job import Job as RQJob

    with_redis(app, queue_name, CALLREC_JOB_RETRIES=3, CALLREC_JOB_TIMEOUT=900)
    job = queueing.submit("purge", requested_by_ref="test")
    assert job.status == "queued" and job.rq_job_id.startswith(f"callrec-{job.id}-")
    rq_job = RQJob.fetch(job.rq_job_id, connection=redis_conn)
    assert rq_job.func_name == "callrec_plugin.jobs.run_job" and rq_job.args == (job.id,) and not rq_job.kwargs
    assert rq_job.timeout == 900 and rq_job.retries_left == 3
    assert rq_job.retry_intervals == [60, 240, 960]  # exponential back-off
    assert rq_job.origin == queue_name


def test_a_plain_rq_worker_finds_the_app_through_the_factory_variable(app, db_session, queue_name):
    config = with_redis(app, queue_name)
    blobs = js.Blobs(app)
    ids = js.seed(db_session, blobs, utcnow(), expired=5, active=2)
    job = queueing.submit("purge", requested_by_ref="test")
    env = js.worker_env(config)
    result = subprocess.run([str(js.BIN / "rq"), "worker", "--burst", "--url", js.REDIS_URL, queue_name],
                            cwd=js.REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    db_session.expire_all()
    assert db_session.get(Job, job.id).status == "finished"
    assert [js.statuses(db_session)[rid] for rid in ids["expired"]] == ["purged"] * 5


def test_a_failed_attempt_is_retried_with_backoff_by_the_workers_scheduler(app, db_session, queue_name, tmp_path):
    config = with_redis(app, queue_name, CALLREC_JOB_RETRIES=2, CALLREC_JOB_RETRY_BASE_SECONDS=1)
    blobs = js.Blobs(app)
    row = js.recording_row(utcnow() - dt.timedelta(days=2), patient_ref="pat1")
    row.update(blobs.write(row["id"]))
    db_session.execute(sa.insert(Recording), [row])
    db_session.commit()
    hidden = tmp_path / "hidden.cre"
    shutil.move(blobs.path(row["storage_key"]), hidden)  # the first attempt cannot read the audio
    from callrec_plugin.exports import request_subject_access
    from tests.subject_access_support import registered
    from callrec_plugin.identity import Actor

    dpo = Actor(user=None, ref="dpo", name="Dpo", roles=frozenset({"dpo"}), practice_ref="pA")
    export, job = request_subject_access(dpo, registered(db_session, "pat1"))
    export_id, job_id = export.id, job.id
    queueing.dispatch(job_id)
    worker = js.start_worker(config, "--with-scheduler")
    try:
        def first_attempt_failed():
            db_session.expire_all()
            row = db_session.get(Job, job_id)
            return row.attempts == 1 and row.status == "queued" and row.error
        js.wait_for(first_attempt_failed, message="the first attempt to fail")
        assert "RQ will retry" in db_session.get(Job, job_id).error
        assert db_session.get(Export, export_id).status == "building"  # not ready, not downloadable
        shutil.move(hidden, blobs.path(row["storage_key"]))

        def finished():
            db_session.expire_all()
            return db_session.get(Job, job_id).status == "finished"
        js.wait_for(finished, message="the retried attempt to finish")
    finally:
        output = js.stop_process(worker)
    job = db_session.get(Job, job_id)
    assert job.attempts == 2 and job.error is None, output[-3000:]
    assert db_session.get(Export, export_id).status == "ready"


def test_the_scheduler_enqueues_the_hourly_purge_and_the_daily_reconciler_once(app, db_session, queue_name,
                                                                               redis_conn):
    with_redis(app, queue_name, CALLREC_PURGE_INTERVAL_MINUTES=60)
    now = dt.datetime(2026, 5, 4, 1, 10, tzinfo=dt.timezone.utc)
    done = queueing.scheduler_tick(now=now)  # nothing ever ran: catch up at once
    assert len(done["scheduled"]) == 2
    assert queueing.scheduler_tick(now=now + dt.timedelta(minutes=49))["scheduled"] == []  # 01:59: this hour's ran
    second = queueing.scheduler_tick(now=now + dt.timedelta(minutes=50))  # 02:00: the next hour's purge
    assert len(second["scheduled"]) == 1
    for hours in range(1, 24):  # a purge every hour on the hour (03:00 ... 01:00), the reconciler once a day
        queueing.scheduler_tick(now=now + dt.timedelta(hours=hours, minutes=50, seconds=1))
    kinds = [j.kind for j in db_session.scalars(sa.select(Job).order_by(Job.created_at))]
    assert kinds.count("purge") == 25 and kinds.count("reconcile") == 1  # 01:10, then 02:00 ... 01:00 next day
    assert queueing.scheduler_tick(now=now + dt.timedelta(hours=24, minutes=1))["scheduled"] != []
    assert [j.kind for j in db_session.scalars(sa.select(Job).order_by(Job.created_at))].count("reconcile") == 2
    assert all(j.rq_job_id for j in db_session.scalars(sa.select(Job)))
    # exactly one scheduler: a second one finds the lock taken
    first = queueing.SchedulerLock(redis_conn, queue_name, ttl=30)
    second = queueing.SchedulerLock(redis_conn, queue_name, ttl=30)
    assert first.ensure() and first.ensure() and not second.ensure()
    assert "another callrec scheduler" in queueing.scheduler_tick(now=now, lock=second)["skipped"]
    first.release()
    assert second.ensure()
    second.release()


def test_scheduler_command_runs_one_round(app, db_session):
    group = cli_jobs.register(Group("callrec"))
    result = app.test_cli_runner().invoke(group, ["scheduler", "--once"])
    assert result.exit_code == 0, result.output
    kinds = sorted(j.kind for j in db_session.scalars(sa.select(Job)))
    assert kinds == ["purge", "reconcile"]  # no Redis: they ran in-process
    assert {j.status for j in db_session.scalars(sa.select(Job))} == {"finished"}


def test_worker_command_without_redis_explains(app):
    group = cli_jobs.register(Group("callrec"))
    result = app.test_cli_runner().invoke(group, ["worker", "--burst"])
    assert result.exit_code != 0 and "CALLREC_REDIS_URL is not set" in result.output


def test_a_job_whose_worker_died_is_queued_again_then_given_up(app, db_session, queue_name, redis_conn):
    with_redis(app, queue_name, CALLREC_JOB_RETRIES=1, CALLREC_JOB_STALE_SECONDS=60)
    now = utcnow()
    dead = Job(kind="purge", status="running", attempts=1, created_at=now - dt.timedelta(minutes=10),
               heartbeat_at=now - dt.timedelta(minutes=5))
    alive = Job(kind="reconcile", status="running", attempts=1, created_at=now - dt.timedelta(minutes=10),
                heartbeat_at=now - dt.timedelta(seconds=10))
    db_session.add_all([dead, alive])
    db_session.commit()
    counts = queueing.requeue_pending(now)
    assert counts["requeued"] == 1 and counts["abandoned"] == 0
    db_session.expire_all()
    assert db_session.get(Job, dead.id).status == "queued" and db_session.get(Job, dead.id).rq_job_id
    assert db_session.get(Job, alive.id).status == "running"
    # it died again: attempts are used up
    row = db_session.get(Job, dead.id)
    row.status, row.attempts, row.heartbeat_at = "running", 2, now - dt.timedelta(minutes=5)
    db_session.commit()
    assert queueing.requeue_pending(now)["abandoned"] == 1
    db_session.expire_all()
    assert db_session.get(Job, dead.id).status == "failed"
    assert "stopped responding" in db_session.get(Job, dead.id).error


KILL_SCRIPT = """
import sys
from callrec_plugin import jobs
for n in range(1, 4):
    jobs.kill_point("other_point")
    jobs.kill_point("after_commit")
    print(f"passed {n}", flush=True)
"""


@pytest.mark.parametrize("spec,passes,killed", [
    (None, 3, False),                  # unset, as in production: no effect
    ("after_commit:2", 1, True),       # the second pass of that point dies by SIGKILL
    ("after_commit:1000", 3, False),   # never reached
    ("elsewhere:1", 3, False),         # another point
])
def test_kill_points_kill_only_at_the_named_pass(spec, passes, killed):
    import os
    import signal
    import sys

    environment = {k: v for k, v in os.environ.items() if k not in (jobs.KILL_ENV, "RQ_JOB_ID")}
    if spec:
        environment[jobs.KILL_ENV] = spec
    result = subprocess.run([sys.executable, "-c", KILL_SCRIPT], env=environment, capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.split("\n")[:-1] == [f"passed {n}" for n in range(1, passes + 1)]
    assert result.returncode == (-signal.SIGKILL if killed else 0), result.stderr


def test_a_job_redis_lost_is_enqueued_again_by_the_scheduler(app, db_session, queue_name, redis_conn):
    from rq.job import Job as RQJob

    with_redis(app, queue_name)
    job = queueing.submit("reconcile", requested_by_ref="test")
    lost = job.rq_job_id
    redis_conn.delete(f"rq:job:{lost}", f"rq:queue:{queue_name}")  # Redis restarted without its data
    assert not queueing.rq_job_alive(redis_conn, lost)
    later = utcnow() + dt.timedelta(seconds=queueing.REQUEUE_MIN_AGE_SECONDS + 1)
    assert queueing.scheduler_tick(now=later)["enqueued"] == 1
    db_session.expire_all()
    again = db_session.get(Job, job.id)
    assert again.status == "queued" and again.rq_job_id != lost
    assert RQJob.fetch(again.rq_job_id, connection=redis_conn).args == (job.id,)
    assert again.rq_job_id in redis_conn.lrange(f"rq:queue:{queue_name}", 0, -1) or \
        again.rq_job_id.encode() in redis_conn.lrange(f"rq:queue:{queue_name}", 0, -1)
    assert queueing.scheduler_tick(now=later)["enqueued"] == 0  # alive now: not enqueued twice


def test_a_worker_needs_the_app_factory_to_find_the_host(monkeypatch):
    monkeypatch.setattr(jobs, "_worker_app", None)
    monkeypatch.delenv(jobs.APP_FACTORY_ENV, raising=False)
    with pytest.raises(jobs.JobSetupError, match="CALLREC_APP_FACTORY"):
        jobs.worker_app()
    monkeypatch.setenv(jobs.APP_FACTORY_ENV, "no-colon")
    with pytest.raises(jobs.JobSetupError, match="package.module:create_app"):
        jobs.worker_app()


def test_jobs_page_for_owner_and_manager_with_retry_of_a_failed_job(app, db_session, login):
    finished = Job(kind="purge", status="finished", attempts=1, progress_done=40, progress_total=40,
                   finished_at=utcnow())
    failed = Job(kind="reconcile", status="failed", attempts=4, error="OSError: disk unavailable",
                 finished_at=utcnow())
    other_practice = Job(kind="export", practice_ref="pB", status="failed", object_id="x" * 22)
    db_session.add_all([finished, failed, other_practice])
    db_session.commit()
    for user in ("reception", "dpo", "trainer", "handler"):
        assert login(user).get("/callrec/jobs").status_code == 403, user
    page = login("manager").get("/callrec/jobs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Refresh" not in page.headers
    assert "OSError: disk unavailable" in html and '<progress id="callrec-progress-' in html
    assert other_practice.id not in html and "<caption>" in html and 'scope="col"' in html
    assert "<script" not in html and "style=" not in html
    assert 'max="40" value="40"' in html
    owner = login("owner")
    assert owner.post(f"/callrec/jobs/{other_practice.id}/retry",
                      data={"csrf_token": valid_csrf_token(app, owner)}).status_code == 404
    assert owner.post(f"/callrec/jobs/{finished.id}/retry",
                      data={"csrf_token": valid_csrf_token(app, owner)}).status_code == 302
    response = owner.post(f"/callrec/jobs/{failed.id}/retry", data={"csrf_token": valid_csrf_token(app, owner)})
    assert response.status_code == 302
    db_session.expire_all()
    retried = db_session.get(Job, failed.id)
    assert retried.status == "finished"  # no Redis: it ran at once, in-process
    assert retried.attempts == 1  # after four failures: a person's retry starts a fresh budget
    assert db_session.get(Job, finished.id).attempts == 1
    reception = login("reception")
    assert reception.post(f"/callrec/jobs/{failed.id}/retry",
                          data={"csrf_token": valid_csrf_token(app, reception)}).status_code == 403
    queued = Job(kind="purge", status="queued")
    db_session.add(queued)
    db_session.commit()
    busy = login("owner").get("/callrec/jobs")
    assert busy.headers["Refresh"] == "5" and "Stop refreshing" in busy.get_data(as_text=True)
    only_failed = login("owner").get("/callrec/jobs?status=failed").get_data(as_text=True)
    assert "OSError" not in only_failed  # it finished on the retry
