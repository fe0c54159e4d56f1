"""Key status and rotation through the CLI, including a rotation killed with SIGKILL and run again."""
import io
import os
import signal
import subprocess
import sys
import textwrap

import sqlalchemy as sa

from callrec_plugin.ingest import ingest_audio
from callrec_plugin.keyring import KeyRing, add_key_to_file
from callrec_plugin.models import Recording
from callrec_plugin.playback import open_plaintext
from tests.audio_samples import wav_bytes
from tests.test_ingest_api_python import STARTED


def ingest_many(count):
    clips = {}
    for number in range(count):
        audio = wav_bytes(2.5, tone=300 + number)
        result = ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=STARTED, direction="inbound",
                              from_number="+447700900001", to_number="201", source="test", source_ref=f"k{number}")
        clips[result.recording_id] = audio
    return clips


def test_status_and_rotate(app, db_session):
    clips = ingest_many(3)
    old = KeyRing.from_config(app.config).newest_id
    runner = app.test_cli_runner()
    assert f"{old}: 3 recordings" in runner.invoke(args=["callrec", "keys", "status"]).output
    new = add_key_to_file(app.config["CALLREC_KEY_FILE"])
    status = runner.invoke(args=["callrec", "keys", "status"]).output
    assert f"{old}: 3 recordings" in status and "3 recordings to re-wrap" in status
    result = runner.invoke(args=["callrec", "keys", "rotate", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "re-wrapped 2 of 3" in result.output and "re-wrapped 3 of 3" in result.output
    db_session.expire_all()
    assert {r.key_id for r in db_session.scalars(sa.select(Recording))} == {new}
    for recording_id, audio in clips.items():
        with open_plaintext(db_session.get(Recording, recording_id)) as reader:
            assert reader.read() == audio


ROTATE_SLOWLY = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests import hostapp
    from callrec_plugin import rotation
    from callrec_plugin.keyring import KeyRing
    app = hostapp.create_app({config!r})
    original = KeyRing.rewrap
    def slow_rewrap(self, *args):
        time.sleep(0.02)
        return original(self, *args)
    KeyRing.rewrap = slow_rewrap
    with app.app_context():
        print("started", flush=True)
        rotation.rotate(hostapp.db.session, KeyRing.from_config(app.config), batch_size=3,
                        progress=lambda done, total: print("progress", done, flush=True))
""")


def test_rotation_killed_part_way_then_rerun_leaves_every_recording_readable(app, app_config, db_session):
    clips = ingest_many(24)
    new = add_key_to_file(app.config["CALLREC_KEY_FILE"])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = ROTATE_SLOWLY.format(root=root, config=dict(app_config, CALLREC_LOAD_ENTRY_POINTS=False))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=root)
    for line in child.stdout:
        if line.startswith("progress") and int(line.split()[1]) >= 6:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    db_session.expire_all()
    keys = [r.key_id for r in db_session.scalars(sa.select(Recording))]
    assert 0 < keys.count(new) < len(clips), "the kill should land part way through"
    result = app.test_cli_runner().invoke(args=["callrec", "keys", "rotate"])
    assert result.exit_code == 0, result.output
    db_session.expire_all()
    assert {r.key_id for r in db_session.scalars(sa.select(Recording))} == {new}
    for recording_id, audio in clips.items():
        with open_plaintext(db_session.get(Recording, recording_id)) as reader:
            assert reader.read() == audio
