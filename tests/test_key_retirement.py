"""`flask callrec keys retire KEY_ID`: an old key-encryption key is destroyed only once nothing live is
wrapped by it, and a backup of the database taken before the purge is then unreadable."""
import io

import pytest
import sqlalchemy as sa

from callrec_plugin.crypto import TamperedError
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.keyring import KeyRing, KeyRingError, add_key_to_file, generate_key_file
from callrec_plugin.models import AuditEvent, Recording
from callrec_plugin.playback import open_plaintext
from tests.audio_samples import wav_bytes
from tests.test_ingest_api_python import STARTED


@pytest.fixture
def app_config(app_config, tmp_path):
    path = tmp_path / "own-keys.txt"  # this test rewrites its key file: never the session's shared one
    generate_key_file(str(path))
    return dict(app_config, CALLREC_KEY_FILE=str(path))


def test_retire_refuses_while_a_key_wraps_anything_then_destroys_it(app, db_session):
    audio = wav_bytes(2.5)
    result = ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=STARTED, direction="inbound",
                          from_number="+447700900001", to_number="201", source="test", source_ref="retire-1")
    old = KeyRing.from_config(app.config).newest_id
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["callrec", "keys", "retire", old])
    assert refused.exit_code != 0 and "newest key" in refused.output
    add_key_to_file(app.config["CALLREC_KEY_FILE"])
    refused = runner.invoke(args=["callrec", "keys", "retire", old])
    assert refused.exit_code != 0 and "1 recordings" in refused.output and "keys rotate" in refused.output
    # a "backup" of the database row as it is now, wrapped by the old key
    backup = dict(db_session.execute(sa.select(Recording.wrapped_key, Recording.key_id)
                                     .where(Recording.id == result.recording_id)).one()._mapping)
    assert runner.invoke(args=["callrec", "keys", "rotate"]).exit_code == 0
    done = runner.invoke(args=["callrec", "keys", "retire", old])
    assert done.exit_code == 0, done.output
    ring = KeyRing.from_config(app.config)
    assert old not in ring and old not in open(app.config["CALLREC_KEY_FILE"]).read()
    with pytest.raises((KeyRingError, TamperedError, KeyError)):
        ring.unwrap(backup["wrapped_key"], backup["key_id"], result.recording_id)  # the backup's copy is noise
    event = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "key_retired")).one()
    assert event.object_id == old
    assert runner.invoke(args=["callrec", "keys", "retire", "knope"]).exit_code != 0
    # the live recording still plays: it was re-wrapped to the new key before the old one went
    db_session.expire_all()
    with open_plaintext(db_session.get(Recording, result.recording_id)) as reader:
        assert reader.read() == audio
