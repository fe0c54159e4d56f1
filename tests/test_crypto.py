"""CRE1 format: round trips, random access, tamper detection, memory and decryption counts."""
import hashlib
import io
import math
import random
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callrec_plugin.crypto import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    DecryptingReader,
    FormatError,
    TamperedError,
    TooLargeError,
    encrypt_stream,
    generate_data_key,
    plaintext_length_for,
    stored_length_for,
)

S = SEGMENT_SIZE
CT = S + TAG_SIZE
KEY = bytes(range(32))
RID = "rec_0001-abcdef"
MiB = 1024 * 1024

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def payload(n, seed=0):
    return random.Random(seed).randbytes(n)


def encrypt(data, key=KEY, rid=RID):
    out = io.BytesIO()
    result = encrypt_stream(io.BytesIO(data), out, key, rid)
    blob = out.getvalue()
    assert result.stored_size == len(blob)
    return blob


def open_reader(blob, key=KEY, rid=RID):
    return DecryptingReader(io.BytesIO(blob), key, rid, len(blob))


def read_until_error(blob, key=KEY, rid=RID, use_iter=False):
    """Read the whole blob, expecting TamperedError; return the plaintext handed out before it."""
    got = bytearray()
    with pytest.raises(TamperedError):
        reader = open_reader(blob, key, rid)
        chunks = reader if use_iter else reader.read_range(0)
        for chunk in chunks:
            got += chunk
    return bytes(got)


def segments(blob):
    body = blob[HEADER_SIZE:]
    return [body[i : i + CT] for i in range(0, len(body), CT)]


# Sizes around segment boundaries, plus anything up to 4 MiB.
BOUNDARY_SIZES = sorted(
    {0, 1, 2}
    | {k * S + d for k in (1, 2, 3, 16, 64) for d in (-1, 0, 1)}
    | {4 * MiB - 1, 4 * MiB, 4 * MiB + 1}
)
sizes = st.one_of(st.sampled_from(BOUNDARY_SIZES), st.integers(0, 4 * MiB))


# -- round trip ------------------------------------------------------------------------------------


@FAST
@given(size=sizes, seed=st.integers(0, 2**32), data=st.data())
def test_round_trip_and_random_ranges(size, seed, data):
    plain = payload(size, seed)
    out = io.BytesIO()
    result = encrypt_stream(io.BytesIO(plain), out, KEY, RID)
    blob = out.getvalue()
    assert result.plaintext_size == size
    assert result.stored_size == len(blob) == stored_length_for(size)
    assert result.sha256 == hashlib.sha256(plain).hexdigest()
    assert plaintext_length_for(len(blob)) == size
    assert len(segments(blob)) == max(1, math.ceil(size / S))

    reader = open_reader(blob)
    assert reader.length == size
    assert b"".join(reader.read_range(0)) == plain
    for _ in range(5):
        start = data.draw(st.integers(0, size + 10), label="start")
        stop = data.draw(st.integers(0, size + 10), label="stop")
        fresh = open_reader(blob)
        assert b"".join(fresh.read_range(start, stop)) == plain[start:stop]
        assert b"".join(reader.read_range(start, stop)) == plain[start:stop]


file_ops = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(-1, 3 * S)),
        st.tuples(st.just("seek0"), st.integers(0, 6 * S)),
        st.tuples(st.just("seek1"), st.integers(-3 * S, 3 * S)),
        st.tuples(st.just("seek2"), st.integers(-6 * S, S)),
        st.tuples(st.just("next"), st.just(0)),
        st.tuples(st.just("readinto"), st.integers(0, 2 * S)),
    ),
    max_size=25,
)


