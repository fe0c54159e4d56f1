"""The bundle digest made on a second thread: the same SHA-256 as one pass, whatever the pieces."""
import hashlib
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callrec_plugin.digests import BackgroundSHA256


@settings(max_examples=50, deadline=None)
@given(pieces=st.lists(st.binary(max_size=5000), max_size=40))
def test_the_digest_is_sha256_of_the_pieces_passed_through_unchanged(pieces):
    hasher = BackgroundSHA256(depth=2)
    assert list(hasher.wrap(iter(pieces))) == pieces
    assert hasher.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_views_of_a_reused_buffer_are_copied_before_hashing():
    buffer = bytearray(b"a" * 4096)
    hasher = BackgroundSHA256(depth=4)
    out = []
    for piece in hasher.wrap(memoryview(buffer) for _ in range(3)):
        out.append(bytes(piece))
        buffer[:] = b"b" * 4096  # the producer reuses its buffer at once
    assert hasher.hexdigest() == hashlib.sha256(b"a" * 4096 + b"b" * 4096 * 2).hexdigest()


def test_the_thread_ends_when_the_producer_fails_or_never_starts():
    before = threading.active_count()

    def failing():
        yield b"x" * 10
        raise RuntimeError("a recording failed its integrity check")

    hasher = BackgroundSHA256()
    with pytest.raises(RuntimeError):
        list(hasher.wrap(failing()))
    hasher.hexdigest()
    never_started = BackgroundSHA256()
    never_started.wrap(iter([b"y"]))
    never_started.close()
    never_started.hexdigest()
    assert threading.active_count() == before
