"""Pure ingest parsers: audio probe, phone numbers, FreePBX names, CDR CSV, request signing."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import math
import re
import struct
import wave

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callrec_plugin.ingest import audio, cdr, freepbx, numbers, signing
from callrec_plugin.ingest.audio import HEAD_BYTES, TAIL_BYTES, AudioInfo, UnsupportedAudio, probe
from callrec_plugin.ingest.cdr import read_cdr
from callrec_plugin.ingest.freepbx import MonitorFile, NotARecording, parse_name, walk_tree
from callrec_plugin.ingest.numbers import InvalidNumber, normalise
from callrec_plugin.ingest.signing import SignatureError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------------
# helpers: build audio bytes


def probe_bytes(data: bytes) -> AudioInfo:
    """Call probe the way the pipeline does: first/last 64 KiB and the size."""
    return probe(data[:HEAD_BYTES], len(data), data[-TAIL_BYTES:] if data else b"")


def make_wav(rate=8000, channels=1, width=2, frames=8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01" * (frames * channels * width))
    return buf.getvalue()


def chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_chunk(tag, channels, rate, byte_rate, align, bits, extra=b"") -> bytes:
    return chunk(b"fmt ", struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align, bits) + extra)


MP3_FRAME_HEADER = bytes.fromhex("FFFB9064")  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, joint stereo
MP3_FRAME_LEN = 144 * 128000 // 44100  # 417 bytes, no padding


def make_mp3(frames: int, id3: bytes = b"", xing_frames: int | None = None) -> bytes:
    frame = MP3_FRAME_HEADER + bytes(MP3_FRAME_LEN - 4)
    out = [id3]
    if xing_frames is not None:
        first = bytearray(frame)
        at = 4 + 32  # MPEG-1 stereo side info
        first[at : at + 12] = b"Xing" + struct.pack(">II", 1, xing_frames)
        out.append(bytes(first))
    out.append(frame * frames)
    return b"".join(out)


def id3_tag(size: int) -> bytes:
    syncsafe = bytes(((size >> s) & 0x7F) for s in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + b"\x00" * size


def ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def ogg_page(payload: bytes, granule: int, seq: int, flags: int = 0, serial: int = 0x1234) -> bytes:
    assert len(payload) < 255 * 255
    lacing = [255] * (len(payload) // 255) + [len(payload) % 255]
    header = b"OggS" + struct.pack("<BBqIIIB", 0, flags, granule, serial, seq, 0, len(lacing)) + bytes(lacing)
    page = bytearray(header + payload)
    page[22:26] = struct.pack("<I", ogg_crc(bytes(page)))
    return bytes(page)


def vorbis_id(rate: int, channels: int = 1) -> bytes:
    return b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, channels, rate, 0, 32000, 0, 0xB8, 1)


def opus_head(pre_skip: int = 312, channels: int = 1) -> bytes:
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, 8000, 0, 0)


def make_ogg(ident: bytes, last_granule: int, filler_pages: int = 1, filler_size: int = 200, eos=True) -> bytes:
    pages = [ogg_page(ident, 0, 0, flags=0x02)]
    for i in range(filler_pages):
        pages.append(ogg_page(bytes([i % 251]) * filler_size, -1 if i % 2 else i * 10, i + 1))
    pages.append(ogg_page(b"\x55" * 50, last_granule, filler_pages + 1, flags=0x04 if eos else 0))
    return b"".join(pages)


def make_gsm(frames: int) -> bytes:
    return b"".join(bytes([0xD0 | (i % 16)]) + bytes([i % 256]) * 32 for i in range(frames))


# ------------------------------------------------------------------------------------------------
# audio: WAV


@FAST
@given(
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]) | st.integers(1000, 96000),
    channels=st.integers(1, 4),
    width=st.integers(1, 4),
    frames=st.integers(1, 30000),
)
def test_wav_duration_matches_generated_header(rate, channels, width, frames):
    data = make_wav(rate, channels, width, frames)
    info = probe_bytes(data)
    assert info.format == "wav" and info.mime_type == "audio/wav"
    assert info.duration_seconds == pytest.approx(frames / rate, abs=1e-9)
    assert (info.sample_rate, info.channels) == (rate, channels)
    assert info.warnings == ()


def test_wav_without_samples_or_with_uncounted_trailing_bytes_is_refused():
    with pytest.raises(UnsupportedAudio, match="empty WAV"):
        probe_bytes(make_wav(8000, 1, 2, 0))
    padded = make_wav(8000, 1, 2, 80) + bytes(1024 * 1024)  # a 44-byte header, then a megabyte it does not count
    with pytest.raises(UnsupportedAudio, match="follow the 160-byte data chunk"):
        probe(padded[:HEAD_BYTES], len(padded))
    with_list_chunk = make_wav(8000, 1, 2, 80) + b"LIST" + (26).to_bytes(4, "little") + bytes(26)
    assert probe_bytes(with_list_chunk).duration_seconds == 0.01


def test_wav_only_head_is_needed():
    data = make_wav(8000, 1, 2, 8000 * 60)  # one minute, ~960 KB
    info = probe(data[:HEAD_BYTES], len(data))
    assert info.duration_seconds == 60.0
    assert info.codec == "pcm_s16le"


@FAST
@given(data=st.data())
def test_truncated_wav_is_detected(data):
    wav = make_wav(8000, 1, 2, data.draw(st.integers(1, 4000)))
    cut = data.draw(st.integers(12, len(wav) - 1))
    with pytest.raises(UnsupportedAudio) as exc:
        probe_bytes(wav[:cut])
    assert "truncated" in exc.value.reason


def test_truncated_wav_reason_is_specific():
    wav = make_wav(8000, 1, 2, 1000)  # 2000 data bytes after a 44-byte header
    with pytest.raises(UnsupportedAudio, match=r"^truncated WAV: data chunk declares 2000 bytes but file has 956$"):
        probe_bytes(wav[:1000])


def test_wav_with_list_chunk_and_odd_padding_before_data():
    data = riff(
        fmt_chunk(1, 1, 8000, 16000, 2, 16),
        chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00abcd\x00"),  # odd-sized LIST, padded
        chunk(b"junk", b"xyz"),  # odd, padded
        chunk(b"data", b"\x00\x01" * 4000),
    )
    info = probe_bytes(data)
    assert info.duration_seconds == 0.5


def test_wav_gsm610_wav49():
    blocks = 50
    fmt = fmt_chunk(0x31, 1, 8000, 1625, 65, 0, extra=struct.pack("<HH", 2, 320))
    data = riff(fmt, chunk(b"fact", struct.pack("<I", blocks * 320)), chunk(b"data", b"\x00" * 65 * blocks))
    info = probe_bytes(data)
    assert (info.format, info.codec) == ("wav", "gsm")
    assert info.duration_seconds == pytest.approx(blocks * 0.04)


@pytest.mark.parametrize("tag,codec", [(6, "alaw"), (7, "mulaw")])
def test_wav_g711(tag, codec):
    data = riff(fmt_chunk(tag, 1, 8000, 8000, 1, 8, extra=b"\x00\x00"), chunk(b"data", b"\xd5" * 24000))
    info = probe_bytes(data)
    assert info.codec == codec and info.duration_seconds == 3.0


def test_wav_extensible_pcm():
    guid = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    ext = struct.pack("<HHI", 22, 16, 4) + guid
    data = riff(fmt_chunk(0xFFFE, 2, 16000, 64000, 4, 16, extra=ext), chunk(b"data", b"\x00" * 64000))
    info = probe_bytes(data)
    assert info.codec == "pcm_s16le" and info.channels == 2 and info.duration_seconds == 1.0


def test_wav_unsupported_encoding_is_named():
    data = riff(fmt_chunk(0x11, 1, 8000, 4055, 256, 4, extra=b"\x02\x00\xf9\x01"), chunk(b"data", b"\x00" * 512))
    with pytest.raises(UnsupportedAudio, match="IMA ADPCM"):
        probe_bytes(data)


def test_wav_header_never_finalised_is_accepted_with_warning():
    wav = bytearray(make_wav(8000, 1, 2, 8000))
    wav[40:44] = b"\x00\x00\x00\x00"  # data size left at 0 by a crashed recorder
    info = probe_bytes(bytes(wav))
    assert info.duration_seconds == 1.0
    assert info.warnings and "not finalised" in info.warnings[0]


def test_wav_zero_length_recording_is_refused_not_stored_as_a_zero_second_call():
    with pytest.raises(UnsupportedAudio, match="no audio samples"):
        probe_bytes(make_wav(8000, 1, 2, 0))


def test_wav_data_before_fmt_and_missing_data():
    with pytest.raises(UnsupportedAudio, match="before the fmt"):
        probe_bytes(riff(chunk(b"data", b"\x00" * 10), fmt_chunk(1, 1, 8000, 16000, 2, 16)))
    with pytest.raises(UnsupportedAudio, match="no data chunk"):
        probe_bytes(riff(fmt_chunk(1, 1, 8000, 16000, 2, 16)))


# ------------------------------------------------------------------------------------------------
# audio: MP3


@FAST
@given(frames=st.integers(2, 400))
def test_mp3_cbr_duration_estimated_from_bitrate(frames):
    info = probe_bytes(make_mp3(frames))
    assert (info.format, info.mime_type, info.sample_rate) == ("mp3", "audio/mpeg", 44100)
    assert info.duration_seconds == pytest.approx(frames * 1152 / 44100, rel=0.01)


def test_mp3_behind_id3_tag_and_xing_frame_count():
    data = make_mp3(100, id3=id3_tag(1000), xing_frames=100)
    info = probe_bytes(data)
    assert info.duration_seconds == pytest.approx(100 * 1152 / 44100, abs=1e-9)


def test_mp3_single_frame():
    assert probe_bytes(make_mp3(1)).format == "mp3"


@pytest.mark.parametrize(
    "data,reason",
    [
        (MP3_FRAME_HEADER + b"\x00" * 416 + b"garbage!" * 10, "not followed by another frame"),
        (b"\xff\xfb\x00\x64" + b"\x00" * 1000, "free-format"),
        (b"\xff\xf1\x50\x80" + b"\x00" * 1000, "AAC"),
        (b"\xff\xfd\x90\x64" + b"\x00" * 1000, "Layer II"),
        (id3_tag(100), "ID3 tag without any MPEG audio"),
        (id3_tag(20) + b"hello world, not audio" * 3, "no MPEG audio frame header"),
        (MP3_FRAME_HEADER + b"\x00" * 100, "truncated MP3"),
    ],
)
def test_mp3_rejections(data, reason):
    with pytest.raises(UnsupportedAudio, match=reason):
        probe_bytes(data)


# ------------------------------------------------------------------------------------------------
# audio: Ogg


def test_ogg_vorbis_duration_from_last_granule():
    data = make_ogg(vorbis_id(8000), last_granule=8000 * 5)
    info = probe_bytes(data)
    assert (info.format, info.codec, info.sample_rate, info.mime_type) == ("ogg", "vorbis", 8000, "audio/ogg")
    assert info.duration_seconds == 5.0 and info.warnings == ()


def test_ogg_long_file_uses_tail():
    data = make_ogg(vorbis_id(44100, 2), last_granule=44100 * 90, filler_pages=40, filler_size=4000)
    assert len(data) > HEAD_BYTES + TAIL_BYTES
    info = probe(data[:HEAD_BYTES], len(data), data[-TAIL_BYTES:])
    assert info.duration_seconds == 90.0 and info.channels == 2
    with pytest.raises(ValueError, match="tail"):
        probe(data[:HEAD_BYTES], len(data))


def test_ogg_opus_subtracts_pre_skip():
    info = probe_bytes(make_ogg(opus_head(pre_skip=312), last_granule=48000 * 2 + 312))
    assert info.codec == "opus" and info.duration_seconds == 2.0


def test_ogg_without_end_of_stream_warns():
    info = probe_bytes(make_ogg(vorbis_id(8000), last_granule=16000, eos=False))
    assert info.duration_seconds == 2.0
    assert "truncated" in info.warnings[0]


def test_ogg_bad_checksum_and_unknown_codec():
    data = bytearray(make_ogg(vorbis_id(8000), 8000))
    data[40] ^= 0xFF
    with pytest.raises(UnsupportedAudio, match="checksum"):
        probe_bytes(bytes(data))
    with pytest.raises(UnsupportedAudio, match="FLAC"):
        probe_bytes(make_ogg(b"\x7fFLAC\x01\x00" + b"\x00" * 40, 8000))
    with pytest.raises(UnsupportedAudio, match="unsupported Ogg codec"):
        probe_bytes(make_ogg(b"mystery codec header", 8000))


# ------------------------------------------------------------------------------------------------
# audio: raw GSM and non-audio


@FAST
@given(frames=st.integers(1, 3000))
def test_raw_gsm_duration(frames):
    info = probe_bytes(make_gsm(frames))
    assert (info.format, info.mime_type) == ("gsm", "audio/x-gsm")
    assert info.duration_seconds == pytest.approx(frames * 0.02)


def test_raw_gsm_rejections():
    with pytest.raises(UnsupportedAudio, match="multiple of 33"):
        probe_bytes(make_gsm(10) + b"\xd0")
    bad = bytearray(make_gsm(10))
    bad[33 * 3] = 0x41
    with pytest.raises(UnsupportedAudio, match="frame 4"):
        probe_bytes(bytes(bad))


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"x" * 500, r"^not an audio file \(starts with PDF header\)$"),
        (b"PK\x03\x04" + b"\x00" * 100, "ZIP"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "PNG image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "JPEG image"),
        (b"fLaC\x00\x00\x00\x22" + b"\x00" * 100, "unsupported audio format: FLAC"),
        (b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 100, "MP4/M4A"),
        (b"RIFF\x10\x00\x00\x00AVI LIST" + b"\x00" * 100, "not WAVE"),
        (b"Dear practice manager,\nplease find attached...\n", "looks like text"),
        (b"<html><body>oops</body></html>", "HTML"),
        (b"\x00\x01\x02\x03" * 50, "not a recognised audio format"),
    ],
)
def test_not_audio_reasons(data, reason):
    with pytest.raises(UnsupportedAudio, match=reason):
        probe_bytes(data)


def test_empty_file_and_bad_arguments():
    with pytest.raises(UnsupportedAudio, match="^empty file$"):
        probe(b"", 0)
    with pytest.raises(ValueError):
        probe(b"abc", 2)
    with pytest.raises(ValueError):
        probe(b"", 10)


MAGIC_PREFIXES = [
    b"",
    b"RIFF",
    b"RIFF\x24\x00\x00\x00WAVE",
    b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",
    b"OggS",
    b"OggS\x00\x02",
    b"ID3\x03\x00\x00",
    b"\xff\xfb\x90\x64",
    b"\xff\xe3",
    b"\xd0",
    b"fLaC",
]


def _check_probe_result(data: bytes):
    try:
        info = probe_bytes(data)
    except UnsupportedAudio as exc:
        assert exc.reason and isinstance(exc.reason, str)
        return
    assert info.format in {"wav", "mp3", "ogg", "gsm"}
    assert info.mime_type.startswith("audio/")
    assert math.isfinite(info.duration_seconds) and 0 <= info.duration_seconds <= audio.MAX_PLAUSIBLE_SECONDS


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from(MAGIC_PREFIXES), rest=st.binary(max_size=3000))
def test_random_bytes_never_crash_probe(prefix, rest):
    _check_probe_result(prefix + rest)


VALID_SAMPLES = [
    make_wav(8000, 1, 2, 800),
    riff(fmt_chunk(0x31, 1, 8000, 1625, 65, 0, extra=struct.pack("<HH", 2, 320)), chunk(b"data", b"\0" * 650)),
    make_mp3(5, id3=id3_tag(30)),
    make_mp3(5, xing_frames=5),
    make_ogg(vorbis_id(8000), 8000, filler_pages=3),
    make_ogg(opus_head(), 48000, filler_pages=3),
    make_gsm(20),
]


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(VALID_SAMPLES),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    cut=st.none() | st.integers(0, 10**6),
)
def test_corrupted_valid_files_never_crash_probe(sample, flips, cut):
    data = bytearray(sample)
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _check_probe_result(bytes(data))


# ------------------------------------------------------------------------------------------------
# numbers


E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def _assert_normalised_shape(out: str):
    if out == "withheld" or re.fullmatch(r"ext:[0-9]{2,6}", out):
        return
    assert E164.fullmatch(out), out
    parsed = phonenumbers.parse(out, None)
    assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == out
    assert phonenumbers.is_possible_number(parsed)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40) | st.from_regex(r"\+?[0-9 ()\-.]{0,25}", fullmatch=True))
def test_normalise_only_raises_invalid_number(raw):
    try:
        out = normalise(raw)
    except InvalidNumber as exc:
        assert exc.reason
        return
    _assert_normalised_shape(out)


@FAST
@given(st.sampled_from(["020 7946 0", "0161 496 0", "07700 900", "+44 20 7946 0", "0044 113 496 0"]), st.integers(0, 999))
def test_normalise_drama_numbers_roundtrip(prefix, suffix):
    out = normalise(f"{prefix}{suffix:03d}")
    _assert_normalised_shape(out)
    assert out.startswith("+44") and out.endswith(f"{suffix:03d}")
    assert normalise(out) == out  # idempotent


@pytest.mark.parametrize(
    "raw,expected",
    [
        (None, "withheld"),
        ("", "withheld"),
        ("   ", "withheld"),
        ("anonymous", "withheld"),
        ("Anonymous", "withheld"),
        ("WITHHELD", "withheld"),
        ("Unknown", "withheld"),
        ("private", "withheld"),
        ("Restricted", "withheld"),
        ("unavailable", "withheld"),
        ("<unknown>", "withheld"),
        ('"anonymous"', "withheld"),
        ("sip:anonymous@anonymous.invalid", "withheld"),
        ("Private Number", "withheld"),
        ("P", "withheld"),
        ("201", "ext:201"),
        ("20", "ext:20"),
        ("123456", "ext:123456"),
        ("07700 900123", "+447700900123"),
        ("07700900123", "+447700900123"),
        ("+44 (0)20 7946 0123", "+442079460123"),
        ("(020) 7946-0123", "+442079460123"),
        ("0044 20 7946 0123", "+442079460123"),
        ("442079460123", "+442079460123"),
        ("+1 202 555 0123", "+12025550123"),
        ("12025550123", "+12025550123"),
        ("sip:02079460123@trunk.example.net;user=phone", "+442079460123"),
        ("tel:+442079460123", "+442079460123"),
        ("０２０７９４６０１２３", "+442079460123"),  # full-width digits
    ],
)
def test_normalise_examples(raw, expected):
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "raw,reason",
    [
        ("reception", "letters"),
        ("*97", "feature code"),
        ("#", "feature code"),
        ("1", "not a phone number"),
        ("1234567", "not a valid phone number"),
        ("+1234567", "not a valid phone number"),
        ("9" * 21, "21 digits"),
        ("0" * 200, "too long"),
        ("+44+20", "characters"),
        ("()", "no digits"),
        ("07700 900123 x12", "letters"),
    ],
)
def test_normalise_rejections(raw, reason):
    with pytest.raises(InvalidNumber, match=reason):
        normalise(raw)


def test_normalise_other_region_and_bad_region():
    assert normalise("(202) 555-0123", region="US") == "+12025550123"
    assert normalise("020 7946 0123", region="gb") == "+442079460123"
    with pytest.raises(ValueError):
        normalise("0207946123", region="XX")


# ------------------------------------------------------------------------------------------------
# FreePBX names and trees

PREFIXES = ["in", "out", "external", "q", "rg", "internal", "ondemand", "exten"]
number_field = st.sampled_from(["", "anonymous", "unknown", "s", "+447700900123"]) | st.from_regex(
    r"[0-9]{2,13}", fullmatch=True
)


@st.composite
def monitor_names(draw):
    prefix = draw(st.sampled_from(PREFIXES))
    to = draw(number_field)
    frm = draw(number_field)
    when = draw(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)))
    when = when.replace(microsecond=0)
    uid = f"{draw(st.integers(10**9, 2 * 10**9))}.{draw(st.integers(0, 999999))}"
    if draw(st.booleans()):
        uid = "pbx1-" + uid  # Asterisk systemname prefix
    ext = draw(st.sampled_from(["wav", "WAV", "gsm", "mp3", "ogg"]))
    name = f"{prefix}-{to}-{frm}-{when:%Y%m%d}-{when:%H%M%S}-{uid}.{ext}"
    return prefix, to, frm, when, uid, ext, name


@FAST
@given(monitor_names(), st.booleans())
def test_file_name_roundtrip(fields, in_date_dirs):
    prefix, to, frm, when, uid, ext, name = fields
    rel = f"{when:%Y/%m/%d}/{name}" if in_date_dirs else name
    got = parse_name(rel)
    assert got == MonitorFile(
        direction=got.direction,
        to_number=to,
        from_number=frm,
        started_at_local=when,
        uniqueid=uid,
        extension=ext.lower(),
        prefix=prefix,
    )
    assert got.direction in {"inbound", "outbound", "internal"}


@pytest.mark.parametrize(
    "name,direction",
    [
        ("in-02079460000-07700900123", "inbound"),
        ("external-201-07700900123", "inbound"),
        ("out-07700900123-201", "outbound"),
        ("internal-202-201", "internal"),
        ("q-600-07700900123", "inbound"),
        ("q-600-201", "internal"),
        ("rg-601-anonymous", "inbound"),
        ("rg-601-", "inbound"),
        ("exten-295-258", "internal"),
        ("exten-295-07700900123", "inbound"),
        ("ondemand-201-07700900123", "inbound"),
        ("ondemand-07700900123-201", "outbound"),
    ],
)
def test_direction_mapping(name, direction):
    assert parse_name(f"{name}-20231114-101500-1699956900.42.wav").direction == direction


@pytest.mark.parametrize(
    "rel,reason",
    [
        ("../2023/11/14/in-1-2-20231114-101500-1.2.wav", r"\.\."),
        ("2023/11/../14/in-1-2-20231114-101500-1.2.wav", r"\.\."),
        ("/var/spool/asterisk/monitor/in-1-2-20231114-101500-1.2.wav", "relative"),
        ("2023\\11\\14\\in-1-2-20231114-101500-1.2.wav", "backslash"),
        ("2023/11/14/in-1-2-20231114-101500-1.2.wav\x00.txt", "control"),
        ("2023/11/14/in-ünïcode-2-20231114-101500-1.2.wav", "non-ASCII"),
        ("2023/11/14/.in-1-2-20231114-101500-1.2.wav", "hidden"),
        ("2023/11/15/in-1-2-20231114-101500-1.2.wav", "does not match"),
        ("2024/11/14/in-1-2-20231114-101500-1.2.wav", "does not match"),
        ("misc/in-1-2-20231114-101500-1.2.wav", "YYYY/MM/DD"),
        ("in-1-2-20231314-101500-1.2.wav", "invalid date"),
        ("in-1-2-20231114-256000-1.2.wav", "invalid date"),
        ("in-1-2-3-20231114-101500-1.2.wav", "apart"),
        ("fax-1-2-20231114-101500-1.2.wav", "unknown recording type"),
        ("in-1-2-20231114-101500-1.2.ulaw", "headerless"),
        ("in-1-2-20231114-101500-1.2.txt", "extension"),
        ("in-1-2-20231114-101500.wav", "does not match"),
        ("notes.txt", "does not match"),
        ("", "empty"),
        (".", "not a file path"),
    ],
)
def test_parse_name_refusals(rel, reason):
    with pytest.raises(NotARecording, match=reason):
        parse_name(rel)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"([0-9./]|\.\.|in-|-|[0-9]{8}|ü)*\.wav", fullmatch=True))
def test_parse_name_only_raises_not_a_recording(rel):
    try:
        got = parse_name(rel)
    except NotARecording as exc:
        assert exc.reason
        return
    assert ".." not in rel.split("/") and not rel.startswith("/") and rel.isascii()
    assert got.started_at_local.tzinfo is None


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _comparable(results):
    return [(p, r if isinstance(r, MonitorFile) else r.reason) for p, r in results]


def test_walk_tree(tmp_path):
    root = tmp_path / "monitor"
    outside = tmp_path / "outside"
    _touch(outside / "in-1-2-20231114-101500-9.9.wav")
    good2 = root / "2023/11/14/out-07700900123-201-20231114-120000-1699963200.7.wav"
    good1 = root / "2023/11/14/in-02079460000-07700900123-20231114-101500-1699956900.42.wav"
    wrong_dir = root / "2023/11/15/in-1-2-20231114-101500-1.2.wav"
    junk = root / "2023/11/14/readme.txt"
    _touch(good2)
    _touch(good1)
    _touch(wrong_dir)
    _touch(junk)
    _touch(root / "2023/11/14/.in-1-2-20231114-101500-1.2.wav")  # hidden: skipped
    _touch(root / ".cache/2023/11/14/in-1-2-20231114-101500-1.2.wav")  # hidden dir: skipped
    link_out = root / "2023/11/14/in-5-6-20231114-101500-5.5.wav"
    link_out.symlink_to(outside / "in-1-2-20231114-101500-9.9.wav")
    link_dir = root / "2023/11/16"
    link_dir.symlink_to(outside, target_is_directory=True)
    link_in = root / "in-7-8-20231114-101500-7.7.wav"
    link_in.symlink_to(good1)
    broken = root / "in-9-9-20231114-101500-8.8.wav"
    broken.symlink_to(root / "nowhere.wav")

    results = list(walk_tree(root))
    paths = [p for p, _ in results]
    assert paths == sorted(paths, key=lambda p: p.relative_to(root).parts)
    assert _comparable(results) == _comparable(walk_tree(str(root)))  # deterministic, str root accepted
    by_path = dict(results)
    assert isinstance(by_path[good1], MonitorFile) and by_path[good1].uniqueid == "1699956900.42"
    assert by_path[good2].direction == "outbound"
    assert "does not match" in by_path[wrong_dir].reason
    assert isinstance(by_path[junk], NotARecording)
    assert "outside" in by_path[link_out].reason
    assert "folder" in by_path[link_dir].reason
    assert "not followed" in by_path[link_in].reason  # a link is never opened, even inside the tree
    assert "broken" in by_path[broken].reason
    assert not any(".cache" in p.parts or p.name.startswith(".") for p in paths)
    assert all(str(p).startswith(str(root)) for p in paths)
    assert len(results) == 8


def test_walk_tree_root_must_be_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(walk_tree(tmp_path / "missing"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        list(walk_tree(tmp_path / "file"))


# ------------------------------------------------------------------------------------------------
# CDR


def asterisk_field(value) -> str:
    """cdr_csv's append_string: always quoted, quotes doubled."""
    return '"' + str(value).replace('"', '""') + '"'