@FAST
@given(size=st.sampled_from([0, 1, S - 1, S, S + 1, 3 * S, 5 * S + 77]), ops=file_ops)
def test_file_like_api_matches_bytesio(size, ops):
    plain = payload(size, size)
    reader = open_reader(encrypt(plain))
    model = io.BytesIO(plain)
    for op, arg in ops:
        if op == "read":
            assert reader.read(arg) == model.read(arg)
        elif op == "readinto":
            a, b = bytearray(arg), bytearray(arg)
            assert reader.readinto(a) == model.readinto(b)
            assert a == b
        elif op == "next":
            pos = model.tell()
            expected = model.read(S - pos % S)
            if expected:
                assert next(reader) == expected
            else:
                with pytest.raises(StopIteration):
                    next(reader)
        else:
            whence = int(op[-1])
            target = {0: arg, 1: model.tell() + arg, 2: size + arg}[whence]
            if target < 0:
                with pytest.raises(ValueError):
                    reader.seek(arg, whence)
                continue
            assert reader.seek(arg, whence) == model.seek(arg, whence)
        assert reader.tell() == model.tell()
    assert reader.seekable() and reader.readable()


def test_iteration_yields_whole_segments_and_close_closes_file():
    plain = payload(3 * S + 5)
    blob = encrypt(plain)
    f = io.BytesIO(blob)
    with DecryptingReader(f, KEY, RID, len(blob)) as reader:
        chunks = list(reader)
        assert [len(c) for c in chunks] == [S, S, S, 5]
        assert b"".join(chunks) == plain
        reader.seek(S + 10)
        assert next(reader) == plain[S + 10 : 2 * S]
    assert reader.closed and f.closed
    with pytest.raises(ValueError):
        reader.read(1)


def test_each_encryption_uses_fresh_salt_and_nonce_prefix():
    plain = payload(1000)
    a, b = encrypt(plain), encrypt(plain)
    assert a[:9] == b[:9] == b"CRE1" + bytes([1]) + struct.pack(">I", S)
    assert a[9:41] != b[9:41] and a[41:48] != b[41:48] and a[48:] != b[48:]


def test_data_keys_are_random_32_bytes():
    keys = {generate_data_key() for _ in range(50)}
    assert len(keys) == 50 and all(len(k) == 32 for k in keys)


class ShortReads:
    """A source that hands out 1..999 bytes per read() and has no readinto."""

    def __init__(self, data, seed):
        self.data, self.pos, self.rng = data, 0, random.Random(seed)

    def read(self, n):
        n = min(n, self.rng.randint(1, 999))
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


@settings(max_examples=15, deadline=None)
@given(size=st.sampled_from([0, 5, S - 1, S, S + 1, 2 * S, 2 * S + 3]), seed=st.integers(0, 99))
def test_short_reads_from_source(size, seed):
    plain = payload(size, seed)
    out = io.BytesIO()
    encrypt_stream(ShortReads(plain, seed), out, KEY, RID)
    assert open_reader(out.getvalue()).read() == plain


# -- size limit ------------------------------------------------------------------------------------


class CountingSource:
    def __init__(self, total):
        self.remaining = total
        self.consumed = 0

    def readinto(self, buf):
        n = min(len(buf), self.remaining)
        buf[:n] = b"\x5a" * n
        self.remaining -= n
        self.consumed += n
        return n


@pytest.mark.parametrize("limit", [0, 1, S - 1, S, S + 1, 3 * S + 17])
def test_max_bytes(limit):
    exact = CountingSource(limit)
    result = encrypt_stream(exact, io.BytesIO(), KEY, RID, max_bytes=limit)
    assert result.plaintext_size == limit

    big = CountingSource(100 * MiB)
    with pytest.raises(TooLargeError):
        encrypt_stream(big, io.BytesIO(), KEY, RID, max_bytes=limit)
    assert big.consumed == limit + 1  # stopped at the first byte beyond the limit


# -- memory ----------------------------------------------------------------------------------------


class LazySource:
    """Generates `total` bytes on demand through read(), without holding them."""

    def __init__(self, total):
        self.remaining = total
        self.block = memoryview(bytes(range(256)) * 256)

    def read(self, n):
        n = min(n, self.remaining, len(self.block))
        self.remaining -= n
        return self.block[:n].tobytes()


