"""Crash safety with real Redis and real `flask callrec worker` processes killed by SIGKILL.

~1,000 recordings (held, expired and unheld, in the grace period, active), each with a small real
CRE1 blob. A worker is killed at 20 named points of a purge or a reconcile (CALLREC_TEST_KILL_AT makes
the work horse SIGKILL its worker and itself there, like a power cut). After every kill nothing held or
active is lost and nothing is half-visible; after one clean worker and the reconciler: every eligible
recording purged, no orphan blob, no row pointing at a missing blob, one tombstone and one audit event
per purge. Then the same for an export killed mid-build.
"""
import datetime as dt
import io
import os
import time
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from callrec_plugin import audit, queueing
from callrec_plugin.models import Export, Job, Recording, new_id, utcnow
from tests import jobs_support as js

# (kill point, on its n-th pass, the job to run). Ordered so that every point is reached: e.g. a kill
# after a commit leaves rows "purging" for the next run's reconcile_delete.
KILLS = [
    ("after_lock", 1, "purge"),
    ("after_key_destroyed", 1, "purge"),
    ("before_commit", 2, "purge"),
    ("after_commit", 1, "purge"),  # leaves a batch "purging": key destroyed, blobs still there
    ("reconcile_delete", 2, "purge"),  # the next purge finishes them first, and dies doing so
    ("mid_delete", 3, "purge"),
    ("reconcile_delete", 1, "reconcile"),
    ("after_delete", 1, "purge"),
    ("after_purged", 1, "purge"),
    ("orphan_delete", 2, "reconcile"),
    ("after_commit", 3, "purge"),
    ("mid_delete", 17, "purge"),
    ("before_commit", 1, "purge"),
    ("after_lock", 3, "purge"),
    ("after_key_destroyed", 2, "purge"),
    ("orphan_delete", 1, "reconcile"),
    ("mid_delete", 9, "purge"),
    ("after_delete", 2, "purge"),
    ("after_purged", 2, "purge"),
    ("mid_delete", 25, "purge"),
]
ORPHANS = 12


@pytest.fixture
def redis_conn():
    return js.redis_or_skip()


@pytest.fixture
def app_config(app_config, redis_conn):
    """The test app's config, with Redis and a queue of this test's own (the app and the workers share it)."""
    queue = js.unique_queue()
    app_config.update(CALLREC_REDIS_URL=js.REDIS_URL, CALLREC_QUEUE=queue, CALLREC_PURGE_BATCH_SIZE=10,
                      CALLREC_JOB_STALE_SECONDS=1, CALLREC_JOB_RETRIES=3, CALLREC_JOB_RETRY_BASE_SECONDS=1,
                      CALLREC_ORPHAN_GRACE_HOURS=1)
    yield app_config
    js.delete_queue_keys(redis_conn, queue)


@pytest.fixture
def worker_config(app, app_config):
    return app_config


def old_orphans(blobs, count):
    """Blobs no row points at, written two hours ago (past the one-hour grace of this test)."""
    keys = []
    for _ in range(count):
        key = blobs.write(new_id())["storage_key"]
        two_hours_ago = time.time() - 7200
        os.utime(blobs.path(key), (two_hours_ago, two_hours_ago))
        keys.append(key)
    return keys


def test_purge_survives_sigkill_at_twenty_points(app, worker_config, db_session):
    blobs = js.Blobs(app)
    ids = js.seed(db_session, blobs, utcnow(), held=150, expired=350, active=450, in_grace=50)
    orphans = old_orphans(blobs, ORPHANS)
    killed = 0
    for point, nth, kind in KILLS:
        queueing.submit(kind, requested_by_ref="crash-test")
        result = js.run_worker(worker_config, kill_at=f"{point}:{nth}")
        assert result.returncode in (0, -9), result.stderr[-3000:]
        assert result.returncode == -9, f"the kill point {point}:{nth} was not reached"
        state = js.check_purge_invariants(db_session, blobs, ids, complete=False)
        killed += 1
    assert killed == len(KILLS) == 20
    assert state["purged"] < len(ids["expired"]), "the kills should leave work for the recovery"

    time.sleep(1.2)  # the killed jobs' heartbeats are now older than CALLREC_JOB_STALE_SECONDS
    queueing.submit("reconcile", requested_by_ref="crash-test")
    result = js.run_worker(worker_config)
    assert result.returncode == 0, result.stderr[-3000:]

    final = js.check_purge_invariants(db_session, blobs, ids, complete=True)
    assert final["purged"] == len(ids["expired"])
    assert not any(blobs.exists(key) for key in orphans)
    assert audit.verify(db_session).ok
    db_session.expire_all()
    unfinished = db_session.scalars(sa.select(Job).where(Job.status != "finished")).all()
    assert not unfinished, [(j.kind, j.status, j.error) for j in unfinished]


