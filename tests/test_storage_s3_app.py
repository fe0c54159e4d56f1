"""An installation on S3-compatible object storage (moto's S3 server on 127.0.0.1): ingest, playback with
Range, purge and the reconciler, and `flask callrec storage migrate` from the folder, resumable."""
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from callrec_plugin.crypto import SEGMENT_SIZE
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import Recording
from callrec_plugin.playback import storage_backend
from callrec_plugin.storage import LocalEncryptedStorage
from callrec_plugin.storage_s3 import S3EncryptedStorage
from tests.audio_samples import wav_bytes
from tests.conftest import csrf_from
from tests.s3_server import start_s3_server

STARTED = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def s3_server():
    server, stop = start_s3_server()
    yield server
    stop()


@pytest.fixture
def bucket(s3_server):
    return s3_server.new_bucket()


def ingest(n, audio):
    return ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=STARTED + dt.timedelta(minutes=n),
                        direction="inbound", from_number="+447700900001", to_number="201", source="test",
                        source_ref=f"r{n}").recording_id


def play(client, recording_id, headers=None):
    page = client.get(f"/callrec/recordings/{recording_id}")
    client.post(f"/callrec/recordings/{recording_id}/grants", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "action": "play", "purpose": "spot_check"})
    return client.get(f"/callrec/recordings/{recording_id}/audio", headers=headers or {})


@pytest.fixture
def s3_app(app, s3_server, bucket):
    # Config is read per request (pytest-flask has made the app already: its autouse fixture asks for it).
    app.config.update(s3_server.config(bucket))
    return app


def test_ingest_and_ranged_playback_from_object_storage(s3_app, s3_server, bucket, app, db_session, login):
    audio = wav_bytes(20.0, rate=8000)
    recording_id = ingest(1, audio)
    backend = storage_backend()
    assert isinstance(backend, S3EncryptedStorage)
    key = db_session.get(Recording, recording_id).storage_key
    stored = s3_server.client().get_object(Bucket=bucket, Key="callrec/" + key)["Body"].read()
    assert stored[:4] == b"CRE1" and audio[1000:1100] not in stored  # ciphertext only in the bucket
    client = login("owner")
    assert play(client, recording_id).data == audio
    start = 3 * SEGMENT_SIZE + 123
    ranged = play(client, recording_id, {"Range": f"bytes={start}-{start + SEGMENT_SIZE - 1}"})
    assert ranged.status_code == 206 and ranged.data == audio[start:start + SEGMENT_SIZE]


def test_purge_deletes_the_object_and_the_reconciler_sweeps_orphans(s3_app, s3_server, bucket, app, db_session,
                                                                    monkeypatch):
    from callrec_plugin import purge

    audio = wav_bytes(3.0, rate=8000)
    old, kept = ingest(1, audio), ingest(2, audio)
    db_session.execute(sa.update(Recording).where(Recording.id == old)
                       .values(retain_until=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)))
    db_session.commit()
    backend = storage_backend()
    old_key, kept_key = (db_session.get(Recording, rid).storage_key for rid in (old, kept))
    orphan = backend.new_key("orphan-0001")
    with backend.open_write(orphan) as f:
        f.write(b"CRE1 left by a crashed ingest")
    deletes = []
    for name in ("delete", "delete_many"):  # whatever instance the purge builds, what it asks of S3
        real = getattr(S3EncryptedStorage, name)
        monkeypatch.setattr(S3EncryptedStorage, name,
                            lambda self, *args, _real=real, _name=name, **kwargs: deletes.append(_name)
                            or _real(self, *args, **kwargs))
    purge.purge()
    assert not backend.exists(old_key) and backend.exists(kept_key)
    assert deletes == ["delete_many"]  # one DeleteObjects request for the batch, not one per object
    app.config["CALLREC_ORPHAN_GRACE_HOURS"] = 0
    purge.reconcile()
    assert set(backend.iter_keys()) == {kept_key}


def test_storage_migrate_copies_ciphertext_and_resumes(app_config, s3_server, bucket, app, db_session, login,
                                                       monkeypatch):
    audio = wav_bytes(5.0, rate=8000)
    ids = [ingest(n, audio) for n in range(3)]
    folder = LocalEncryptedStorage(app.config["CALLREC_STORAGE_DIR"])
    app.config.update(s3_server.config(bucket))
    app.config["CALLREC_STORAGE_BACKEND"] = "folder"
    runner = app.test_cli_runner()

    # Interrupted after the first blob: nothing half-written at the target, and the next run resumes.
    real_open_write, calls = S3EncryptedStorage.open_write, []

    def failing_open_write(self, key):
        calls.append(key)
        if len(calls) == 2:
            raise ConnectionError("network dropped")
        return real_open_write(self, key)

    monkeypatch.setattr(S3EncryptedStorage, "open_write", failing_open_write)
    interrupted = runner.invoke(args=["callrec", "storage", "migrate", "--from", "folder", "--to", "s3"])
    assert interrupted.exit_code != 0
    monkeypatch.undo()
    result = runner.invoke(args=["callrec", "storage", "migrate", "--from", "folder", "--to", "s3"])
    assert result.exit_code == 0, result.output
    assert "copied 2 blobs" in result.output and "1 already at the target" in result.output
    assert "every recording and export row's blob is at the target" in result.output
    again = runner.invoke(args=["callrec", "storage", "migrate", "--from", "folder", "--to", "s3"])
    assert "copied 0 blobs" in again.output and "3 already at the target" in again.output
    s3 = S3EncryptedStorage(s3_server.client(), bucket, "callrec/")
    for key in folder.iter_keys():  # byte for byte the same ciphertext: nothing was decrypted
        with folder.open_read(key) as a, s3.open_read(key) as b:
            assert a.read() == b.read()
    app.config["CALLREC_STORAGE_BACKEND"] = "s3"  # the switch
    assert play(login("owner"), ids[1]).data == audio


def test_migrate_reports_rows_whose_blob_the_target_lacks(app_config, s3_server, bucket, app, db_session):
    audio = wav_bytes(2.0, rate=8000)
    rid = ingest(1, audio)
    app.config.update(s3_server.config(bucket))
    app.config["CALLREC_STORAGE_BACKEND"] = "folder"
    LocalEncryptedStorage(app.config["CALLREC_STORAGE_DIR"]).delete(db_session.get(Recording, rid).storage_key)
    result = app.test_cli_runner().invoke(args=["callrec", "storage", "migrate", "--from", "folder", "--to", "s3"])
    assert result.exit_code == 1 and "1 rows point at blobs the target does not have" in result.output
    same = app.test_cli_runner().invoke(args=["callrec", "storage", "migrate", "--from", "s3", "--to", "s3"])
    assert same.exit_code != 0
