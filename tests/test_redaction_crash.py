"""A redaction killed by SIGKILL at each of its steps loses nothing: afterwards the recording is
readable (the original or the silenced audio, never neither), and once the interrupted redaction is
finished (by the reconciler, or by the next redaction of the call) exactly one blob is left, the
silenced one, under a new data key: no orphan, the old blob and key gone, one audit event.

The kill points are the purge tests' mechanism (CALLREC_TEST_KILL_AT="<point>:<n>", kill_points.py),
reached in a real separate process that runs the redaction against the same database and storage."""
import datetime as dt
import io
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from callrec_plugin import audit, purge, redaction, silencing
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import AuditEvent, Recording, Redaction, utcnow
from callrec_plugin.playback import open_plaintext, storage_backend
from tests import jobs_support as js
from tests import silencing_samples as samples

REPO = Path(__file__).resolve().parent.parent
INTERVALS = [[2.0, 3.5]]
SCRIPT = """
import sys
from tests.jobs_support import create_app
from callrec_plugin import redaction, silencing
from callrec_plugin.identity import Actor

app = create_app()
with app.app_context():
    manager = Actor(user=None, ref="manager", name="Manager", roles=frozenset({"manager"}), practice_ref="pA")
    redaction.redact(sys.argv[1], "pA", silencing.parse_intervals([[2.0, 3.5]]), actor=manager,
                     reason="card_details")
"""


def run_redaction(app_config, recording_id, kill_at):
    env = js.worker_env(app_config, CALLREC_TEST_KILL_AT=kill_at)
    return subprocess.run([sys.executable, "-c", SCRIPT, recording_id], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def plaintext_of(db_session, recording_id):
    db_session.expire_all()
    recording = db_session.get(Recording, recording_id)
    with open_plaintext(recording) as reader:
        return reader.read()


def silenced(data):
    source = io.BytesIO(data)
    return silencing.silenced(source, silencing.plan(source, silencing.parse_intervals(INTERVALS))).read()


def blob_keys(app):
    with app.app_context():
        return set(storage_backend().iter_keys())


def temp_files(app):
    return list(Path(app.config["CALLREC_STORAGE_DIR"]).rglob("*.tmp"))


@pytest.mark.parametrize("point", redaction.KILL_POINTS)
def test_a_kill_at_each_step_loses_nothing_and_leaves_no_orphan(app, app_config, db_session, point):
    original = samples.pcm_wav(seconds=10.0).data  # 160 KB: the new blob is written in several reads
    recording_id = ingest_audio(io.BytesIO(original), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=1),
                                direction="inbound", from_number="+447700900001", to_number="201", source="api",
                                source_ref="crash-1").recording_id
    before = db_session.get(Recording, recording_id)
    old_key, old_wrapped = before.storage_key, before.wrapped_key
    db_session.commit()

    result = run_redaction(app_config, recording_id, f"{point}:1")
    assert result.returncode == -9, f"kill point {point} not reached: {result.stderr[-2000:]}"

    # Right after the kill: one of the two recordings is readable, and nothing else is on disk.
    now_readable = plaintext_of(db_session, recording_id)
    assert now_readable in (original, silenced(original)), point
    row = db_session.get(Recording, recording_id)
    assert blob_keys(app) <= {old_key, db_session.scalar(sa.select(Redaction.new_storage_key))}
    assert row.storage_key in blob_keys(app), "the recording points at a blob that is not there"

    # The reconciler finishes it (the person's decision stands: the card details must go).
    with app.app_context():
        purge.reconcile()
        storage_backend().remove_stale_temp_files(0)  # what the reconciler does once they are old enough
    assert plaintext_of(db_session, recording_id) == silenced(original)
    row = db_session.get(Recording, recording_id)
    assert blob_keys(app) == {row.storage_key}, "exactly one blob: the silenced one, no orphan"
    assert not temp_files(app)
    assert row.storage_key != old_key and row.wrapped_key != old_wrapped
    assert old_wrapped not in db_session.scalars(sa.select(Recording.wrapped_key)).all()
    redactions = db_session.scalars(sa.select(Redaction)).all()
    assert [(r.status, r.reason) for r in redactions] == [("done", "card_details")]
    done = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "redact")).all()
    assert [(e.outcome, e.actor_ref) for e in done] == [("done", "manager")], "one audit event per redaction"
    assert audit.verify(db_session).ok


def test_a_recording_purged_before_an_interrupted_redaction_resumes_is_left_alone(app, app_config, db_session):
    original = samples.pcm_wav(seconds=10.0).data
    recording_id = ingest_audio(io.BytesIO(original), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=1),
                                direction="inbound", from_number="+447700900001", to_number="201", source="api",
                                source_ref="crash-2").recording_id
    db_session.commit()
    assert run_redaction(app_config, recording_id, "redact_after_write:1").returncode == -9
    db_session.execute(sa.update(Recording).where(Recording.id == recording_id)
                       .values(status="purging", wrapped_key=None, key_id=None))
    db_session.commit()
    with app.app_context():
        purge.reconcile()
    assert db_session.scalar(sa.select(Redaction.status)) == "abandoned"
    assert blob_keys(app) == set(), "the purge's blob and the redaction's new blob are both gone"
