"""The storage contract, run against every backend: the encrypted folder and S3-compatible object
storage (moto's standalone S3 server on 127.0.0.1, over HTTP, started here)."""
import io
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callrec_plugin.crypto import HEADER_SIZE, SEGMENT_SIZE, TAG_SIZE, DecryptingReader, encrypt_stream, generate_data_key
from callrec_plugin.storage import LocalEncryptedStorage
from callrec_plugin.storage_s3 import MIN_PART_SIZE, S3EncryptedStorage
from tests.s3_server import start_s3_server

RID = "rec_0001-abcdef"
CT_SEGMENT = SEGMENT_SIZE + TAG_SIZE


@pytest.fixture(scope="module")
def s3_server():
    server, stop = start_s3_server()
    yield server
    stop()


@pytest.fixture(params=["folder", "s3"])
def storage(request, tmp_path):
    if request.param == "folder":
        return LocalEncryptedStorage(tmp_path / "blobs")
    server = request.getfixturevalue("s3_server")
    return S3EncryptedStorage(server.client(), server.new_bucket(), prefix="callrec/", part_size=MIN_PART_SIZE)


def put(storage, key, data):
    with storage.open_write(key) as f:
        f.write(data)


def test_write_read_size_exists_delete(storage):
    key = storage.new_key(RID)
    assert not storage.exists(key)
    put(storage, key, b"ciphertext" * 1000)
    assert storage.exists(key) and storage.size(key) == 10000
    with storage.open_read(key) as f:
        assert f.seekable() and f.read() == b"ciphertext" * 1000
        f.seek(9990)
        assert f.read(100) == b"ciphertext"
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # already gone: no error
    with pytest.raises(FileNotFoundError):
        storage.open_read(key)
    with pytest.raises(FileNotFoundError):
        storage.size(key)
    assert storage.modified_at(key) is None


def test_empty_blob(storage):
    key = storage.new_key(RID)
    put(storage, key, b"")
    assert storage.exists(key) and storage.size(key) == 0
    with storage.open_read(key) as f:
        assert f.read() == b""


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "ab/cd/x.cre", "", None, b"ab/cd/x.cre"])
def test_every_method_refuses_foreign_keys(storage, key):
    for call in (lambda: storage.open_write(key).__enter__(), lambda: storage.open_read(key),
                 lambda: storage.size(key), lambda: storage.exists(key), lambda: storage.delete(key),
                 lambda: storage.modified_at(key)):
        with pytest.raises(ValueError):
            call()
    assert list(storage.iter_keys()) == []


def test_an_exception_inside_open_write_stores_nothing(storage):
    key = storage.new_key(RID)
    with pytest.raises(RuntimeError):
        with storage.open_write(key) as f:
            f.write(os.urandom(MIN_PART_SIZE + 1000))  # past one part: an upload was started
            raise RuntimeError("ingest failed")
    assert not storage.exists(key)
    assert list(storage.iter_keys()) == []
    assert storage.remove_stale_temp_files(max_age_seconds=0) == 0  # nothing was left half-written


def test_an_exception_while_overwriting_keeps_the_old_blob(storage):
    key = storage.new_key(RID)
    put(storage, key, b"old")
    with pytest.raises(KeyboardInterrupt):
        with storage.open_write(key) as f:
            f.write(b"new but incomplete")
            raise KeyboardInterrupt
    with storage.open_read(key) as f:
        assert f.read() == b"old"


def test_a_blob_appears_only_when_complete(storage):
    key = storage.new_key(RID)
    data = os.urandom(2 * MIN_PART_SIZE + 12345)  # three parts on S3
    with storage.open_write(key) as f:
        for start in range(0, len(data), 256 * 1024):
            f.write(memoryview(data)[start:start + 256 * 1024])
            assert not storage.exists(key)
        assert list(storage.iter_keys()) == []
    assert storage.size(key) == len(data)
    with storage.open_read(key) as f:
        assert f.read() == data