def cdr_line(
    src="07700900123",
    dst="201",
    clid='"Jane Smith" <07700900123>',
    start="2023-11-14 10:15:00",
    answer="2023-11-14 10:15:05",
    end="2023-11-14 10:20:00",
    duration=300,
    billsec=295,
    disposition="ANSWERED",
    uniqueid="1699956900.42",
    userfield="",
    extra=(),
    include_uniqueid=True,
    include_userfield=True,
) -> str:
    cells = [asterisk_field(v) for v in ("", src, dst, "from-trunk", clid, "PJSIP/trunk-0001", "PJSIP/201-0002", "Dial", "PJSIP/201,30")]
    cells += [asterisk_field(start) if start else "", asterisk_field(answer) if answer else "", asterisk_field(end) if end else ""]
    cells += [str(duration), str(billsec), asterisk_field(disposition), asterisk_field("DOCUMENTATION")]
    if include_uniqueid:
        cells.append(asterisk_field(uniqueid))
    if include_userfield:
        cells.append(asterisk_field(userfield))
    cells += [asterisk_field(v) for v in extra]
    return ",".join(cells) + "\n"


def test_read_cdr_standard_rows(tmp_path):
    text = (
        cdr_line()
        + cdr_line(uniqueid="1699956901.43", clid="<02079460000>", src="02079460000", answer="", billsec=0, disposition="NO ANSWER")
        + "\n"
        + cdr_line(uniqueid="1699956902.44", include_userfield=False, clid='"Dr "Molar" Jones, BDS" <201>')
        + cdr_line(uniqueid="1699956903.45", extra=("", "1699956903.45", "7"))
    )
    path = tmp_path / "Master.csv"
    path.write_text(text)
    table = read_cdr(path)
    assert table.errors == []
    assert set(table) == {"1699956900.42", "1699956901.43", "1699956902.44", "1699956903.45"}
    row = table["1699956900.42"]
    assert (row.caller_name, row.caller_number) == ("Jane Smith", "07700900123")
    assert row.start == dt.datetime(2023, 11, 14, 10, 15) and row.start.tzinfo is None
    assert row.answer == dt.datetime(2023, 11, 14, 10, 15, 5)
    assert (row.duration, row.billsec, row.disposition) == (300, 295, "ANSWERED")
    assert row.channel == "PJSIP/trunk-0001" and row.line == 1
    unanswered = table["1699956901.43"]
    assert unanswered.answer is None and unanswered.caller_name == "" and unanswered.caller_number == "02079460000"
    assert table["1699956902.44"].caller_name == 'Dr "Molar" Jones, BDS'
    assert table["1699956903.45"].linkedid == "1699956903.45"
    assert table["1699956902.44"].line == 4  # blank line 3 skipped, still counted