class LazyReadintoSource(LazySource):
    def readinto(self, buf):
        n = min(len(buf), self.remaining, len(self.block))
        buf[:n] = self.block[:n]
        self.remaining -= n
        return n


class Sink:
    def __init__(self):
        self.size = 0

    def write(self, b):
        self.size += len(b)
        return len(b)


@pytest.mark.parametrize("source", [LazyReadintoSource, LazySource])
def test_encrypt_stream_memory_is_flat(source):
    total = 50 * MiB + 123
    src, sink = source(total), Sink()
    tracemalloc.start()
    try:
        result = encrypt_stream(src, sink, KEY, RID)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.plaintext_size == total
    assert sink.size == result.stored_size == stored_length_for(total)
    print(f"{source.__name__}: tracemalloc peak {peak} bytes for {total} bytes")
    assert peak < 1 * MiB, f"peak traced memory {peak} bytes"


# -- decryption counts -----------------------------------------------------------------------------

COUNT_PLAIN = payload(20 * S + 1234, 7)
COUNT_BLOB = encrypt(COUNT_PLAIN)


@settings(max_examples=100, deadline=None)
@given(start=st.integers(0, len(COUNT_PLAIN)), length=st.integers(0, 5 * S))
def test_segments_decrypted_bound(start, length):
    reader = open_reader(COUNT_BLOB)
    got = b"".join(reader.read_range(start, start + length))
    assert got == COUNT_PLAIN[start : start + length]
    assert reader.segments_decrypted <= math.ceil(length / S) + 2


@settings(max_examples=50, deadline=None)
@given(start=st.integers(0, len(COUNT_PLAIN)))
def test_http_range_style_read_counts(start):
    # Werkzeug's _RangeWrapper: seek(start), then iterate to the end.
    reader = open_reader(COUNT_BLOB)
    reader.seek(start)
    got = b"".join(reader)
    assert got == COUNT_PLAIN[start:]
    assert reader.segments_decrypted <= math.ceil((len(COUNT_PLAIN) - start) / S) + 2


@pytest.mark.parametrize("chunk", [1000, 8192, S, S + 1])
def test_sequential_small_reads_decrypt_each_segment_once(chunk):
    reader = open_reader(COUNT_BLOB)
    parts = []
    while True:
        part = reader.read(chunk)
        if not part:
            break
        parts.append(part)
    assert b"".join(parts) == COUNT_PLAIN
    assert reader.segments_decrypted == len(segments(COUNT_BLOB))


# -- tampering -------------------------------------------------------------------------------------

TAMPER_PLAIN = payload(3 * S + 999, 3)
TAMPER_BLOB = encrypt(TAMPER_PLAIN)
N_SEG = 4


def assert_refused(blob, bad_segment=None, **kw):
    """Reading fails; at most the plaintext of segments before `bad_segment` was handed out."""
    for use_iter in (False, True):
        got = read_until_error(blob, use_iter=use_iter, **kw)
        assert got == TAMPER_PLAIN[: len(got)]
        limit = 0 if bad_segment is None else bad_segment * S
        assert len(got) <= limit


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(0, len(TAMPER_BLOB) - 1), bit=st.integers(0, 7))
def test_any_bit_flip_is_detected(pos, bit):
    blob = bytearray(TAMPER_BLOB)
    blob[pos] ^= 1 << bit
    bad = None if pos < HEADER_SIZE else (pos - HEADER_SIZE) // CT
    if bad == N_SEG - 1:
        bad = None  # the final segment is verified before anything is returned
    assert_refused(bytes(blob), bad)