def test_iter_keys_lists_stored_blobs_only(storage):
    keys = {storage.new_key(f"recording-{i:04d}") for i in range(30)}
    for key in keys:
        put(storage, key, b"x")
    if isinstance(storage, S3EncryptedStorage):  # foreign objects beside and inside the prefix
        storage.client.put_object(Bucket=storage.bucket, Key="README", Body=b"hi")
        storage.client.put_object(Bucket=storage.bucket, Key="callrec/notes.txt", Body=b"hi")
        storage.client.put_object(Bucket=storage.bucket, Key="callrec/00/00/recording-9999.cre", Body=b"x")
    else:
        with open(os.path.join(storage.root, "README"), "w") as f:
            f.write("hi")
    assert set(storage.iter_keys()) == keys


def test_modified_at_is_the_write_time(storage):
    key = storage.new_key(RID)
    put(storage, key, b"x")
    assert abs(storage.modified_at(key) - time.time()) < 120


def test_stale_half_written_blobs_are_removed(storage):
    key = storage.new_key(RID)
    put(storage, key, b"kept")
    if isinstance(storage, S3EncryptedStorage):  # a writer killed mid-upload leaves an open upload
        storage.client.create_multipart_upload(Bucket=storage.bucket, Key=storage.prefix + key)
    else:
        stale = os.path.join(storage.root, *key.split("/")[:2], f".{RID}.0123456789abcdef.tmp")
        with open(stale, "wb") as f:
            f.write(b"partial")
        old = time.time() - 3600
        os.utime(stale, (old, old))
    # moto reports every upload as initiated on 2010-11-10, so only a real service shows a young one kept.
    if not (isinstance(storage, S3EncryptedStorage) and not os.environ.get("CALLREC_TEST_S3_ENDPOINT")):
        assert storage.remove_stale_temp_files(max_age_seconds=24 * 3600) == 0  # young: kept
    time.sleep(1.1)
    assert storage.remove_stale_temp_files(max_age_seconds=1) == 1
    assert storage.remove_stale_temp_files(max_age_seconds=1) == 0
    assert storage.exists(key)


def test_a_dead_writers_leftovers_for_one_key_are_removed(storage):
    key, other = storage.new_key(RID), storage.new_key("rec_0002-abcdef")
    put(storage, key, b"kept")
    for k in (key, other):  # a writer of each key was killed mid-write
        if isinstance(storage, S3EncryptedStorage):
            storage.client.create_multipart_upload(Bucket=storage.bucket, Key=storage.prefix + k)
        else:
            directory = os.path.join(storage.root, *k.split("/")[:2])
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, f".{storage.recording_id_of(k)}.0123456789abcdef.tmp"), "wb") as f:
                f.write(b"partial")
    assert storage.remove_temp_files(key) == 1
    assert storage.remove_temp_files(key) == 0
    assert storage.exists(key) and storage.remove_stale_temp_files(max_age_seconds=0) == 1  # the other's


@pytest.fixture
def encrypted(storage):
    """(storage, key, data key, plaintext) of a 1 MiB + 100 byte CRE1 blob."""
    key = storage.new_key(RID)
    data_key = generate_data_key()
    plain = os.urandom(2**20 + 100)
    with storage.open_write(key) as f:
        result = encrypt_stream(io.BytesIO(plain), f, data_key, RID)
    assert storage.size(key) == result.stored_size
    return storage, key, data_key, plain


def open_reader(storage, key, data_key):
    blob = storage.open_read(key)
    return blob, DecryptingReader(blob, data_key, RID, getattr(blob, "stored_size", None) or storage.size(key))


def test_an_encrypted_round_trip(encrypted):
    storage, key, data_key, plain = encrypted
    blob, reader = open_reader(storage, key, data_key)
    assert reader.read() == plain
    reader.close()
    assert blob.closed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 2**20 + 99), length=st.integers(1, 3 * SEGMENT_SIZE))
def test_random_ranges_read_the_right_plaintext(encrypted, start, length):
    storage, key, data_key, plain = encrypted
    blob, reader = open_reader(storage, key, data_key)
    with reader:
        reader.seek(start)
        assert reader.read(length) == plain[start:start + length]


