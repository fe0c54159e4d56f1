"""Local encrypted blob storage: generated names only, atomic writes, sweeps."""
import hashlib
import io
import os
import stat
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callrec_plugin.crypto import DecryptingReader, encrypt_stream, generate_data_key
from callrec_plugin.storage import LocalEncryptedStorage

RID = "rec_0001-abcdef"


def test_new_key_shape():
    key = LocalEncryptedStorage.new_key(RID)
    digest = hashlib.sha256(RID.encode()).hexdigest()
    assert key == f"{digest[:2]}/{digest[2:4]}/{RID}.cre"
    assert LocalEncryptedStorage.is_valid_key(key)
    assert LocalEncryptedStorage.recording_id_of(key) == RID


@pytest.mark.parametrize(
    "rid", ["short", "x" * 65, "recording1\n", "has space1", "dot.dot.dot", "../../etc", "slash/inside", "", "ümlaut123", None, 12345678]
)
def test_new_key_rejects_bad_recording_ids(rid):
    with pytest.raises(ValueError):
        LocalEncryptedStorage.new_key(rid)


def bad_keys():
    good = LocalEncryptedStorage.new_key(RID)
    a, b, name = good.split("/")
    keys = [
        "../../etc/passwd",
        "/etc/passwd",
        f"/{good}",
        f"{a}/{b}/../{name}",
        f"{a}/{b}/{RID}",
        f"{a}/{b}/{RID}.cre/",
        f"{a}/{b}/{RID}.cre\n",
        f"{a}/{b}/.{RID}.cre",
        f"{a}\\{b}\\{name}",
        f"{a}/{name}",
        f"{b}/{a}/{name}" if a != b else f"00/00/{name}",  # shard does not match the id
        f"{a.upper()}/{b}/{name}",
        f"./{good}",
        good.replace(".cre", ".CRE"),
        "",
        None,
        b"ab/cd/x.cre",
        f"{a}/{b}/{name}".encode(),
    ]
    return [k for k in keys if k != good]


@pytest.mark.parametrize("key", bad_keys())
def test_every_method_refuses_foreign_keys(tmp_path, key):
    storage = LocalEncryptedStorage(tmp_path)
    for call in (
        lambda: storage.open_write(key).__enter__(),
        lambda: storage.open_read(key),
        lambda: storage.size(key),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
    ):
        with pytest.raises(ValueError):
            call()
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=90))
def test_arbitrary_text_is_only_accepted_if_generated(key):
    if LocalEncryptedStorage.is_valid_key(key):
        assert LocalEncryptedStorage.new_key(LocalEncryptedStorage.recording_id_of(key)) == key
    else:
        with pytest.raises(ValueError):
            LocalEncryptedStorage("/nonexistent-root")._path(key)


def test_write_read_size_exists_delete(tmp_path):
    storage = LocalEncryptedStorage(tmp_path / "blobs")
    key = storage.new_key(RID)
    assert not storage.exists(key)
    with storage.open_write(key) as f:
        f.write(b"ciphertext" * 1000)
    assert storage.exists(key) and storage.size(key) == 10000
    with storage.open_read(key) as f:
        assert f.seekable() and f.read() == b"ciphertext" * 1000
    path = tmp_path / "blobs" / key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (tmp_path / "blobs", path.parent, path.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # already gone: no error
    with pytest.raises(FileNotFoundError):
        storage.open_read(key)
    with pytest.raises(FileNotFoundError):
        storage.size(key)


def leftovers(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_exception_inside_open_write_leaves_nothing(tmp_path):
    storage = LocalEncryptedStorage(tmp_path)
    key = storage.new_key(RID)
    with pytest.raises(RuntimeError):
        with storage.open_write(key) as f:
            f.write(b"partial")
            raise RuntimeError("ingest failed")
    assert not storage.exists(key)
    assert leftovers(tmp_path) == []


def test_exception_while_overwriting_keeps_the_old_blob(tmp_path):
    storage = LocalEncryptedStorage(tmp_path)
    key = storage.new_key(RID)
    with storage.open_write(key) as f:
        f.write(b"old")
    with pytest.raises(KeyboardInterrupt):
        with storage.open_write(key) as f:
            f.write(b"new but incomplete")
            raise KeyboardInterrupt
    with storage.open_read(key) as f:
        assert f.read() == b"old"
    assert leftovers(tmp_path) == [key]


def test_blob_appears_only_when_complete(tmp_path):
    storage = LocalEncryptedStorage(tmp_path)
    key = storage.new_key(RID)
    with storage.open_write(key) as f:
        f.write(b"first half")
        assert not storage.exists(key)
        assert list(storage.iter_keys()) == []  # the temp file is not a key
        f.write(b" second half")
    with storage.open_read(key) as f:
        assert f.read() == b"first half second half"


def test_iter_keys_lists_stored_blobs_only(tmp_path):
    storage = LocalEncryptedStorage(tmp_path)
    assert list(LocalEncryptedStorage(tmp_path / "missing").iter_keys()) == []
    keys = set()
    for i in range(30):
        key = storage.new_key(f"recording-{i:04d}")
        with storage.open_write(key) as f:
            f.write(b"x")
        keys.add(key)
    # Foreign files are ignored: wrong shard, stray names, files at the top level.
    (tmp_path / "README").write_text("hi")
    some = next(iter(keys))
    a, b, _ = some.split("/")
    (tmp_path / a / b / "notes.txt").write_text("hi")
    (tmp_path / a / b / "recording-9999.cre").write_text("wrong shard")
    (tmp_path / a / b / ".recording-0000.0123456789abcdef.tmp").write_text("temp")
    assert set(storage.iter_keys()) == keys


def test_remove_stale_temp_files(tmp_path):
    storage = LocalEncryptedStorage(tmp_path)
    key = storage.new_key(RID)
    with storage.open_write(key) as f:
        f.write(b"x")
    directory = (tmp_path / key).parent
    stale = directory / f".{RID}.0123456789abcdef.tmp"
    fresh = directory / f".{RID}.fedcba9876543210.tmp"
    stale.write_bytes(b"ciphertext")
    fresh.write_bytes(b"ciphertext")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    assert storage.remove_stale_temp_files(max_age_seconds=24 * 3600) == 1
    assert not stale.exists() and fresh.exists() and storage.exists(key)


def test_encrypted_round_trip_through_storage(tmp_path):
    storage = LocalEncryptedStorage(tmp_path)
    key = storage.new_key(RID)
    data_key = generate_data_key()
    plain = os.urandom(300_000)
    with storage.open_write(key) as f:
        result = encrypt_stream(io.BytesIO(plain), f, data_key, RID)
    assert storage.size(key) == result.stored_size
    fileobj = storage.open_read(key)
    reader = DecryptingReader(fileobj, data_key, RID, storage.size(key))
    assert reader.read() == plain
    reader.close()
    assert fileobj.closed
    assert plain[:1000] not in (tmp_path / key).read_bytes()