@pytest.mark.parametrize("index", range(N_SEG))
def test_tag_flip_in_each_segment(index):
    end = HEADER_SIZE + min((index + 1) * CT, len(TAMPER_BLOB) - HEADER_SIZE)
    blob = bytearray(TAMPER_BLOB)
    blob[end - 1] ^= 0x80
    assert_refused(bytes(blob), index if index < N_SEG - 1 else None)
    # Segments before the bad one are still individually readable; the bad one never is.
    reader = open_reader(bytes(blob))
    if index < N_SEG - 1:
        assert b"".join(reader.read_range(0, index * S)) == TAMPER_PLAIN[: index * S]
        with pytest.raises(TamperedError, match=f"segment {index} "):
            b"".join(reader.read_range(index * S, index * S + 1))
        with pytest.raises(TamperedError):  # poisoned: nothing more, not even earlier segments
            reader.read_range(0, 1).__next__()
    else:
        with pytest.raises(TamperedError, match=f"segment {index} "):
            reader.length


@pytest.mark.parametrize("pos", [0, 3, 4, 5, 8, 9, 40, 41, 47])
def test_header_change_is_detected(pos):
    blob = bytearray(TAMPER_BLOB)
    blob[pos] ^= 0x01
    with pytest.raises(TamperedError):
        open_reader(bytes(blob)).length


def test_header_format_errors_are_clear():
    with pytest.raises(FormatError, match="magic"):
        open_reader(b"CRE2" + TAMPER_BLOB[4:])
    with pytest.raises(FormatError, match="version"):
        open_reader(TAMPER_BLOB[:4] + b"\x02" + TAMPER_BLOB[5:])
    with pytest.raises(FormatError, match="segment size"):
        open_reader(TAMPER_BLOB[:5] + struct.pack(">I", 4096) + TAMPER_BLOB[9:])
    with pytest.raises(FormatError):
        open_reader(TAMPER_BLOB[:20])
    with pytest.raises(FormatError):
        open_reader(b"")
    f = io.BytesIO(b"CRE2" + TAMPER_BLOB[4:])
    with pytest.raises(FormatError):
        DecryptingReader(f, KEY, RID, len(TAMPER_BLOB))
    assert f.closed  # the reader owns the file, even when it refuses it


def test_segment_swap_is_detected():
    segs = segments(TAMPER_BLOB)
    swapped = TAMPER_BLOB[:HEADER_SIZE] + segs[1] + segs[0] + b"".join(segs[2:])
    assert_refused(swapped, 0)
    reader = open_reader(swapped)
    assert reader.length == len(TAMPER_PLAIN)  # final segment untouched
    with pytest.raises(TamperedError, match="segment 0 "):
        reader.read(1)


@pytest.mark.parametrize("dropped", range(N_SEG))
def test_dropped_segment_is_detected(dropped):
    segs = segments(TAMPER_BLOB)
    del segs[dropped]
    assert_refused(TAMPER_BLOB[:HEADER_SIZE] + b"".join(segs), dropped)


@pytest.mark.parametrize(
    "cut",
    [1, 15, 16, 17, 998, 999 + TAG_SIZE, 999 + TAG_SIZE + 1, 999 + TAG_SIZE + CT, 2 * CT + 999 + TAG_SIZE],
)
def test_truncation_is_detected_before_any_plaintext(cut):
    # 999 + TAG_SIZE (+ k*CT) cuts exactly at a segment boundary: the size looks valid.
    blob = TAMPER_BLOB[:-cut]
    assert_refused(blob, None)


