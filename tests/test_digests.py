"""The digests made on a second thread: the same SHA-256s as one pass, of the whole stream and of each
part, whatever the pieces and however they are batched."""
import hashlib
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from callrec_plugin.digests import BackgroundDigests

# A stream: parts in order, each a list of pieces; a part named None is bytes outside any part (headers).
streams = st.lists(st.tuples(st.sampled_from([None, "a", "b", "c"]), st.lists(st.binary(max_size=5000), max_size=6)),
                   max_size=12)


def _distinct_parts(stream):
    """Each named part once (as a ZIP entry is), keeping None runs as they are."""
    seen, out = set(), []
    for part, pieces in stream:
        if part is not None and part in seen:
            continue
        seen.add(part)
        out.append((part, pieces))
    return out


@settings(max_examples=80, deadline=None)
@given(stream=streams.map(_distinct_parts), batch=st.sampled_from([1, 7, 4096, 1 << 20]),
       depth=st.sampled_from([1, 2, 8]))
def test_the_digests_are_sha256_of_the_whole_stream_and_of_each_part(stream, batch, depth):
    digests = BackgroundDigests(depth=depth, batch=batch)
    try:
        for part, pieces in stream:
            for piece in pieces:
                digests.feed(piece, part)
            if part is not None:
                digests.end_part(part)
        ended = digests.part_digests()
        whole = digests.hexdigest()
    finally:
        digests.close()
    assert whole == hashlib.sha256(b"".join(b"".join(pieces) for _, pieces in stream)).hexdigest()
    assert ended == {part: hashlib.sha256(b"".join(pieces)).hexdigest() for part, pieces in stream if part is not None}


def test_a_part_is_ready_while_the_stream_goes_on():
    digests = BackgroundDigests(batch=1 << 20)
    digests.feed(b"header")
    digests.feed(b"x" * 70_000, "calls/one.wav")
    digests.end_part("calls/one.wav")
    assert digests.part_digests() == {"calls/one.wav": hashlib.sha256(b"x" * 70_000).hexdigest()}
    digests.feed(b"trailer")
    assert digests.hexdigest() == hashlib.sha256(b"header" + b"x" * 70_000 + b"trailer").hexdigest()


def test_views_of_a_reused_buffer_are_copied_before_hashing():
    buffer = bytearray(b"a" * 4096)
    digests = BackgroundDigests(depth=4)
    for _ in range(3):
        digests.feed(memoryview(buffer), "part")
        buffer[:] = b"b" * 4096  # the producer reuses its buffer at once
    digests.end_part("part")
    expected = hashlib.sha256(b"a" * 4096 + b"b" * 4096 * 2).hexdigest()
    assert digests.part_digests() == {"part": expected}
    assert digests.hexdigest() == expected


def test_the_thread_ends_when_closed_whether_or_not_anything_was_fed():
    before = threading.active_count()
    fed = BackgroundDigests()
    fed.feed(b"x" * 10, "part")  # a producer that failed half-way: the build closes in a finally
    fed.close()
    never_fed = BackgroundDigests()
    never_fed.close()
    never_fed.close()  # idempotent
    fed.hexdigest(), never_fed.hexdigest()
    assert threading.active_count() == before
