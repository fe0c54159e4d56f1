"""Silencing is exact: every sample (or GSM frame) a range touches is the codec's silence, every other
byte of the file is the original's, whatever the ranges (edges, file start and end, overlapping,
adjacent) and however the stream is read. MP3 and Ogg are refused with what to change on the PBX."""
import io
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from callrec_plugin import silencing
from tests import silencing_samples as samples
from tests.audio_samples import wav_bytes

SAMPLES = samples.all_samples()


def silence(data, intervals, read_size=None):
    source = io.BytesIO(data)
    plan = silencing.plan(source, silencing.parse_intervals(intervals))
    reader = silencing.silenced(source, plan)
    if read_size is None:
        return reader.read(), plan
    out = bytearray()
    while chunk := reader.read(read_size):
        out += chunk
    return bytes(out), plan


def _overlaps(unit, rate, intervals):
    """Unit ``unit`` lasts [unit/rate, (unit+1)/rate): does any interval overlap it?"""
    lo, hi = Fraction(unit, rate), Fraction(unit + 1, rate)
    return any(Fraction(str(s)) < hi and Fraction(str(e)) > lo for s, e in intervals)


def check_exact(sample, original, result, intervals):
    """The property the issue asks for, worked out from the format's definition."""
    assert len(result) == len(original)
    start, size = sample.data_start, sample.unit_bytes
    assert result[:start] == original[:start], "the header changed"
    if sample.kind == "wav49":
        blocks = (len(original) - start) // size
        for block in range(blocks):
            at = start + block * size
            got, was = int.from_bytes(result[at:at + size], "little"), int.from_bytes(original[at:at + size], "little")
            quiet = int.from_bytes(sample.silent_unit, "little")
            for half, mask in ((0, (1 << 260) - 1), (1, ((1 << 520) - 1) ^ ((1 << 260) - 1))):
                expected = quiet if _overlaps(2 * block + half, sample.units_per_second, intervals) else was
                assert got & mask == expected & mask, (sample.name, block, half)
        tail = start + blocks * size
    else:
        units = (len(original) - start) // size
        for unit in range(units):
            at = start + unit * size
            inside = _overlaps(unit, sample.units_per_second, intervals)
            expected = sample.silent_unit if inside else original[at:at + size]
            assert result[at:at + size] == expected, (sample.name, unit, inside)
        tail = start + units * size
    assert result[tail:] == original[tail:] or intervals, "bytes after the audio changed"


times = st.decimals(min_value=0, max_value="0.6", places=4).map(float)
interval_lists = st.lists(st.tuples(times, times).filter(lambda p: p[0] != p[1]).map(sorted).map(tuple),
                          max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=st.sampled_from(SAMPLES), intervals=interval_lists, read_size=st.one_of(st.none(), st.integers(1, 700)))
def test_every_unit_inside_is_silence_and_every_byte_outside_is_unchanged(sample, intervals, read_size):
    result, _ = silence(sample.data, [list(i) for i in intervals], read_size)
    check_exact(sample, sample.data, result, intervals)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
@pytest.mark.parametrize("intervals", [
    [(0, 0.1)],  # at the file's start
    [(0.4, 0.5)],  # to the file's end
    [(0.4, 99)],  # past the file's end: clamped
    [(0.1, 0.2), (0.2, 0.3)],  # adjacent
    [(0.1, 0.25), (0.2, 0.3)],  # overlapping
    [(0.0125, 0.0375)],  # edges inside units (mid GSM frame, mid WAV49 block)
    [(0.02, 0.04)],  # edges exactly on 20 ms frame boundaries
    [(0.0, 99)],  # everything
], ids=["start", "end", "past-end", "adjacent", "overlapping", "mid-unit", "on-frame-edges", "all"])
def test_range_edges(sample, intervals):
    result, plan = silence(sample.data, [list(i) for i in intervals])
    check_exact(sample, sample.data, result, intervals)
    assert plan.ranges, "something was silenced"


def test_sample_accurate_edges_for_pcm():
    sample = samples.pcm_wav(rate=8000)
    result, plan = silence(sample.data, [[0.1, 0.2]])
    assert plan.ranges == ((800, 1600),)  # 0.1 s is sample 800 exactly, not 801 (no float rounding)
    data = result[sample.data_start:]
    assert data[799 * 2:800 * 2] == sample.data[sample.data_start + 1598:sample.data_start + 1600]
    assert data[800 * 2:1600 * 2] == bytes(1600)
    assert data[1600 * 2:1601 * 2] == sample.data[sample.data_start + 3200:sample.data_start + 3202]