def test_read_cdr_bad_rows_are_collected_not_raised():
    text = (
        cdr_line(uniqueid="1.1")
        + cdr_line(include_uniqueid=False, include_userfield=False)  # 16 columns: no uniqueid
        + cdr_line(uniqueid="1.3", start="14/11/2023 10:15")
        + cdr_line(uniqueid="1.4", start="2023-02-30 10:15:00")
        + cdr_line(uniqueid="1.5", duration="ten")
        + '"just","three","cells"\n'
        + cdr_line(uniqueid="1.7", start="")
        + cdr_line(uniqueid="1.8", end="2023-11-14 09:00:00")
        + cdr_line(uniqueid="1.9")
    )
    table = read_cdr(io.StringIO(text))
    assert set(table) == {"1.1", "1.9"}
    lines = {e.line: e.reason for e in table.errors}
    assert sorted(lines) == [2, 3, 4, 5, 6, 7, 8]
    assert "uniqueid" in lines[2]
    assert "start time" in lines[3] and "no such date" in lines[4]
    assert "duration" in lines[5] and "columns" in lines[6]
    assert "missing start" in lines[7] and "before start" in lines[8]


def test_read_cdr_unreadable_csv_line_does_not_stop_reading():
    text = cdr_line(uniqueid="1.1") + '"' + "x" * 140_000 + '"\n' + cdr_line(uniqueid="1.3")
    table = read_cdr(io.StringIO(text))
    assert list(table) == ["1.1", "1.3"]
    assert table.errors == [cdr.CdrError(2, "unreadable CSV: field larger than field limit (131072)")]


