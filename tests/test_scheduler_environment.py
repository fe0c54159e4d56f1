"""The scheduler, like the worker, takes CALLREC_REDIS_URL from the environment: `callrec scheduler --once`
then puts the purge on RQ instead of running it in-process (issue 11's symptom), and a scheduler started
while Redis is down waits for it, then queues. The demo host reads CALLREC_* from the environment too."""
import subprocess

import sqlalchemy as sa

from callrec_plugin import jobs
from callrec_plugin.models import Job
from tests import jobs_support as js
from tests.test_environment_config import _worker_config


def scheduler_command(*args):
    return [str(js.BIN / "flask"), "--app", js.FACTORY, "callrec", "scheduler", *args]


def scheduled(db_session):
    db_session.expire_all()
    return {job.kind: job.status for job in db_session.scalars(sa.select(Job))}


def test_scheduler_once_queues_the_purge_on_the_redis_named_in_the_environment(app, db_session):
    from rq import Queue

    connection = js.redis_or_skip()
    queue_name = js.unique_queue()
    try:
        result = subprocess.run(scheduler_command("--once"), cwd=js.REPO, capture_output=True, text=True,
                                timeout=120, env=js.worker_env(_worker_config(app), CALLREC_REDIS_URL=js.REDIS_URL,
                                                               CALLREC_QUEUE=queue_name))
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-3000:]
        assert "not set" not in output and "in-process" not in output
        # Queued for a worker, not run here: nothing purged or reconciled by the scheduler itself.
        assert scheduled(db_session) == {jobs.PURGE: "queued", jobs.RECONCILE: "queued"}
        assert Queue(queue_name, connection=connection).count == 2
    finally:
        js.delete_queue_keys(connection, queue_name)


def test_a_scheduler_started_while_redis_is_down_waits_then_queues(app, db_session, tmp_path):
    from redis import Redis
    from rq import Queue

    queue_name = js.unique_queue()
    log = tmp_path / "scheduler.log"
    command = scheduler_command("--once")
    with js.started_before_redis(command, _worker_config(app), queue_name, log, "scheduler") as (scheduler, redis):
        assert scheduled(db_session) == {}  # nothing decided while Redis is away
        redis.start()
        scheduler.wait(timeout=90)
        output = log.read_text()
        assert scheduler.returncode == 0, output[-3000:]
        assert "answers after" in output and "Traceback" not in output
        assert scheduled(db_session) == {jobs.PURGE: "queued", jobs.RECONCILE: "queued"}
        assert Queue(queue_name, connection=Redis.from_url(redis.url)).count == 2


def test_the_demo_host_reads_callrec_settings_from_the_environment(tmp_path, monkeypatch):
    from examples.practice_host import create_app

    monkeypatch.setenv("CALLREC_PANEL_PAGE_SIZE", "7")
    monkeypatch.setenv("CALLREC_QUEUE", "from-the-environment")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo.db'}", "SECRET_KEY": "t",
                      "CALLREC_STORAGE_DIR": str(tmp_path / "storage"), "CALLREC_KEY_FILE": str(tmp_path / "keys.txt"),
                      "CALLREC_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "audit.pem"),
                      "CALLREC_LOAD_ENTRY_POINTS": False})
    assert app.config["CALLREC_PANEL_PAGE_SIZE"] == 7
    assert app.config["CALLREC_QUEUE"] == "from-the-environment"
