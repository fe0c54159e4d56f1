"""With CALLREC_REDIS_URL set, the ingest API's upload cap and its count of failed authentications are
shared by every web process; without Redis reachable, each process still counts its own.

Two apps stand for two gunicorn workers: each has its own process state (``app.extensions``), and they
share only the database and Redis, as two worker processes do.
"""
import time

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest import auth_failures
from callrec_plugin.ingest.upload_slots import KEY_PREFIX, SharedUploadSlots, UploadSlots, slots
from callrec_plugin.models import AuditEvent, Recording
from callrec_plugin.state import get_state
from tests import hostapp
from tests.audio_samples import wav_bytes
from tests.jobs_support import REDIS_URL, redis_or_skip
from tests.test_ingest_http import METADATA, SECRET, multipart, post

UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_connection():
    connection = redis_or_skip()
    _forget(connection)
    yield connection
    _forget(connection)


def _forget(connection):
    connection.delete(auth_failures.SHARED_KEY, KEY_PREFIX + "pA")


@pytest.fixture
def app_config(app_config):
    return dict(app_config, CALLREC_API_SECRETS={"pA": SECRET}, CALLREC_REDIS_URL=REDIS_URL,
                CALLREC_API_MAX_CONCURRENT_UPLOADS=2)


@pytest.fixture
def second_worker(app, app_config):
    """A second app on the same database and Redis: another worker process's view."""
    return hostapp.create_app(app_config)


def count(db_session, model):
    return db_session.scalar(sa.select(sa.func.count()).select_from(model))


def test_the_upload_cap_counts_every_process_uploads(app, second_worker, db_session, redis_connection):
    first = slots(app)
    assert isinstance(first, SharedUploadSlots)
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    with app.app_context(), first.taken("pA", 2), first.taken("pA", 2):
        assert slots(second_worker).running("pA") == 2
        busy = post(second_worker.test_client(), body, content_type)
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"
    assert count(db_session, Recording) == 0
    assert slots(second_worker).running("pA") == 0  # both slots were given back
    assert post(second_worker.test_client(), body, content_type).status_code == 201
    assert redis_connection.zcard(KEY_PREFIX + "pA") == 0


def test_a_slot_left_by_a_killed_process_lapses_after_its_lease(app, db_session, redis_connection):
    app.config["CALLREC_API_UPLOAD_LEASE_SECONDS"] = 60
    stale = time.time() - 61
    redis_connection.zadd(KEY_PREFIX + "pA", {"killed-1": stale, "killed-2": stale})
    assert slots(app).running("pA") == 0
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    assert post(app.test_client(), body, content_type).status_code == 201
    assert redis_connection.zscore(KEY_PREFIX + "pA", "killed-1") is None  # forgotten, not just ignored


def test_a_live_slot_of_another_process_still_counts(app, db_session, redis_connection):
    now = time.time()
    redis_connection.zadd(KEY_PREFIX + "pA", {"other-1": now, "other-2": now})
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    assert post(app.test_client(), body, content_type).status_code == 429
    assert count(db_session, Recording) == 0


def test_without_redis_each_process_counts_its_own(app, db_session):
    app.config["CALLREC_REDIS_URL"] = UNREACHABLE
    pool = slots(app)
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    # Redis down: an upload is not refused because the counter is; the cap holds within the process.
    assert post(app.test_client(), body, content_type).status_code == 201
    with app.app_context(), pool.fallback.taken("pA", 2), pool.fallback.taken("pA", 2):
        assert post(app.test_client(), body, content_type).status_code == 429
    assert count(db_session, Recording) == 1


def test_without_redis_configured_the_slots_are_the_process_own(app_config):
    app = hostapp.create_app(dict(app_config, CALLREC_REDIS_URL=None))
    assert isinstance(slots(app), UploadSlots)


def test_failed_authentications_are_counted_across_processes_and_never_audited(
        app, second_worker, db_session, redis_connection):
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    assert post(app.test_client(), body, content_type, secret="wrong").status_code == 401
    assert post(second_worker.test_client(), body, content_type, secret="wrong").status_code == 401
    for worker in (app, second_worker):
        with worker.app_context():
            counts = auth_failures.failures()
            assert counts.shared and counts.total == 2
            assert counts.by_endpoint == {"callrec.ingest_recording": 2}
            assert "signature" in counts.last_reason
    assert count(db_session, AuditEvent) == 0 and count(db_session, Recording) == 0


def test_the_jobs_page_says_whose_count_it_shows(app, login, db_session, redis_connection):
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    post(app.test_client(), body, content_type, secret="wrong")
    page = login("owner").get("/callrec/jobs").get_data(as_text=True)
    assert "1 across every server process" in page
    app.config["CALLREC_REDIS_URL"] = UNREACHABLE  # Redis gone: the page falls back to this process's count
    get_state(app).cache.pop(auth_failures.CACHE_KEY + ":redis")
    fallback = login("owner").get("/callrec/jobs").get_data(as_text=True)
    assert "1 in this server process" in fallback
