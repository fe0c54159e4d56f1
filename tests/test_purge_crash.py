"""Crash safety with real Redis and real `flask callrec worker` processes killed by SIGKILL.

~1,000 recordings (held, expired and unheld, in the grace period, active), each with a small real
CRE1 blob. A purge worker is killed at 20 different moments of a purge (CALLREC_TEST_KILL_AT makes
the work horse SIGKILL its worker and itself at a named kill point, like a power cut), and a
reconcile worker at 3 more. After every kill nothing held or active is lost and nothing is
half-visible; after one clean worker and the reconciler: every eligible recording purged, no orphan
blob, no row pointing at a missing blob, one tombstone and one audit event per purge. Then the same
for an export killed mid-build, with the real retry budget (CALLREC_JOB_RETRIES): the scheduler's
round re-queues it while attempts remain, and once it is abandoned a retry from the jobs page
completes it.
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
from tests.conftest import valid_csrf_token

# (kill point, on its n-th pass in that worker, what the kill leaves). Batches of 10; the points are
# in callrec_plugin/purge.py. The order matters: a kill that leaves rows "purging" (key destroyed,
# tombstone committed) makes the next purge start by finishing them (finish_interrupted), which is
# where the reconcile_delete and the first before_purged_commit points are met.
PURGE_KILLS = [
    ("after_start", 1, "the run began: interrupted rows finished, complaint holds synced, progress total set"),
    ("after_lock", 1, "batch 1 selected and locked (FOR UPDATE SKIP LOCKED), holds not yet re-checked"),
    ("after_recheck", 1, "batch 1 re-checked under the lock, no key destroyed yet"),
    ("after_key_destroyed", 1, "keys destroyed in the open transaction, no tombstone yet"),
    ("after_tombstones", 1, "tombstones written, no audit event yet"),
    ("before_commit", 1, "tombstones and audit events written, not committed"),
    ("after_commit", 1, "batch 1 committed 'purging', before its first blob delete"),
    ("reconcile_delete", 1, "the next run finishing batch 1: after its first blob delete"),
    ("reconcile_delete", 4, "finishing the interrupted batch: between two of its blob deletes"),
    ("before_purged_commit", 1, "all of the interrupted batch's blobs gone, 'purged' not committed"),
    ("after_lock", 2, "the interrupted batch and batch 1 done, batch 2 locked"),
    ("mid_delete", 1, "batch 1 committed, after its first blob delete"),
    ("mid_delete", 6, "between two blob deletes in the middle of batch 1"),
    ("after_delete", 1, "after the last blob delete of batch 1, before 'purged'"),
    ("before_purged_commit", 2, "batch 1's 'purged' update made, not committed"),
    ("after_purged", 1, "batch 1 'purged' committed, callrec_recording_purged hooks not yet fired"),
    ("after_hooks", 1, "batch 1 complete with its hooks, before batch 2"),
    ("mid_delete", 15, "between two blob deletes of batch 2"),
    ("after_commit", 3, "batches 1 and 2 complete, batch 3 committed, before its first blob delete"),
    ("purge_done", 1, "every eligible recording purged, the job not yet recorded as finished"),
]
# Extra: the reconciler killed while it finishes interrupted purges and while it sweeps orphans. They
# run just before the last purge kill (the rows batch 3 left "purging" are still there).
RECONCILE_KILLS = [("reconcile_delete", 1), ("orphan_delete", 1), ("orphan_delete", 2)]
ORPHANS = 12


@pytest.fixture
def redis_conn():
    return js.redis_or_skip()


@pytest.fixture
def app_config(app_config, redis_conn):
    """The test app's config, with Redis and a queue of this test's own (the app and the workers share it)."""
    queue = js.unique_queue()
    app_config.update(CALLREC_REDIS_URL=js.REDIS_URL, CALLREC_QUEUE=queue, CALLREC_PURGE_BATCH_SIZE=10,
                      CALLREC_JOB_STALE_SECONDS=1, CALLREC_WORKER_HEARTBEAT_SECONDS=1,
                      CALLREC_WORKER_DEAD_AFTER_SECONDS=1, CALLREC_JOB_RETRIES=3, CALLREC_JOB_RETRY_BASE_SECONDS=1,
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


def kill_worker(worker_config, kind, point, nth):
    queueing.submit(kind, requested_by_ref="crash-test")
    result = js.run_worker(worker_config, kill_at=f"{point}:{nth}")
    assert result.returncode in (0, -9), result.stderr[-3000:]
    assert result.returncode == -9, f"the kill point {point}:{nth} was not reached by the {kind} job"


def test_purge_survives_sigkill_at_twenty_points(app, worker_config, db_session):
    assert len(set((point, nth) for point, nth, _ in PURGE_KILLS)) == len(PURGE_KILLS) == 20
    blobs = js.Blobs(app)
    ids = js.seed(db_session, blobs, utcnow(), held=150, expired=350, active=450, in_grace=50)
    orphans = old_orphans(blobs, ORPHANS)
    for point, nth, _ in PURGE_KILLS[:-1]:
        kill_worker(worker_config, "purge", point, nth)
        state = js.check_purge_invariants(db_session, blobs, ids, complete=False)
    assert state["purging"] == 10 and state["purged"] == 120, state  # as the comments in PURGE_KILLS say
    for point, nth in RECONCILE_KILLS:
        kill_worker(worker_config, "reconcile", point, nth)
        state = js.check_purge_invariants(db_session, blobs, ids, complete=False)
    assert state["purged"] < len(ids["expired"]), "the kills should leave work for the last purge"
    assert sum(not blobs.exists(key) for key in orphans) == 3  # one, then two more, before each reconcile kill
    point, nth, _ = PURGE_KILLS[-1]
    kill_worker(worker_config, "purge", point, nth)
    state = js.check_purge_invariants(db_session, blobs, ids, complete=False)
    assert state["purged"] == len(ids["expired"]) and state["purging"] == 0
    db_session.expire_all()
    last = db_session.scalar(sa.select(Job).order_by(Job.created_at.desc()).limit(1))
    assert (last.kind, last.status) == ("purge", "running")  # it died before recording that it finished

    time.sleep(3.2)  # the killed workers' heartbeats are now overdue (1 s) and older than the dead-after
    counts = queueing.requeue_pending()  # the scheduler's round re-queues the dead jobs
    assert counts["requeued"] == 23 and counts["abandoned"] == 0, counts
    queueing.submit("reconcile", requested_by_ref="crash-test")
    result = js.run_worker(worker_config)  # the burst runs them, and a reconcile after them
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
    """CALLREC_JOB_RETRIES=3: a job may start 4 times. The scheduler's round (requeue_pending)
    re-queues a job whose worker died while attempts remain, and abandons it
    after the 4th death: the job and the export are "failed" and stay so until someone retries the
    job from the jobs page. A retry by hand renews the budget, so the 5th death is re-queued again and
    the next worker completes the bundle."""
    assert worker_config["CALLREC_JOB_RETRIES"] == 3
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
    owner = login("owner")
    export_id = js.request_bundle(client, app, "pat1")

    def job_and_export():
        db_session.expire_all()
        return db_session.scalar(sa.select(Job).where(Job.object_id == export_id)), db_session.get(Export, export_id)

    def retry_from_the_jobs_page(job):
        response = owner.post(f"/callrec/jobs/{job.id}/retry", data={"csrf_token": valid_csrf_token(app, owner)})
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        job, export = job_and_export()
        assert (job.status, export.status) == ("queued", "queued")

    attempt = 0
    for point, nth in EXPORT_KILLS:
        attempt += 1
        result = js.run_worker(worker_config, kill_at=f"{point}:{nth}")
        assert result.returncode == -9, (point, result.stderr[-2000:])
        job, export = job_and_export()
        assert (job.status, job.attempts, export.status) == ("running", attempt, "building"), point
        assert client.get(f"/callrec/exports/{export_id}/download").status_code == 409, point
        time.sleep(3.1)  # the killed worker's heartbeat is overdue (1 s, 2 s late) and older than dead-after
        queueing.requeue_pending(utcnow())  # the scheduler's round
        job, export = job_and_export()
        if attempt < 4:
            assert (job.status, export.status) == ("queued", "building"), (point, job.status, job.error)
            continue
        # the 4th death in a row spent the budget
        assert (job.status, export.status) == ("failed", "failed"), (point, job.status, job.error)
        assert job.error.startswith(f"abandoned: the worker stopped responding {attempt} times (last: worker ")
        assert client.get(f"/callrec/exports/{export_id}/download").status_code == 409, point
        queueing.requeue_pending(utcnow())
        assert job_and_export()[0].status == "failed", "only a person revives an abandoned job"
        retry_from_the_jobs_page(job)
        assert job_and_export()[0].attempts == 0  # the person's retry renews the budget
        attempt = 0
    result = js.run_worker(worker_config)
    assert result.returncode == 0, result.stderr[-2000:]
    db_session.expire_all()
    assert db_session.get(Export, export_id).status == "ready"
    response = client.get(f"/callrec/exports/{export_id}/download")
    assert response.status_code == 200
    names = js.unpack_and_verify(response.data, tmp_path)
    assert len([n for n in names if n.startswith("calls/")]) == 8
    # earlier attempts left nothing behind: each new attempt (and the final failure) removed the killed
    # writer's temporary file and the interrupted attempt's blob at once, not a day later
    assert not list(Path(blobs.root).rglob("*.tmp"))
    on_disk = {k for k in blobs.keys() if "exp-" in k}
    assert on_disk == {db_session.get(Export, export_id).storage_key}
    with zipfile.ZipFile(io.BytesIO(response.data)) as bundle:
        assert bundle.testzip() is None