def test_gsm_and_wav49_round_outward_to_whole_frames():
    gsm, wav = samples.raw_gsm(), samples.wav49()
    assert silence(gsm.data, [[0.021, 0.039]])[1].seconds == ((0.02, 0.04),)
    assert silence(gsm.data, [[0.019, 0.041]])[1].seconds == ((0.0, 0.06),)
    result, plan = silence(wav.data, [[0.021, 0.039]])  # the second frame of block 0 only
    assert plan.seconds == ((0.02, 0.04),)
    block = result[60:125]
    assert block[:32] == wav.data[60:92] and block[32] & 0x0F == wav.data[92] & 0x0F
    assert block[32] & 0xF0 == silencing.MSGSM_SILENCE[32] & 0xF0 and block[33:] == silencing.MSGSM_SILENCE[33:]
    assert result[125:] == wav.data[125:]


def test_msgsm_silence_is_two_silent_frames_packed_lsb_first():
    """Asterisk's 65-byte silent block holds two silent frames, the second starting at bit 260 (in
    the high nibble of byte 32): the halves agree on every parameter (LARs, lags, gains, block
    maxima) and differ only in the code of the very last pulse, bit 257."""
    whole = int.from_bytes(silencing.MSGSM_SILENCE, "little")
    first, second = whole & ((1 << 260) - 1), whole >> 260
    assert first ^ second == 1 << 257


def test_the_original_samples_never_appear_in_the_output():
    sample = samples.pcm_wav(seconds=1.0)
    secret = sample.data[sample.data_start + 4000:sample.data_start + 6000]  # 0.25 s to 0.375 s
    result, _ = silence(sample.data, [[0.25, 0.375]], read_size=333)
    assert all(result.find(secret[i:i + 16]) == -1 for i in range(0, len(secret) - 16, 16))


def test_real_tone_silenced_sounds_silent():
    data = wav_bytes(seconds=1.0)
    result, _ = silence(data, [[0.5, 1.0]])
    assert result[44 + 8000:] == bytes(8000) and result[:44 + 8000] == data[:44 + 8000]


def test_no_intervals_means_the_same_file_object():
    source = io.BytesIO(samples.pcm_wav().data)
    assert silencing.silenced(source, silencing.plan(source, [])) is source


def test_mp3_is_refused_with_what_to_change_on_the_pbx():
    frame = bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(413)  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
    with pytest.raises(silencing.SilencingRefused) as refused:
        silencing.plan(io.BytesIO(frame * 20), [(Fraction(0), Fraction(1))])
    assert refused.value.reason.startswith("MP3 recordings cannot be silenced exactly")
    assert "audible remnants" in refused.value.reason
    assert "Call Recording Format = wav" in refused.value.reason


def test_ogg_is_refused_with_what_to_change_on_the_pbx():
    with pytest.raises(silencing.SilencingRefused) as refused:
        silencing.layout_of(io.BytesIO(_ogg_opus()))
    assert refused.value.reason.startswith("Ogg (Vorbis, Opus, Speex) recordings cannot be silenced exactly")
    assert "record in WAV" in refused.value.reason


def _ogg_opus():
    import struct

    def crc(data):  # Ogg's CRC-32 (polynomial 0x04C11DB7, no reflection): not zlib's
        value = 0
        for byte in data:
            value ^= byte << 24
            for _ in range(8):
                value = ((value << 1) ^ 0x04C11DB7) if value & 0x80000000 else value << 1
                value &= 0xFFFFFFFF
        return value

    def page(payload, granule, seq, flags):
        header = (b"OggS" + bytes([0, flags]) + struct.pack("<qII", granule, 1, seq) + b"\x00\x00\x00\x00"
                  + bytes([1, len(payload)]))
        checksum = crc(header + payload)
        return header[:22] + struct.pack("<I", checksum) + header[26:] + payload

    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 0) + struct.pack("<I", 0)
    return page(head, 0, 0, 2) + page(tags, 0, 1, 0) + page(b"\xf8\xff\xfe", 48000 + 312, 2, 4)


@pytest.mark.parametrize("raw, message", [
    ("nope", "must be a list of"),
    ([[1]], "pair"),
    ([[-1, 2]], "negative"),
    ([[2, 2]], "must end after it starts"),
    ([["x", 2]], "number of seconds"),
    ([[True, 2]], "number of seconds"),
    ([[0, "nan"]], "finite"),
])
def test_bad_intervals_say_why(raw, message):
    with pytest.raises(ValueError, match=message):
        silencing.parse_intervals(raw)


def test_a_wav_whose_header_was_never_finalised_is_silenced_to_its_end():
    """A recorder that crashed leaves data size 0xFFFFFFFF: the audio runs to the end of the file."""
    sample = samples.pcm_wav(seconds=0.5)
    data = bytearray(sample.data)
    at = data.index(b"data") + 4
    data[at:at + 4] = b"\xff\xff\xff\xff"
    result, plan = silence(bytes(data), [[0.25, 99]])
    assert result[:sample.data_start + 4000] == bytes(data[:sample.data_start + 4000])
    assert result[sample.data_start + 4000:] == bytes(len(data) - sample.data_start - 4000)