def test_read_cdr_17_columns_userfield_only_and_uniqueid_only():
    only_uid = cdr_line(uniqueid="1699956900.42", include_userfield=False)
    only_user = cdr_line(userfield="some note", include_uniqueid=False)
    table = read_cdr(io.StringIO(only_uid + only_user))
    assert list(table) == ["1699956900.42"]
    assert len(table.errors) == 1 and "uniqueid" in table.errors[0].reason


def test_read_cdr_with_header_and_binary_fileobj():
    header = "accountcode,src,dst,dcontext,clid,channel,dstchannel,lastapp,lastdata,start,answer,end,duration,billsec,disposition,amaflags,uniqueid,userfield\n"
    data = (header + cdr_line()).encode("utf-8")
    table = read_cdr(io.BytesIO(data))
    assert list(table) == ["1699956900.42"] and table.errors == []
    assert table["1699956900.42"].line == 2


def test_read_cdr_freepbx_export_header():
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["calldate", "clid", "src", "dst", "duration", "billsec", "disposition", "uniqueid", "recordingfile"])
    w.writerow(["2023-11-14 10:15:00", '"Jane" <07700900123>', "07700900123", "201", "60", "55", "ANSWERED", "1699956900.42", "in-201-07700900123-20231114-101500-1699956900.42.wav"])
    table = read_cdr(io.StringIO(out.getvalue()))
    row = table["1699956900.42"]
    assert row.end == dt.datetime(2023, 11, 14, 10, 16) and row.recordingfile.startswith("in-201")


