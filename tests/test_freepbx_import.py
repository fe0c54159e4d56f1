"""`flask callrec import` of a FreePBX tree with its CDR: imported once, encrypted, reasons for the rest."""
import datetime as dt
import os

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest.freepbx_import import local_to_utc
from callrec_plugin.models import Recording
from tests.audio_samples import wav_bytes
from tests.test_ingest_parsers import make_gsm, make_ogg, vorbis_id

# An MPEG-1 Layer III frame (128 kb/s, 44.1 kHz) with an ID3v2 tag in front: enough to be recognised.
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + (b"\xff\xfb\x90\x64" + b"\x55" * 413) * 40
OGG_HEAD = b"OggS"


def write(root, relative, data):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "monitor"
    clips = {
        "2026/11/02/in-01632960000-07700900001-20261102-093000-1762075800.11.wav": wav_bytes(4.0, tone=300),
        "2026/11/02/out-907700900002-201-20261102-101500-1762078500.12.wav": wav_bytes(3.0, tone=500),
        "2026/11/03/q-600-07700900009-20261103-110000-1762167600.13.wav": wav_bytes(5.0, tone=700),
        "2026/11/03/external-201-anonymous-20261103-120000-1762171200.14.mp3": MP3,
        "2026/11/04/in-01632960000-07700900003-20261104-090000-1762246800.19.ogg":
            make_ogg(vorbis_id(8000), last_granule=8000 * 4, filler_pages=6, filler_size=400),
        "2026/11/04/in-01632960000-07700900004-20261104-093000-1762248600.20.gsm": make_gsm(250),
    }
    for relative, data in clips.items():
        write(root, relative, data)
    write(root, "2026/11/03/in-01632960000-07700900001-20261103-130000-1762174800.15.wav", b"%PDF-1.4 oops" * 30)
    write(root, "2026/11/03/voicemail-greeting.wav", wav_bytes(3.0))
    write(root, "2026/11/04/in-01632960000-07700900001-20261103-140000-1762178400.16.wav", wav_bytes(3.0))
    write(root, "2026/11/03/in-01632960000-07700900001-20261103-150000-1762182000.17.wav", wav_bytes(0.5))
    (root / "2026/11/03/in-x-07700900001-20261103-160000-1762185600.18.wav").symlink_to(tmp_path / "outside.wav")
    write(tmp_path, "outside.wav", wav_bytes(3.0))
    cdr = tmp_path / "Master.csv"
    cdr.write_text(
        '"","07700900001","01632960000","from-trunk","""Ada Patient"" <07700900001>","SIP/trunk-1","SIP/201-2",'
        '"Dial","SIP/201","2026-11-02 09:30:00","2026-11-02 09:30:03","2026-11-02 09:30:07",7,4,"ANSWERED",'
        '"DOCUMENTATION","1762075800.11",""\n'
        '"","201","907700900002","from-internal","""Reception"" <201>","SIP/201-3","SIP/trunk-4",'
        '"Dial","SIP/trunk/07700900002","2026-11-02 10:15:00","2026-11-02 10:15:05","2026-11-02 10:15:08",8,3,'
        '"ANSWERED","DOCUMENTATION","1762078500.12",""\n'
        'this line, is not a CDR row\n'
    )
    return root, cdr, clips


def run_import(app, root, cdr=None):
    args = ["callrec", "import", str(root), "--practice", "pA", "--min-age", "0"] + (["--cdr", str(cdr)] if cdr else [])
    return app.test_cli_runner().invoke(args=args)