def test_two_workers_purging_at_once_purge_each_recording_once(app, worker_config, db_session, redis_conn):
    from rq import Worker

    blobs = js.Blobs(app)
    worker_config["CALLREC_PURGE_BATCH_SIZE"] = 20
    ids = js.seed(db_session, blobs, utcnow(), held=60, expired=1500, active=100)
    workers = [js.start_worker(worker_config, "--without-scheduler") for _ in range(2)]
    try:
        queue = queueing.rq_queue(redis_conn, app)
        js.wait_for(lambda: len(Worker.all(queue=queue)) == 2, message="both workers to listen")
        jobs = [queueing.submit("purge", requested_by_ref="race-test").id for _ in range(2)]

        def both_finished():
            db_session.expire_all()
            return all(db_session.get(Job, job_id).status in ("finished", "failed") for job_id in jobs)
        js.wait_for(both_finished, timeout=120, message="both purges to finish")
    finally:
        outputs = [js.stop_process(worker) for worker in workers]
    rows = [db_session.get(Job, job_id) for job_id in jobs]
    assert [row.status for row in rows] == ["finished", "finished"], [(r.status, r.error) for r in rows]
    assert all("Job OK" in output for output in outputs), "each worker ran one of the purges"
    first, second = sorted(rows, key=lambda row: row.started_at)
    assert second.started_at < first.finished_at, "the two purges ran at the same time"
    done = [row.progress_done for row in rows]
    assert sum(done) == len(ids["expired"]) and min(done) > 0, done  # the work was shared, nothing twice
    js.check_purge_invariants(db_session, blobs, ids, complete=True)
    assert audit.verify(db_session).ok


EXPORT_KILLS = [("export_started", 1), ("export_mid", 4), ("export_zip_closing", 1), ("export_before_publish", 1),
                ("export_after_blob", 1)]


def test_export_killed_mid_build_is_never_downloadable_and_the_retry_completes(
        app, worker_config, db_session, login, tmp_path):
    blobs = js.Blobs(app)
    now = utcnow()
    rows = []
    for n in range(8):
        row = js.recording_row(now - dt.timedelta(days=n + 1), patient_ref="pat1")
        row.update(blobs.write(row["id"], os.urandom(150_000 + n)))
        rows.append(row)
    db_session.execute(sa.insert(Recording), rows)
    db_session.commit()
    client = login("dpo")
    export_id = js.request_bundle(client, app, "pat1")
    for point, nth in EXPORT_KILLS:
        result = js.run_worker(worker_config, kill_at=f"{point}:{nth}")
        assert result.returncode == -9, (point, result.stderr[-2000:])
        db_session.expire_all()
        export = db_session.get(Export, export_id)
        assert export.status == "building", point
        assert client.get(f"/callrec/exports/{export_id}/download").status_code == 409, point
        time.sleep(1.1)
        queueing.requeue_pending(utcnow())  # the scheduler's round: the dead job goes back on the queue
        job = db_session.scalar(sa.select(Job).where(Job.object_id == export_id))
        db_session.refresh(job)
        assert job.status == "queued", (point, job.status, job.error)
        job.attempts = 0  # five deliberate deaths are not the export's fault
        db_session.commit()
    result = js.run_worker(worker_config)
    assert result.returncode == 0, result.stderr[-2000:]
    db_session.expire_all()
    assert db_session.get(Export, export_id).status == "ready"
    response = client.get(f"/callrec/exports/{export_id}/download")
    assert response.status_code == 200
    names = js.unpack_and_verify(response.data, tmp_path)
    assert len([n for n in names if n.startswith("calls/")]) == 8
    # earlier attempts left nothing behind once the reconciler has run: killed writers' temporary
    # files go once older than the grace period (made so here), the interrupted attempts' blobs at once
    temporary = list(Path(blobs.root).rglob("*.tmp"))
    assert temporary, "the kills inside the write should have left temporary files"
    for path in temporary:
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    queueing.submit("reconcile", requested_by_ref="crash-test")
    assert js.run_worker(worker_config).returncode == 0
    assert not list(Path(blobs.root).rglob("*.tmp"))
    on_disk = {k for k in blobs.keys() if "exp-" in k}
    assert on_disk == {db_session.get(Export, export_id).storage_key}
    with zipfile.ZipFile(io.BytesIO(response.data)) as bundle:
        assert bundle.testzip() is None
