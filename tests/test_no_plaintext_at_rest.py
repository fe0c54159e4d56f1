"""After the demo's calls are ingested, the storage directory holds ciphertext only: no audio
headers and no sample of any of the demo's clips anywhere in it."""
import os
from pathlib import Path


AUDIO = Path(__file__).resolve().parent.parent / "examples" / "practice_host" / "audio"


def test_demo_storage_holds_no_plaintext(tmp_path):
    from callrec_plugin import migrate
    from examples.practice_host import create_app
    from examples.practice_host.models import db
    from examples.practice_host.seed import seed_calls, seed_host_data

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'practice.db'}", "SECRET_KEY": "x",
        "CALLREC_STORAGE_DIR": str(tmp_path / "storage"), "CALLREC_KEY_FILE": str(tmp_path / "keys.txt"),
        "CALLREC_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "audit.pem"), "CALLREC_LOAD_ENTRY_POINTS": False,
    })
    with app.app_context():
        db.create_all()
        migrate.upgrade(db.engine)
        seed_host_data(echo=lambda message: None)
        seed_calls(25, echo=lambda message: None)
        db.session.remove()
        db.engine.dispose()
    clips = [path.read_bytes() for path in sorted(AUDIO.glob("*.wav"))]
    assert clips, "the demo's clips are missing"
    samples = [clip[offset:offset + 32] for clip in clips for offset in (44, len(clip) // 3, 2 * len(clip) // 3)]
    blobs = [Path(d) / name for d, _, names in os.walk(tmp_path / "storage") for name in names]
    assert len(blobs) >= 20
    for blob in blobs:
        data = blob.read_bytes()
        assert data.startswith(b"CRE1"), blob
        # 4+ byte magics: a 3-byte "ID3" turns up by chance in ciphertext, "ID3" + version does not
        for magic in (b"RIFF", b"WAVE", b"ID3\x03\x00", b"ID3\x04\x00", b"OggS"):
            assert magic not in data, (blob, magic)
        assert not any(sample in data for sample in samples), blob
