"""`import --remove-originals`: a plaintext original leaves the phone system only after its encrypted
copy was read back, decrypted and matched to the original's SHA-256; otherwise it stays, and is counted."""
import os

import sqlalchemy as sa

from callrec_plugin.ingest import freepbx_import
from callrec_plugin.models import ImportRun, Recording
from tests import pbx_tree
from tests.test_pbx_real_layout import run


def recordings_on_disk(root):
    return sorted(name for _, _, files in os.walk(root) for name in files
                  if name not in (pbx_tree.LEGACY, pbx_tree.CONTROL_NAME))


def test_originals_are_deleted_only_after_their_copies_verify(app, db_session, tmp_path, monkeypatch):
    root, cdr, _ = pbx_tree.write_tree(tmp_path)
    events = []
    real_verify, real_remove = freepbx_import.verified_copy, freepbx_import.Beneath.remove

    def verify(recording_id, sha256):
        why = real_verify(recording_id, sha256)
        events.append(("verified", recording_id, why))
        return why

    def remove(self, relative, listed):
        assert os.path.exists(os.path.join(root, relative))
        events.append(("removed", os.path.basename(relative)))
        return real_remove(self, relative, listed)

    monkeypatch.setattr(freepbx_import, "verified_copy", verify)
    monkeypatch.setattr(freepbx_import.Beneath, "remove", remove)
    result = run(app, root, "--cdr-timezone", "UTC", "--remove-originals", cdr=cdr)

    stored = {r.source_ref: r for r in db_session.scalars(sa.select(Recording))}
    assert len(stored) == 10 and "removed 10 plaintext originals" in result.output, result.output
    assert recordings_on_disk(root) == []  # every recording's plaintext is gone from the phone system
    # Each removal came straight after a verification of that very call that found nothing wrong.
    for index, event in enumerate(events):
        if event[0] == "removed":
            verified = events[index - 1]
            assert verified[0] == "verified" and verified[2] is None
            assert stored[event[1]].id == verified[1]
    assert "plaintext recordings remain" not in result.output
    run_row = db_session.scalars(sa.select(ImportRun)).one()
    assert (run_row.originals_removed, run_row.originals_left) == (10, 0)
    # The encrypted copies still play back the original bytes (the check was real).
    call = pbx_tree.CALLS[0]
    from callrec_plugin.playback import open_plaintext

    with open_plaintext(stored[call.name]) as reader:
        assert reader.read() == call.audio


def test_an_original_whose_copy_does_not_verify_is_kept_and_reported(app, db_session, tmp_path, monkeypatch):
    root, cdr, _ = pbx_tree.write_tree(tmp_path)
    damaged = pbx_tree.CALLS[0].name
    real_ingest = freepbx_import.ingest_audio

    def ingest_then_damage(audio, **metadata):
        result = real_ingest(audio, **metadata)
        if metadata["source_ref"] == damaged:  # a storage fault between writing and reading back
            recording = db_session.get(Recording, result.recording_id)
            path = os.path.join(app.config["CALLREC_STORAGE_DIR"], *recording.storage_key.split("/"))
            with open(path, "r+b") as blob:
                blob.seek(100)
                byte = blob.read(1)
                blob.seek(100)
                blob.write(bytes([byte[0] ^ 1]))
        return result

    monkeypatch.setattr(freepbx_import, "ingest_audio", ingest_then_damage)
    result = run(app, root, "--cdr-timezone", "UTC", "--remove-originals", cdr=cdr)
    assert result.exit_code == 1
    assert f"original kept 2026/07/14/{damaged}: the stored copy could not be read back" in result.output
    assert recordings_on_disk(root) == [damaged]
    assert "1 plaintext recordings remain on the phone system" in result.output


def test_originals_imported_earlier_are_removed_once_verified_against_the_stored_copy(app, db_session, tmp_path):
    root, cdr, _ = pbx_tree.write_tree(tmp_path)
    first = run(app, root, "--cdr-timezone", "UTC", cdr=cdr)
    assert "10 plaintext recordings remain" in first.output and len(recordings_on_disk(root)) == 10
    second = run(app, root, "--cdr-timezone", "UTC", "--remove-originals", cdr=cdr)
    assert "imported 0, duplicates 10" in second.output and "removed 10 plaintext originals" in second.output
    assert recordings_on_disk(root) == []


def test_a_file_changed_after_import_is_not_deleted(app, db_session, tmp_path):
    root, cdr, _ = pbx_tree.write_tree(tmp_path)
    run(app, root, "--cdr-timezone", "UTC", cdr=cdr)
    changed = root / "2026/07/14" / pbx_tree.CALLS[0].name
    changed.write_bytes(changed.read_bytes() + b"\x00" * 10)  # MixMonitor appended after the first run
    second = run(app, root, "--cdr-timezone", "UTC", "--remove-originals", cdr=cdr)
    assert "stored copy differs from the original" in second.output
    assert changed.exists() and "removed 9 plaintext originals" in second.output


def test_the_retention_page_says_how_many_plaintext_originals_remain_and_where(app, db_session, tmp_path, login):
    root, cdr, _ = pbx_tree.write_tree(tmp_path)
    run(app, root, "--cdr-timezone", "UTC", cdr=cdr)
    page = login("manager").get("/callrec/retention").get_data(as_text=True)
    assert "Plaintext recordings left on the phone system" in page
    assert f"<td><code>{root}</code></td><td>10</td>" in page
    run(app, root, "--cdr-timezone", "UTC", "--remove-originals", cdr=cdr)
    assert "Plaintext recordings left" not in login("manager").get("/callrec/retention").get_data(as_text=True)