def test_read_cdr_header_without_uniqueid():
    table = read_cdr(io.StringIO("accountcode,src,dst,start\n,1,2,2023-11-14 10:15:00\n"))
    assert len(table) == 0 and "uniqueid" in table.errors[0].reason and table.errors[0].line == 1


def test_read_cdr_duplicate_uniqueid_keeps_answered_longest():
    text = (
        cdr_line(disposition="NO ANSWER", billsec=0, answer="")
        + cdr_line(disposition="ANSWERED", billsec=100, dst="202")
        + cdr_line(disposition="ANSWERED", billsec=50, dst="203")
    )
    table = read_cdr(io.StringIO(text))
    assert table["1699956900.42"].dst == "202" and table.errors == []


name_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters='<>\\'),
    max_size=30,
).map(str.strip)


@FAST
@given(name=name_text, number=st.from_regex(r"\+?[0-9]{3,15}", fullmatch=True))
def test_cdr_clid_with_quotes_and_commas_roundtrip(name, number):
    clid = f'"{name}" <{number}>'
    table = read_cdr(io.StringIO(cdr_line(clid=clid)))
    row = table["1699956900.42"]
    assert row.clid == clid
    assert (row.caller_name, row.caller_number) == (name, number)


@pytest.mark.parametrize(
    "clid,expected",
    [
        ('"Jane Smith" <07700900123>', ("Jane Smith", "07700900123")),
        ("Jane Smith <07700900123>", ("Jane Smith", "07700900123")),
        ("<07700900123>", ("", "07700900123")),
        ('"Jane Smith"', ("Jane Smith", "")),
        ("07700900123", ("", "07700900123")),
        ("Reception", ("Reception", "")),
        ('"" <>', ("", "")),
        ("", ("", "")),
    ],
)
def test_parse_clid(clid, expected):
    assert cdr.parse_clid(clid) == expected


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_read_cdr_never_raises_on_garbage(text):
    table = read_cdr(io.StringIO(text))
    assert all(isinstance(e.line, int) and e.reason for e in table.errors)