def test_import_tree_with_cdr_then_again_adds_nothing(app, db_session, tree):
    root, cdr, clips = tree
    first = run_import(app, root, cdr)
    assert first.exit_code == 1, first.output  # files were refused: the exit status says so
    assert "imported 7, duplicates 0, skipped 4" in first.output  # 6 good + the 0.5 s call, flagged short
    assert "PDF" in first.output and "voicemail-greeting.wav" in first.output
    assert "outside" in first.output or "symbolic link" in first.output
    assert "CDR line 3" in first.output
    second = run_import(app, root, cdr)
    assert "imported 0, duplicates 7, skipped 4" in second.output
    from_above = run_import(app, root.parent, cdr)  # the same calls seen from another folder
    assert "imported 0, duplicates 7" in from_above.output, from_above.output
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Recording)) == 7

    by_ref = {r.source_ref: r for r in db_session.scalars(sa.select(Recording))}
    inbound = by_ref["in-01632960000-07700900001-20261102-093000-1762075800.11.wav"]
    assert inbound.patient_ref == "pat1" and inbound.direction == "inbound"
    assert inbound.started_at == dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.timezone.utc)  # GMT in November
    assert inbound.disposition == "ANSWERED" and inbound.duration_seconds == pytest.approx(4.0, abs=0.01)
    outbound = by_ref["out-907700900002-201-20261102-101500-1762078500.12.wav"]
    assert outbound.direction == "outbound" and outbound.staff_extension == "201"
    external = by_ref["external-201-anonymous-20261103-120000-1762171200.14.mp3"]
    assert external.from_number == "withheld" and external.mime_type == "audio/mpeg"
    ogg = by_ref["in-01632960000-07700900003-20261104-090000-1762246800.19.ogg"]
    gsm = by_ref["in-01632960000-07700900004-20261104-093000-1762248600.20.gsm"]
    assert (ogg.audio_format, ogg.mime_type) == ("ogg", "audio/ogg") and ogg.duration_seconds == pytest.approx(4.0)
    assert gsm.audio_format == "gsm" and gsm.duration_seconds == pytest.approx(5.0)  # 250 frames of 20 ms


def test_storage_holds_no_plaintext_after_import(app, db_session, tree):
    root, cdr, clips = tree
    run_import(app, root, cdr)
    storage = app.config["CALLREC_STORAGE_DIR"]
    names = [os.path.join(d, f) for d, _, files in os.walk(storage) for f in files]
    assert len(names) == 7  # WAV, MP3, Ogg and GSM calls among them
    samples = [data[offset:offset + 32] for data in clips.values() for offset in (64, len(data) // 2)]
    for name in names:
        blob = open(name, "rb").read()
        assert blob.startswith(b"CRE1")
        # 4+ byte magics: a 3-byte "ID3" turns up by chance in ciphertext, "ID3" + version does not
        for magic in (b"RIFF", b"WAVEfmt", b"ID3\x03\x00", OGG_HEAD, b"\x01vorbis"):
            assert magic not in blob
        assert not any(sample in blob for sample in samples)


def test_import_needs_a_practice(app, tree):
    root, _, _ = tree
    result = app.test_cli_runner().invoke(args=["callrec", "import", str(root)])
    assert result.exit_code != 0 and "--practice" in result.output


@pytest.mark.parametrize("local,expected_utc", [
    (dt.datetime(2026, 7, 1, 12, 0), dt.datetime(2026, 7, 1, 11, 0)),       # BST
    (dt.datetime(2026, 10, 25, 1, 30), dt.datetime(2026, 10, 25, 0, 30)),   # repeated hour: the first
    (dt.datetime(2026, 3, 29, 1, 30), dt.datetime(2026, 3, 29, 1, 30)),     # skipped hour: read as GMT
    (dt.datetime(2028, 2, 29, 23, 59), dt.datetime(2028, 2, 29, 23, 59)),   # leap day
])
def test_phone_system_local_times_become_utc(local, expected_utc):
    from zoneinfo import ZoneInfo

    assert local_to_utc(local, ZoneInfo("Europe/London")) == expected_utc.replace(tzinfo=dt.timezone.utc)


def test_files_still_being_recorded_wait_for_the_next_run(app, db_session, tmp_path):
    root = tmp_path / "live"
    write(root, "2026/11/02/in-s-07700900001-20261102-093000-1762075800.21.wav", wav_bytes(3.0))
    result = app.test_cli_runner().invoke(args=["callrec", "import", str(root), "--practice", "pA"])
    assert "imported 0" in result.output and "may still be recording" in result.output
    later = app.test_cli_runner().invoke(args=["callrec", "import", str(root), "--practice", "pA", "--min-age", "0"])
    assert "imported 1" in later.output  # and the trunk's "s" in place of a DID is no number, not an error
    recording = db_session.scalars(sa.select(Recording)).one()
    assert recording.to_number == "withheld" and recording.patient_ref == "pat1"
