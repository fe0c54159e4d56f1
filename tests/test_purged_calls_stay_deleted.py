"""A call callrec has purged is never stored again when the phone system offers it a second time (a spool
imported without --remove-originals, an ingest client retrying): the tombstone keeps a keyed digest of
where the call came from, never the file name or its numbers."""
import datetime as dt
import io
import os

import sqlalchemy as sa

from callrec_plugin import purge
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import Recording, Tombstone
from callrec_plugin.purged_sources import source_digest
from tests.audio_samples import wav_bytes
from tests.test_ingest_http import METADATA, SECRET, multipart, post

STARTED = dt.datetime(2026, 5, 2, 9, 30, tzinfo=dt.timezone.utc)
SOURCE_REF = "in-07700900001-201-20260502-093000-1777714200.7.wav"


def offer(app, audio, source_ref=SOURCE_REF):
    with app.app_context():
        return ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=STARTED, direction="inbound",
                            from_number="07700900001", to_number="201", source="freepbx", source_ref=source_ref)


def purge_everything(db_session):
    db_session.execute(sa.update(Recording).values(retain_until=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)))
    db_session.commit()
    purge.purge()


def blobs(app):
    return sum(len(files) for _, _, files in os.walk(app.config["CALLREC_STORAGE_DIR"]))


def count(db_session, model, *where):
    return db_session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_a_purged_call_offered_again_is_skipped_with_the_reason(app, db_session):
    audio = wav_bytes(2.0, rate=8000)
    first = offer(app, audio)
    assert first.status == "imported"
    purge_everything(db_session)
    tombstone = db_session.get(Tombstone, first.recording_id)
    assert tombstone.source_digest == source_digest("pA", "freepbx", SOURCE_REF, app)
    again = offer(app, audio)
    assert again.status == "skipped" and again.recording_id is None
    assert "deleted on" in again.reason and "retention expired" in again.reason
    assert count(db_session, Recording, Recording.status == "active") == 0 and blobs(app) == 0
    # Another call from the same phone system is stored as usual.
    other = offer(app, audio, source_ref=SOURCE_REF.replace("1777714200.7", "1777714300.8"))
    assert other.status == "imported"


def test_the_tombstone_keeps_no_file_name_and_no_number(app, db_session):
    recording_id = offer(app, wav_bytes(1.0, rate=8000)).recording_id
    purge_everything(db_session)
    row = db_session.execute(sa.select(Tombstone.__table__).where(Tombstone.recording_id == recording_id)).one()
    kept = " ".join(str(value) for value in row)
    assert "07700900001" not in kept and "1777714200" not in kept and "in-" not in kept
    assert db_session.get(Recording, recording_id).source_ref == f"purged:{recording_id}"


def test_the_digest_is_keyed_by_the_app_secret(app):
    digest = source_digest("pA", "freepbx", SOURCE_REF, app)
    assert len(digest) == 64 and SOURCE_REF not in digest
    assert digest != source_digest("pB", "freepbx", SOURCE_REF, app)
    assert digest != source_digest("pA", "api", SOURCE_REF, app)
    secret = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "another secret"
    try:
        assert source_digest("pA", "freepbx", SOURCE_REF, app) != digest  # rotating SECRET_KEY forgets them
    finally:
        app.config["SECRET_KEY"] = secret


def test_the_signed_api_answers_200_skipped_for_a_purged_call(app, app_config, db_session):
    app.config["CALLREC_API_SECRETS"] = {"pA": SECRET}
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    stored = post(app.test_client(), body, content_type)
    assert stored.status_code == 201
    purge_everything(db_session)
    again = post(app.test_client(), body, content_type)
    assert again.status_code == 200 and again.json["status"] == "skipped"
    assert "deleted on" in again.json["reason"]
    assert count(db_session, Recording) == 1 and blobs(app) == 0
