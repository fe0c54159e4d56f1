"""The FreePBX import reads pauses from a `.silence` sidecar or the CDR userfield (docs/pbx.md):
the paused audio is silenced before encryption, the copy is verified against the silenced original
before the original is removed, and a malformed sidecar keeps the recording out (and on the PBX)."""
import io
import json

import pytest
import sqlalchemy as sa

from callrec_plugin import silencing
from callrec_plugin.ingest import silence_sidecar
from callrec_plugin.models import Recording, Redaction
from callrec_plugin.playback import open_plaintext
from tests import silencing_samples as samples

NAME = "in-01632960000-07700900001-20261102-093000-1762075800.11"
CDR_ROW = ('"","07700900001","01632960000","from-trunk","""Ada Patient"" <07700900001>","SIP/trunk-1","SIP/201-2",'
           '"Dial","SIP/201","2026-11-02 09:30:00","2026-11-02 09:30:03","2026-11-02 09:30:07",7,4,"ANSWERED",'
           '"DOCUMENTATION","1762075800.11","{userfield}"\n')


def silenced(data, intervals):
    source = io.BytesIO(data)
    return silencing.silenced(source, silencing.plan(source, silencing.parse_intervals(intervals))).read()


def run_import(app, root, *extra):
    return app.test_cli_runner().invoke(args=["callrec", "import", str(root), "--practice", "pA", "--min-age", "0",
                                              *extra])


def stored(db_session):
    recording = db_session.scalar(sa.select(Recording))
    with open_plaintext(recording) as reader:
        return recording, reader.read()


def test_sidecar_and_userfield_pauses_are_silenced_and_the_original_removed(app, db_session, tmp_path):
    root = tmp_path / "monitor" / "2026" / "11" / "02"
    root.mkdir(parents=True)
    audio = samples.pcm_wav(seconds=4.0).data
    (root / f"{NAME}.wav").write_bytes(audio)
    (root / f"{NAME}.silence").write_text("# card payment\n0.5 1.25\n")
    cdr = tmp_path / "Master.csv"
    cdr.write_text(CDR_ROW.format(userfield="vip;callrec-silence=2-2.5,3.0-3.5"))
    result = run_import(app, tmp_path / "monitor", "--cdr", str(cdr), "--remove-originals")
    assert "imported 1" in result.output and "skipped 0" in result.output, result.output
    recording, plaintext = stored(db_session)
    intervals = [["0.5", "1.25"], ["2", "2.5"], ["3.0", "3.5"]]
    assert plaintext == silenced(audio, intervals)
    assert not (root / f"{NAME}.wav").exists(), "verified against the silenced original, then removed"
    row = db_session.scalar(sa.select(Redaction))
    assert (row.source, row.reason) == ("pbx", "pbx_pause")
    assert json.loads(row.ranges) == [[0.5, 1.25], [2.0, 2.5], [3.0, 3.5]]


def test_a_malformed_sidecar_keeps_the_recording_out_and_on_the_pbx(app, db_session, tmp_path):
    root = tmp_path / "monitor" / "2026" / "11" / "02"
    root.mkdir(parents=True)
    (root / f"{NAME}.wav").write_bytes(samples.pcm_wav(seconds=2.0).data)
    (root / f"{NAME}.silence").write_text("soon\n")
    result = run_import(app, tmp_path / "monitor", "--remove-originals")
    assert "is not 'START END' in seconds" in result.output
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Recording)) == 0
    assert (root / f"{NAME}.wav").exists()


@pytest.mark.parametrize("text, expected", [
    ("1 2\n3.5 4\n", [["1", "2"], ["3.5", "4"]]),
    ("# only a comment\n\n", []),
    ("1, 2  # paused\n", [["1", "2"]]),
])
def test_sidecar_lines(text, expected):
    assert silence_sidecar.parse_sidecar(text) == expected


@pytest.mark.parametrize("userfield, expected", [
    ("", []), ("vip", []), ("callrec-silence=1-2", [["1", "2"]]),
    ("a=b; callrec-silence=1.5-2,3-4 ;c", [["1.5", "2"], ["3", "4"]]),
])
def test_userfield_tokens(userfield, expected):
    assert silence_sidecar.parse_userfield(userfield) == expected


@pytest.mark.parametrize("bad", ["callrec-silence=2", "callrec-silence=3-1", "callrec-silence=x-1"])
def test_bad_userfield_tokens_say_why(bad):
    with pytest.raises(silence_sidecar.SidecarError):
        silence_sidecar.parse_userfield(bad)