# ------------------------------------------------------------------------------------------------
# signing

SECRET = b"0123456789abcdef0123456789abcdef"
PATH = "/callrec/api/recordings"
NONCE = "n0nce_ABCDEFGHIJKLMN"
BODY = b"--boundary\r\nContent-Disposition: form-data; name=metadata\r\n\r\n{}\r\n--boundary--\r\n"


def test_sign_matches_documented_canonical_string():
    digest = hashlib.sha256(BODY).hexdigest()
    canonical = f"POST\n{PATH}\n1700000000\n{NONCE}\n{digest}\n{len(BODY)}"
    expected = hmac.new(SECRET, canonical.encode(), hashlib.sha256).hexdigest()
    assert signing.canonical_string("post", PATH, 1700000000, NONCE, digest, len(BODY)) == canonical
    assert signing.sign(SECRET, "post", PATH, 1700000000, NONCE, digest, len(BODY)) == expected
    assert signing.sign(SECRET.decode(), "POST", PATH, "1700000000", NONCE, digest.upper(), len(BODY)) == expected


def test_verify_accepts_only_the_exact_request():
    digest = signing.body_sha256(BODY)
    sig = signing.sign(SECRET, "POST", PATH, 1700000000, NONCE, digest, len(BODY))
    assert signing.verify(SECRET, "POST", PATH, 1700000000, NONCE, digest, len(BODY), sig)
    assert signing.verify(SECRET, "POST", PATH, "1700000000", NONCE, digest, len(BODY), sig.upper())
    other = signing.body_sha256(BODY + b"x")
    assert not signing.verify(SECRET, "PUT", PATH, 1700000000, NONCE, digest, len(BODY), sig)
    assert not signing.verify(SECRET, "POST", PATH + "/x", 1700000000, NONCE, digest, len(BODY), sig)
    assert not signing.verify(SECRET, "POST", PATH, 1700000001, NONCE, digest, len(BODY), sig)
    assert not signing.verify(SECRET, "POST", PATH, 1700000000, NONCE + "x", digest, len(BODY), sig)
    assert not signing.verify(SECRET, "POST", PATH, 1700000000, NONCE, other, len(BODY), sig)
    assert not signing.verify(SECRET, "POST", PATH, 1700000000, NONCE, digest, len(BODY) + 1, sig)
    assert not signing.verify(b"another secret", "POST", PATH, 1700000000, NONCE, digest, len(BODY), sig)
    assert not signing.verify(SECRET, "POST", PATH, 1700000000, NONCE, digest, len(BODY), "zz")
    assert not signing.verify(SECRET, "POST", PATH, 1700000000, "short", digest, len(BODY), sig)
    assert not signing.verify(SECRET, "POST", "no-slash", 1700000000, NONCE, digest, len(BODY), sig)
    with pytest.raises(ValueError):
        signing.verify(b"", "POST", PATH, 1700000000, NONCE, digest, len(BODY), sig)


