"""With Redis down, callrec keeps working; what needs a job answers 503 and is not lost.

Panels, the recording page, playback and every page that only reads the database keep working. A
request that needs a job records its intent (the export and job rows), answers 503 with Retry-After and
a clear message, and the scheduler enqueues it once Redis is back; a real worker then completes it.
"""
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from callrec_plugin import queueing
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import Disclosure, Export, Job, utcnow
from tests import jobs_support as js
from tests.audio_samples import wav_bytes
from tests.conftest import csrf_from, valid_csrf_token

DOWN = "redis://127.0.0.1:1/15"  # nothing listens on port 1


@pytest.fixture
def redis_conn():
    return js.redis_or_skip()


@pytest.fixture
def app_config(app_config, redis_conn):
    queue = js.unique_queue()
    app_config.update(CALLREC_REDIS_URL=DOWN, CALLREC_QUEUE=queue)
    yield app_config
    js.delete_queue_keys(redis_conn, queue)


@pytest.fixture
def recording_id(app, db_session):
    result = ingest_audio(io.BytesIO(wav_bytes(4.0)), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=2),
                          direction="inbound", from_number="+447700900001", to_number="201", source="test",
                          source_ref="avail-1")
    return result.recording_id


def test_pages_panels_and_playback_work_while_redis_is_down(app, db_session, login, recording_id):
    owner = login("owner")
    patient = owner.get("/patients/pat1")
    assert patient.status_code == 200 and recording_id in patient.get_data(as_text=True)
    page = owner.get(f"/callrec/recordings/{recording_id}")
    assert page.status_code == 200
    granted = owner.post(f"/callrec/recordings/{recording_id}/grants",
                         data={"csrf_token": csrf_from(page.get_data(as_text=True)), "purpose": "compliance",
                               "action": "play"})
    assert granted.status_code == 302
    audio = owner.get(f"/callrec/recordings/{recording_id}/audio", headers={"Range": "bytes=100-"})
    assert audio.status_code == 206 and audio.data == wav_bytes(4.0)[100:]
    for url in ("/callrec/jobs", "/callrec/exports", "/callrec/disclosures", "/callrec/audit"):
        assert owner.get(url).status_code == 200, url


def test_a_job_request_answers_503_keeps_the_intent_and_completes_when_redis_returns(
        app, db_session, login, recording_id, app_config, tmp_path):
    dpo = login("dpo")
    from tests.subject_access_support import registered

    entry_id = registered(db_session, "pat1").id
    response = dpo.post("/callrec/exports", data={"subject_access_id": entry_id,
                                                   "csrf_token": valid_csrf_token(app, dpo)})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    body = response.get_data(as_text=True)
    assert "not reachable" in body and "saved" in body and "do not need to send it again" in body
    export = db_session.scalar(sa.select(Export))
    job = db_session.scalar(sa.select(Job))
    assert (export.status, job.status, job.kind, job.rq_job_id) == ("queued", "queued", "export", None)
    assert dpo.get(f"/callrec/exports/{export.id}").status_code == 200  # the page shows it waiting
    assert dpo.get(f"/callrec/exports/{export.id}/download").status_code == 409

    # a disclosure approval and a retry from the jobs page need the queue too
    manager = login("manager")
    assert manager.post("/callrec/disclosures", data={
        "recipient": "CQC", "recipient_kind": "regulator", "legal_basis": "Health and Social Care Act 2008 s.64",
        "reference": "CQC-1", "recordings": recording_id,
        "csrf_token": valid_csrf_token(app, manager)}).status_code == 302
    disclosure = db_session.scalar(sa.select(Disclosure))
    owner = login("owner")
    approved = owner.post(f"/callrec/disclosures/{disclosure.id}/approve",
                          data={"csrf_token": valid_csrf_token(app, owner)})
    assert approved.status_code == 503 and approved.headers["Retry-After"] == "30"
    db_session.add(Job(kind="reconcile", status="failed", error="boom"))
    db_session.commit()
    failed = db_session.scalar(sa.select(Job).where(Job.status == "failed"))
    retried = owner.post(f"/callrec/jobs/{failed.id}/retry", data={"csrf_token": valid_csrf_token(app, owner)})
    assert retried.status_code == 503
    assert queueing.scheduler_tick()["skipped"].startswith("Redis unavailable")

    # Redis is back: one scheduler round enqueues every saved intent; a real worker runs them
    app.config["CALLREC_REDIS_URL"] = app_config["CALLREC_REDIS_URL"] = js.REDIS_URL
    done = queueing.scheduler_tick(now=utcnow() + dt.timedelta(seconds=queueing.REQUEUE_MIN_AGE_SECONDS + 1))
    assert done["enqueued"] == 3 and len(done["scheduled"]) == 2, done  # 3 saved intents; the scheduled runs
    result = js.run_worker(app_config)
    assert result.returncode == 0, result.stderr[-3000:]
    db_session.expire_all()
    statuses = {j.kind + ":" + (j.object_id or "") : j.status for j in db_session.scalars(sa.select(Job))}
    assert set(statuses.values()) == {"finished"}, statuses
    assert db_session.get(Export, export.id).status == "ready"
    bundle = dpo.get(f"/callrec/exports/{export.id}/download")
    assert bundle.status_code == 200
    names = js.unpack_and_verify(bundle.data, tmp_path)
    assert len([n for n in names if n.startswith("calls/")]) == 1
    disclosure = db_session.get(Disclosure, disclosure.id)
    assert disclosure.status == "approved" and db_session.get(Export, disclosure.export_id).status == "ready"