def test_a_64k_range_fetches_at_most_two_segments_from_s3(encrypted):
    storage, key, data_key, plain = encrypted
    if not isinstance(storage, S3EncryptedStorage):
        pytest.skip("counts ranged GETs")
    sent = []
    storage.client.meta.events.register("before-send.s3.GetObject", lambda request, **_: sent.append(
        request.headers["Range"].decode() if isinstance(request.headers["Range"], bytes) else request.headers["Range"]))
    for start in (0, 100_000, 7 * SEGMENT_SIZE - 5, 2**20 - SEGMENT_SIZE):
        sent.clear()
        blob, reader = open_reader(storage, key, data_key)
        with reader:
            assert reader.length == len(plain)  # the final segment is verified first
            reader.seek(start)
            assert reader.read(SEGMENT_SIZE) == plain[start:start + SEGMENT_SIZE]
        ranges = [tuple(int(n) for n in r[len("bytes="):].split("-")) for r in sent]
        header, final, *body = ranges
        assert header == (0, HEADER_SIZE - 1)
        assert final[0] == HEADER_SIZE + 16 * CT_SEGMENT  # the 17th (last) segment
        fetched = sum(last - first + 1 for first, last in body)
        assert fetched <= 2 * CT_SEGMENT, ranges
        assert all((first - HEADER_SIZE) % CT_SEGMENT == 0 for first, _ in body), "GETs start at segments"


def test_a_whole_file_read_uses_few_gets(encrypted):
    storage, key, data_key, plain = encrypted
    if not isinstance(storage, S3EncryptedStorage):
        pytest.skip("counts ranged GETs")
    blob, reader = open_reader(storage, key, data_key)
    with reader:
        assert b"".join(reader) == plain
    assert blob.gets <= 8  # 17 segments: header, final, then windows of 1, 1, 2, 4, 8, 16 segments


def test_missing_bucket_objects_and_s3_errors_are_not_hidden(s3_server):
    storage = S3EncryptedStorage(s3_server.client(), "callrec-no-such-bucket")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        put(storage, storage.new_key(RID), b"x")


def test_part_size_below_the_s3_minimum_is_refused(s3_server):
    with pytest.raises(ValueError):
        S3EncryptedStorage(s3_server.client(), "bucket", part_size=MIN_PART_SIZE - 1)


def test_the_app_selects_the_backend_from_config(app_config, s3_server):
    from callrec_plugin.playback import storage_backend
    from tests import hostapp

    app_config.update(s3_server.config(s3_server.new_bucket()))
    app = hostapp.create_app(app_config)
    with app.app_context():
        backend = storage_backend()
        assert isinstance(backend, S3EncryptedStorage) and storage_backend() is backend  # one client
        app.config["CALLREC_STORAGE_BACKEND"] = "folder"
        assert isinstance(storage_backend(), LocalEncryptedStorage)
        app.config["CALLREC_STORAGE_BACKEND"] = "ftp"
        with pytest.raises(ValueError):
            storage_backend()


def test_delete_many_removes_every_named_blob_and_only_those(storage):
    keys = [storage.new_key(f"rec_{n:04d}-abcdef") for n in range(5)]
    for key in keys:
        put(storage, key, b"x" * 10)
    counted = []
    storage.delete_many(keys[:3] + [storage.new_key("rec_gone-abcdef")], on_deleted=counted.append)
    assert [storage.exists(key) for key in keys] == [False, False, False, True, True]
    assert sum(counted) == 4  # the key already gone counts as done: it is


def test_delete_many_on_s3_names_up_to_a_thousand_keys_per_request(s3_server, monkeypatch):
    from callrec_plugin import storage_s3

    storage = S3EncryptedStorage(s3_server.client(), s3_server.new_bucket(), prefix="callrec/",
                                 part_size=MIN_PART_SIZE)
    monkeypatch.setattr(storage_s3, "DELETE_BATCH", 3)  # 7 keys: requests of 3, 3 and 1
    keys = [storage.new_key(f"rec_{n:04d}-abcdef") for n in range(7)]
    for key in keys:
        put(storage, key, b"y")
    requests = []
    many, single = storage.client.delete_objects, storage.client.delete_object
    monkeypatch.setattr(storage.client, "delete_objects",
                        lambda **params: requests.append(len(params["Delete"]["Objects"])) or many(**params))
    monkeypatch.setattr(storage.client, "delete_object", lambda **params: requests.append("single") or single(**params))
    storage.delete_many(keys)
    assert requests == [3, 3, 1]
    assert not any(storage.exists(key) for key in keys) and list(storage.iter_keys()) == []