@FAST
@given(
    method=st.sampled_from(["POST", "PUT", "GET"]),
    path=st.from_regex(r"/[A-Za-z0-9/_.-]{0,40}", fullmatch=True),
    ts=st.integers(0, 10**11),
    nonce=st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True),
    body=st.binary(max_size=200),
    flip=st.integers(0, 63),
)
def test_sign_verify_roundtrip_and_any_changed_digit_fails(method, path, ts, nonce, body, flip):
    digest = signing.body_sha256(body)
    sig = signing.sign(SECRET, method, path, ts, nonce, digest, len(body))
    assert re.fullmatch(r"[0-9a-f]{64}", sig)
    assert signing.verify(SECRET, method, path, ts, nonce, digest, len(body), sig)
    tampered = sig[:flip] + ("0" if sig[flip] != "0" else "1") + sig[flip + 1 :]
    assert not signing.verify(SECRET, method, path, ts, nonce, digest, len(body), tampered)


def test_check_timestamp():
    now = 1_700_000_000.4
    assert signing.check_timestamp("1700000000", now, 300) == 1700000000
    assert signing.check_timestamp(" 1700000299 ", now, 300) == 1700000299
    with pytest.raises(SignatureError, match="too old"):
        signing.check_timestamp("1699999000", now, 300)
    with pytest.raises(SignatureError, match="future"):
        signing.check_timestamp("1700001000", now, 300)
    for bad in ["", None, "abc", "1.5e9", "-1700000000", "+1700000000", "1700000000.0", "١٧٠٠٠٠٠٠٠٠", "9" * 30]:
        with pytest.raises(SignatureError):
            signing.check_timestamp(bad, now, 300)


