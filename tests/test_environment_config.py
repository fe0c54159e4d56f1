"""Configuration from the environment: every CALLREC_* key from a variable of the same name, the host's
config winning; `flask callrec config` with secrets masked; a real worker that takes CALLREC_REDIS_URL
from the environment and runs a job; a worker started while Redis is down waits and reconnects."""
import json

from callrec_plugin import queueing
from callrec_plugin.config import apply_defaults, from_environment
from callrec_plugin.models import Job
from tests import hostapp
from tests import jobs_support as js


def test_every_key_comes_from_the_environment_json_decoded_where_not_text(app_config, monkeypatch):
    monkeypatch.setenv("CALLREC_REDIS_URL", "redis://:s3cret@127.0.0.1:6379/4")
    monkeypatch.setenv("CALLREC_JOB_RETRIES", "5")
    monkeypatch.setenv("CALLREC_API_SECRETS", '{"pA": "from-env"}')
    monkeypatch.setenv("CALLREC_QUEUE", "123")  # a text key stays text even if it looks like JSON
    monkeypatch.setenv("CALLREC_STRICT_PLUGINS", "false")
    monkeypatch.setenv("CALLREC_PHONE_REGION", "IE")
    app = hostapp.create_app({**app_config, "CALLREC_PHONE_REGION": "GB"})  # the host's own config wins
    config = app.config
    assert config["CALLREC_REDIS_URL"] == "redis://:s3cret@127.0.0.1:6379/4"
    assert config["CALLREC_JOB_RETRIES"] == 5
    assert config["CALLREC_API_SECRETS"] == {"pA": "from-env"}
    assert config["CALLREC_QUEUE"] == "123" and config["CALLREC_STRICT_PLUGINS"] is False
    assert config["CALLREC_PHONE_REGION"] == "GB"
    with app.app_context():
        hostapp.db.engine.dispose()


def test_variables_that_are_not_config_keys_are_ignored():
    class App:
        config = {}
        instance_path = "/tmp"

    app = App()
    apply_defaults(app, environ={"CALLREC_KEYS": "k1:abc", "CALLREC_APP_FACTORY": "x:y", "CALLREC_TEST_KILL_AT": "a:1"})
    assert "CALLREC_KEYS" not in app.config and "CALLREC_APP_FACTORY" not in app.config
    assert from_environment("CALLREC_JOB_TIMEOUT", "not json") == "not json"  # as from_prefixed_env does


def test_config_command_prints_the_effective_configuration_with_secrets_masked(app_config, monkeypatch):
    monkeypatch.setenv("CALLREC_REDIS_URL", "redis://worker:s3cret@127.0.0.1:6379/4")
    app = hostapp.create_app({**app_config, "CALLREC_API_SECRETS": {"pA": "very-secret-value"}})
    result = app.test_cli_runner().invoke(args=["callrec", "config"])
    assert result.exit_code == 0, result.output
    assert 'CALLREC_REDIS_URL = "redis://worker:***@127.0.0.1:6379/4"' in result.output
    assert 'CALLREC_API_SECRETS = {"pA": "***"}' in result.output
    assert "s3cret" not in result.output and "very-secret-value" not in result.output
    assert "CALLREC_CDR_TIMEZONE = null" in result.output
    as_json = json.loads(app.test_cli_runner().invoke(args=["callrec", "config", "--json"]).output)
    assert as_json["CALLREC_QUEUE"] == "callrec"
    with app.app_context():
        hostapp.db.engine.dispose()


def _worker_config(app):
    # Only what the host itself sets: the Redis URL and the queue come from the environment.
    return {key: app.config[key] for key in ("SQLALCHEMY_DATABASE_URI", "CALLREC_STORAGE_DIR", "CALLREC_KEY_FILE")}


def test_a_real_worker_takes_its_redis_url_from_the_environment_and_runs_a_job(app, db_session):
    connection = js.redis_or_skip()
    queue_name = js.unique_queue()
    try:
        app.config.update(CALLREC_REDIS_URL=js.REDIS_URL, CALLREC_QUEUE=queue_name)
        job = queueing.submit("reconcile", requested_by_ref="test")  # put on RQ, not run here
        assert db_session.get(Job, job.id).status == "queued"
        result = js.run_worker(_worker_config(app), CALLREC_REDIS_URL=js.REDIS_URL, CALLREC_QUEUE=queue_name)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"on queue '{queue_name}'" in result.stdout
        db_session.expire_all()
        assert db_session.get(Job, job.id).status == "finished"
    finally:
        js.delete_queue_keys(connection, queue_name)


def test_a_worker_started_while_redis_is_down_waits_and_reconnects(app, db_session, tmp_path):
    queue_name = js.unique_queue()
    log = tmp_path / "worker.log"
    command = js.worker_command("--max-jobs", "1", "--without-scheduler")
    with js.started_before_redis(command, _worker_config(app), queue_name, log, "worker") as (worker, redis):
        redis.start()
        app.config.update(CALLREC_REDIS_URL=redis.url, CALLREC_QUEUE=queue_name)
        job = queueing.submit("reconcile", requested_by_ref="test")
        worker.wait(timeout=90)  # it stops after its one job
        output = log.read_text()
        assert worker.returncode == 0, output[-3000:]
        assert "does not answer (try 1" in output and "does not answer (try 2" in output
        assert "answers after" in output and "Traceback" not in output
        db_session.expire_all()
        assert db_session.get(Job, job.id).status == "finished"


def test_waiting_for_redis_backs_off_and_logs_each_try(caplog):
    from callrec_plugin.redis_wait import wait_for_redis

    port = js.free_port()  # nothing listens there
    sleeps = []
    with caplog.at_level("WARNING", logger="callrec_plugin.redis"):
        connection = wait_for_redis(f"redis://:pw@127.0.0.1:{port}/0", sleep=sleeps.append,
                                    stopping=lambda: len(sleeps) >= 4)
    assert connection is None and sleeps == [1, 2, 4, 8]
    tries = [record.getMessage() for record in caplog.records]
    assert len(tries) == 5 and all(f"does not answer (try {n}" in tries[n - 1] for n in range(1, 6))
    assert "pw" not in caplog.text  # the password never reaches the log