@pytest.mark.parametrize("size", [S, 2 * S, 3 * S])
def test_truncation_at_boundary_of_exact_multiple(size):
    plain = payload(size, 11)
    blob = encrypt(plain)
    for k in range(1, size // S):
        with pytest.raises(TamperedError):
            open_reader(blob[: HEADER_SIZE + k * CT]).length


def test_truncation_to_header_only_and_to_empty_segment():
    with pytest.raises(FormatError):
        open_reader(TAMPER_BLOB[:HEADER_SIZE])
    with pytest.raises(TamperedError):
        open_reader(TAMPER_BLOB[: HEADER_SIZE + TAG_SIZE]).length


def test_stated_size_larger_than_file_is_detected():
    reader = DecryptingReader(io.BytesIO(TAMPER_BLOB), KEY, RID, len(TAMPER_BLOB) + CT)
    with pytest.raises(TamperedError):
        reader.length


@pytest.mark.parametrize("extra", [b"\x00", b"x" * 15, b"y" * 16, b"z" * 17, b"w" * CT])
def test_appended_bytes_are_detected(extra):
    assert_refused(TAMPER_BLOB + extra, None)


def test_appended_copy_of_last_segment_is_detected():
    segs = segments(TAMPER_BLOB)
    assert_refused(TAMPER_BLOB + segs[-1], None)


def test_empty_recording_round_trip_and_tamper():
    blob = encrypt(b"")
    assert len(blob) == HEADER_SIZE + TAG_SIZE
    reader = open_reader(blob)
    assert reader.length == 0 and reader.read() == b"" and list(reader) == []
    with pytest.raises(TamperedError):
        open_reader(blob + encrypt(b"")[HEADER_SIZE:]).length
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    with pytest.raises(TamperedError):
        open_reader(bytes(flipped)).length


def test_blob_moved_to_another_recording_is_refused():
    assert_refused(TAMPER_BLOB, None, rid="rec_0002-abcdef")


def test_wrong_data_key_is_refused():
    assert_refused(TAMPER_BLOB, None, key=bytes(32))


def test_segment_from_another_file_is_refused():
    other = encrypt(payload(3 * S + 999, 4))
    mixed = TAMPER_BLOB[:HEADER_SIZE] + segments(other)[0] + b"".join(segments(TAMPER_BLOB)[1:])
    assert_refused(mixed, 0)


def test_size_helpers_reject_impossible_sizes():
    for bad in [0, HEADER_SIZE, HEADER_SIZE + 15, HEADER_SIZE + CT + 1, HEADER_SIZE + CT + 16]:
        with pytest.raises(FormatError):
            plaintext_length_for(bad)
    for n in BOUNDARY_SIZES:
        assert plaintext_length_for(stored_length_for(n)) == n


def test_bad_arguments():
    with pytest.raises(ValueError):
        encrypt_stream(io.BytesIO(b""), io.BytesIO(), b"short", RID)
    with pytest.raises(TypeError):
        encrypt_stream(io.BytesIO(b""), io.BytesIO(), KEY, b"bytes-id")
    with pytest.raises(ValueError):
        list(open_reader(TAMPER_BLOB).read_range(-1, 5))


# -- Werkzeug can serve byte ranges from it ----------------------------------------------------------


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize(
    "range_header,start,stop",
    [
        (None, 0, None),
        ("bytes=0-", 0, None),
        ("bytes=100000-", 100000, None),
        (f"bytes={2 * S}-{2 * S + 9}", 2 * S, 2 * S + 10),
        ("bytes=-500", len(TAMPER_PLAIN) - 500, None),
    ],
)
def test_served_through_werkzeug_make_conditional(wrap, range_header, start, stop):
    werkzeug = pytest.importorskip("werkzeug")
    from werkzeug.test import Client
    from werkzeug.wrappers import Response
    from werkzeug.wsgi import wrap_file

    readers = []

    def app(environ, start_response):
        reader = open_reader(TAMPER_BLOB)
        readers.append(reader)
        body = wrap_file(environ, reader) if wrap else reader
        resp = Response(body, mimetype="audio/mpeg", direct_passthrough=True)
        resp.make_conditional(environ, accept_ranges=True, complete_length=reader.length)
        return resp(environ, start_response)

    headers = {"Range": range_header} if range_header else {}
    resp = Client(app).get("/", headers=headers)
    expected = TAMPER_PLAIN[start:stop]
    assert resp.status_code == (206 if range_header else 200)
    assert resp.get_data() == expected
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert readers[0].segments_decrypted <= math.ceil(len(expected) / S) + 2
    resp.close()
    assert readers[0].closed
    del werkzeug