def test_check_nonce():
    assert signing.check_nonce("a" * 16) == "a" * 16
    assert signing.check_nonce("Az09_-" * 10 + "abcd") == "Az09_-" * 10 + "abcd"
    for bad in [None, "", "a" * 15, "a" * 65, "a" * 15 + "!", "a" * 15 + " ", "a" * 15 + "é"]:
        with pytest.raises(SignatureError):
            signing.check_nonce(bad)


def test_check_body_digest():
    digest = hashlib.sha256(BODY).hexdigest()
    assert signing.check_body_digest(digest.upper(), BODY) == digest
    with pytest.raises(SignatureError, match="does not match"):
        signing.check_body_digest(digest, BODY[:-1])
    for bad in [None, "", "abc"]:
        with pytest.raises(SignatureError):
            signing.check_body_digest(bad, BODY)


def test_signed_headers_verify_on_the_server_side():
    headers = signing.signed_headers(SECRET, "practice-1", "POST", PATH, BODY, timestamp=1700000000)
    assert set(headers) == {
        "X-Callrec-Practice",
        "X-Callrec-Timestamp",
        "X-Callrec-Nonce",
        "X-Callrec-Signature",
        "X-Callrec-Content-SHA256",
    }
    ts = signing.check_timestamp(headers[signing.HEADER_TIMESTAMP], 1700000010, 300)
    nonce = signing.check_nonce(headers[signing.HEADER_NONCE])
    digest = signing.check_body_digest(headers[signing.HEADER_CONTENT_SHA256], BODY)
    assert signing.verify(SECRET, "POST", PATH, ts, nonce, digest, len(BODY), headers[signing.HEADER_SIGNATURE])
    again = signing.signed_headers(SECRET, "practice-1", "POST", PATH, BODY)
    assert again[signing.HEADER_NONCE] != headers[signing.HEADER_NONCE]


# ------------------------------------------------------------------------------------------------


def test_ingest_parsers_import_only_stdlib_and_phonenumbers():
    import ast
    import sys

    allowed = set(sys.stdlib_module_names) | {"phonenumbers", "callrec_plugin", "__future__"}
    for module in (audio, numbers, freepbx, cdr, signing):
        tree = ast.parse(open(module.__file__, encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{module.__name__} imports {name}"
