"""Recognise call audio by its content, never by its file name.

``probe(head, total_size, tail=b"")`` looks at the first bytes of a file (``head``, normally the first
``HEAD_BYTES``), its total size and, for Ogg, its last bytes (``tail``, normally the last
``TAIL_BYTES``), and returns an :class:`AudioInfo` or raises :class:`UnsupportedAudio` whose ``reason``
is a sentence a practice manager can read ("not an audio file (starts with PDF header)",
"truncated WAV: data chunk declares 96000 bytes but file has 4000").

Recognised containers and codecs:

``wav``  RIFF/WAVE with PCM (8/16/24/32-bit), IEEE float, A-law (6), mu-law (7) or GSM 6.10 (0x31,
         Asterisk's ``wav49``), plain or WAVE_FORMAT_EXTENSIBLE. Duration = data bytes / byte rate.
         A data chunk that claims more bytes than the file holds is reported as truncated. A header
         that was never finalised (data size 0 or 0xFFFFFFFF, as left by a crashed recorder) is
         accepted with the duration taken from the file size and a warning in ``AudioInfo.warnings``.
``mp3``  MPEG-1/2/2.5 Layer III, optionally behind an ID3v2 tag. Two consecutive frame headers are
         required (unless the file holds a single frame). Duration from the Xing/Info or VBRI frame
         count, else estimated from the first frame's bitrate and the file size (CBR).
``ogg``  Ogg Vorbis, Opus or Speex. Duration from the granule position of the last page of the
         first logical stream (needs ``tail`` unless ``head`` is the whole file). Page CRCs are checked.
``gsm``  Raw GSM 06.10 as written by Asterisk: 33-byte frames whose first byte has the high nibble
         0xD, 20 ms each; the size must be a multiple of 33.

This module is pure (stdlib only): it never opens files.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

__all__ = [
    "HEAD_BYTES",
    "TAIL_BYTES",
    "MAX_PLAUSIBLE_SECONDS",
    "AudioInfo",
    "UnsupportedAudio",
    "probe",
]

#: How many leading bytes ``probe`` expects in ``head`` (less if the file is shorter).
HEAD_BYTES = 65536
#: How many trailing bytes ``probe`` expects in ``tail`` (less if the file is shorter).
TAIL_BYTES = 65536
#: A header claiming a longer recording than this is treated as corrupt (7 days).
MAX_PLAUSIBLE_SECONDS = 7 * 24 * 3600

SUPPORTED = "WAV, MP3, Ogg Vorbis/Opus/Speex and raw GSM"


class UnsupportedAudio(Exception):
    """The bytes are not audio callrec accepts; ``reason`` says why, in plain words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    format: str  # "wav", "mp3", "ogg" or "gsm"
    mime_type: str  # "audio/wav", "audio/mpeg", "audio/ogg", "audio/x-gsm"
    duration_seconds: float
    codec: str = ""  # e.g. "pcm_s16le", "gsm", "mulaw", "alaw", "mp3", "vorbis", "opus", "speex"
    sample_rate: int | None = None
    channels: int | None = None
    warnings: tuple[str, ...] = ()  # accepted, but worth telling someone (e.g. header not finalised)


def probe(head: bytes, total_size: int, tail: bytes = b"") -> AudioInfo:
    """Identify the audio in a file from its first bytes, its size and (for Ogg) its last bytes.

    ``head``: the first ``min(HEAD_BYTES, total_size)`` bytes. ``tail``: the last
    ``min(TAIL_BYTES, total_size)`` bytes (may overlap ``head``); only Ogg needs it, and only when
    ``head`` is not the whole file. Raises :class:`UnsupportedAudio` for anything that is not a
    recognised, intact recording, and ``ValueError`` for inconsistent arguments (a caller's bug).
    """
    head = bytes(head)
    tail = bytes(tail)
    if isinstance(total_size, bool) or not isinstance(total_size, int) or total_size < 0:
        raise ValueError(f"total_size must be a non-negative int, got {total_size!r}")
    if len(head) > total_size or len(tail) > total_size:
        raise ValueError("head/tail are longer than total_size")
    if total_size == 0:
        raise UnsupportedAudio("empty file")
    if not head:
        raise ValueError("head is empty but total_size > 0")
    whole = len(head) == total_size
    end = head if whole else tail

    info = _dispatch(head, total_size, end, whole)
    if not math.isfinite(info.duration_seconds) or info.duration_seconds < 0:
        raise UnsupportedAudio(f"corrupt {info.format.upper()} header: impossible duration")
    if info.duration_seconds > MAX_PLAUSIBLE_SECONDS:
        hours = info.duration_seconds / 3600
        raise UnsupportedAudio(
            f"corrupt {info.format.upper()} header: it claims {hours:.0f} hours of audio"
        )
    return info


def _dispatch(head: bytes, total_size: int, end: bytes, whole: bool) -> AudioInfo:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _probe_wav(head, total_size)
    if head[:4] == b"RIFF":
        if len(head) < 12:
            raise UnsupportedAudio("truncated RIFF file: ends inside the 12-byte header")
        kind = head[8:12].decode("latin-1").strip() or "?"
        kind = kind if kind.isprintable() else "?"
        raise UnsupportedAudio(f"not an audio file (RIFF container of type {kind!r}, not WAVE)")
    if head[:4] == b"RIFX":
        raise UnsupportedAudio("unsupported WAV variant: big-endian RIFX")
    if head[:4] in (b"RF64", b"BW64"):
        raise UnsupportedAudio("unsupported WAV variant: RF64/BW64 (files over 4 GiB)")
    if head[:4] == b"OggS":
        return _probe_ogg(head, total_size, end, whole)
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return _probe_mp3(head, total_size, end, whole)
    reason = _known_other(head)
    if reason:
        raise UnsupportedAudio(reason)
    if head[0] >> 4 == 0xD:
        return _probe_gsm(head, total_size, end)
    if _looks_like_text(head):
        if head.lstrip()[:1] == b"<":
            raise UnsupportedAudio("not an audio file (looks like HTML or XML text)")
        raise UnsupportedAudio("not an audio file (looks like text)")
    first = " ".join(f"{b:02x}" for b in head[:8])
    raise UnsupportedAudio(f"not a recognised audio format (supported: {SUPPORTED}); starts with {first}")


# ----------------------------------------------------------------------------------------------
# Things that are not (accepted) audio: give the human a name for what they uploaded.

_NOT_AUDIO = (
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP (or Office document)"),
    (b"PK\x05\x06", "ZIP"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Microsoft Office (OLE) document"),
    (b"{\\rtf", "RTF document"),
    (b"\x1f\x8b", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"SQLite format 3\x00", "SQLite database"),
)
_OTHER_AUDIO = (
    (b"fLaC", "FLAC"),
    (b"#!AMR", "AMR"),
    (b".snd", "Sun/NeXT AU"),
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "Windows Media (ASF/WMA)"),
    (b"MThd", "MIDI"),
)


def _known_other(head: bytes) -> str | None:
    for magic, name in _NOT_AUDIO:
        if head.startswith(magic):
            return f"not an audio file (starts with {name} header)"
    for magic, name in _OTHER_AUDIO:
        if head.startswith(magic):
            return f"unsupported audio format: {name} (supported: {SUPPORTED})"
    if head[4:8] == b"ftyp":
        return f"unsupported audio format: MP4/M4A (supported: {SUPPORTED})"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return f"unsupported audio format: AIFF (supported: {SUPPORTED})"
    return None


def _looks_like_text(head: bytes) -> bool:
    sample = head[:1024]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the end of the sample.
        try:
            text = sample[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    if not text:
        return False
    printable = sum(1 for c in text if c.isprintable() or c in "\r\n\t\f")
    return printable / len(text) > 0.97


# ----------------------------------------------------------------------------------------------
# WAV

_WAVE_TAGS = {
    0x0001: "PCM",
    0x0002: "Microsoft ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0022: "Truespeech",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG",
    0x0055: "MP3",
    0x0064: "G.726 ADPCM",
    0x0065: "G.722 ADPCM",
    0x0161: "WMA",
    0xFFFE: "extensible",
}
# Bytes 2..16 of the KSDATAFORMAT_SUBTYPE_* GUIDs whose first two bytes hold a format tag.
_KS_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


@dataclass(frozen=True)
class _WavFmt:
    codec: str
    channels: int
    sample_rate: int
    block_align: int
    samples_per_block: int  # 1 for PCM-like codecs, 320 for GSM 6.10
    declared_byte_rate: int

    @property
    def byte_rate(self) -> float:
        return self.sample_rate * self.block_align / self.samples_per_block


def _tag_name(tag: int) -> str:
    name = _WAVE_TAGS.get(tag)
    return f"format tag 0x{tag:04x}" + (f" ({name})" if name else "")


def _parse_wav_fmt(fmt: bytes) -> _WavFmt:
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", fmt, 0)
    if tag == 0xFFFE:
        if len(fmt) < 40:
            raise UnsupportedAudio("malformed WAV: extensible fmt chunk is shorter than 40 bytes")
        guid = fmt[24:40]
        if guid[2:] != _KS_GUID_TAIL:
            raise UnsupportedAudio("unsupported WAV encoding: extensible format with an unknown sub-format")
        tag = struct.unpack_from("<H", guid, 0)[0]
        if tag == 0xFFFE:
            raise UnsupportedAudio("malformed WAV: extensible sub-format is itself extensible")
    if not 1 <= channels <= 8:
        raise UnsupportedAudio(f"malformed or unsupported WAV: {channels} channels")
    if not 1000 <= rate <= 768000:
        raise UnsupportedAudio(f"malformed or unsupported WAV: sample rate {rate} Hz")
    if tag in (1, 3, 6, 7):
        allowed = {1: (8, 16, 24, 32), 3: (32, 64), 6: (8,), 7: (8,)}[tag]
        if bits not in allowed:
            raise UnsupportedAudio(f"unsupported WAV encoding: {bits}-bit {_WAVE_TAGS[tag]}")
        expected_align = channels * bits // 8
        if align != expected_align:
            raise UnsupportedAudio(
                f"malformed WAV: block align {align} does not match {channels} channel(s) of "
                f"{bits}-bit samples ({expected_align})"
            )
        if tag == 1:
            codec = "pcm_u8" if bits == 8 else f"pcm_s{bits}le"
        else:
            codec = {3: f"pcm_f{bits}le", 6: "alaw", 7: "mulaw"}[tag]
        return _WavFmt(codec, channels, rate, align, 1, byte_rate)
    if tag == 0x31:
        samples_per_block = 320
        if len(fmt) >= 20 and struct.unpack_from("<H", fmt, 16)[0] >= 2:
            samples_per_block = struct.unpack_from("<H", fmt, 18)[0]
        if channels != 1 or align != 65 or samples_per_block != 320:
            raise UnsupportedAudio(
                f"unsupported GSM 6.10 WAV layout: {channels} channel(s), block align {align}, "
                f"{samples_per_block} samples per block (expected mono, 65, 320)"
            )
        return _WavFmt("gsm", channels, rate, align, samples_per_block, byte_rate)
    raise UnsupportedAudio(
        f"unsupported WAV encoding: {_tag_name(tag)} (supported: PCM, float, A-law, mu-law, GSM 6.10)"
    )


def _probe_wav(head: bytes, total_size: int) -> AudioInfo:
    pos = 12
    fmt: _WavFmt | None = None
    while True:
        if pos + 8 > total_size:
            if pos < total_size:
                raise UnsupportedAudio("truncated WAV: file ends inside a chunk header")
            what = "data" if fmt else "fmt"
            raise UnsupportedAudio(f"truncated or malformed WAV: no {what} chunk")
        if pos + 8 > len(head):
            raise UnsupportedAudio(f"malformed WAV: no data chunk within the first {len(head)} bytes")
        cid = head[pos : pos + 4]
        (size,) = struct.unpack_from("<I", head, pos + 4)
        if not all(0x20 <= c <= 0x7E for c in cid):
            raise UnsupportedAudio(f"malformed WAV: unreadable chunk id at offset {pos}")
        body = pos + 8
        if cid == b"fmt ":
            if fmt is not None:
                raise UnsupportedAudio("malformed WAV: two fmt chunks")
            if size < 16:
                raise UnsupportedAudio(f"malformed WAV: fmt chunk is {size} bytes (at least 16 needed)")
            if body + size > total_size:
                raise UnsupportedAudio(
                    f"truncated WAV: fmt chunk declares {size} bytes but file has {total_size - body}"
                )
            if body + size > len(head):
                raise UnsupportedAudio(f"malformed WAV: fmt chunk of {size} bytes is implausibly large")
            fmt = _parse_wav_fmt(head[body : body + size])
        elif cid == b"data":
            if fmt is None:
                raise UnsupportedAudio("malformed WAV: data chunk before the fmt chunk")
            return _wav_info(fmt, body, size, total_size)
        pos = body + size + (size & 1)  # chunks are padded to an even length


# Bytes allowed after a WAV's data chunk (the LIST and id3 chunks some recorders append).
MAX_WAV_TRAILER_BYTES = 64 * 1024


def _wav_info(fmt: _WavFmt, body: int, size: int, total_size: int) -> AudioInfo:
    available = total_size - body
    warnings: list[str] = []
    if size in (0, 0xFFFFFFFF) and available > 0:
        # Recorder stopped before it wrote the final sizes (Asterisk writes them on close).
        warnings.append(
            f"WAV header was not finalised (data size {size:#x}); duration estimated from the file size"
        )
        size = available
    elif size > available:
        raise UnsupportedAudio(f"truncated WAV: data chunk declares {size} bytes but file has {available}")
    elif available - size - (size & 1) > MAX_WAV_TRAILER_BYTES:
        # Metadata chunks (LIST, id3) may follow the samples, but not megabytes the header does not count:
        # they would be stored, and served, as part of a recording whose duration says otherwise.
        raise UnsupportedAudio(f"malformed WAV: {available - size} bytes follow the {size}-byte data chunk "
                               "(the header does not describe the file)")
    if size < fmt.block_align:
        raise UnsupportedAudio("empty WAV: the data chunk holds no audio samples")
    expected = round(fmt.byte_rate)
    if fmt.declared_byte_rate != expected:
        warnings.append(f"WAV header byte rate {fmt.declared_byte_rate} corrected to {expected}")
    blocks = size // fmt.block_align
    duration = blocks * fmt.samples_per_block / fmt.sample_rate
    return AudioInfo(
        "wav", "audio/wav", duration, fmt.codec, fmt.sample_rate, fmt.channels, tuple(warnings)
    )


# ----------------------------------------------------------------------------------------------
# MP3

_MPEG_BITRATES_KBPS = {
    # (version is MPEG-1, layer): table indexed by the 4-bit bitrate index (0 = free, 15 = bad)
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_MPEG_VERSION_NAME = {3: "MPEG-1", 2: "MPEG-2", 0: "MPEG-2.5"}


@dataclass(frozen=True)
class _MpegFrame:
    version: int  # 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    bitrate: int  # bits per second
    sample_rate: int
    channels: int
    length: int  # bytes, header included
    samples: int  # per frame

    @property
    def side_info(self) -> int:
        if self.version == 3:
            return 17 if self.channels == 1 else 32
        return 9 if self.channels == 1 else 17


def _mpeg_frame(buf: bytes, pos: int) -> _MpegFrame | str:
    """Parse the 4-byte frame header at ``pos``; a string says why it is not a Layer III header."""
    if pos + 4 > len(buf):
        return "file ends inside the frame header"
    (h,) = struct.unpack_from(">I", buf, pos)
    if h >> 21 != 0x7FF:
        return "no frame sync"
    version = (h >> 19) & 3
    layer_bits = (h >> 17) & 3
    if layer_bits == 0:
        return "AAC (ADTS) audio, which is not supported"
    if version == 1:
        return "reserved MPEG version"
    layer = 4 - layer_bits
    if layer != 3:
        return f"{_MPEG_VERSION_NAME[version]} Layer {'I' * layer} audio, which is not supported"
    bitrate_index = (h >> 12) & 0xF
    if bitrate_index == 0:
        return "free-format bitrate, which is not supported"
    if bitrate_index == 15:
        return "invalid bitrate index"
    rate_index = (h >> 10) & 3
    if rate_index == 3:
        return "invalid sample rate index"
    padding = (h >> 9) & 1
    channels = 1 if (h >> 6) & 3 == 3 else 2
    if (h & 3) == 2:
        return "invalid emphasis"
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES_KBPS[(mpeg1, layer)][bitrate_index] * 1000
    sample_rate = _MPEG_RATES[version][rate_index]
    samples = 1152 if mpeg1 else 576
    length = samples // 8 * bitrate // sample_rate + padding
    return _MpegFrame(version, bitrate, sample_rate, channels, length, samples)


def _probe_mp3(head: bytes, total_size: int, end: bytes, whole: bool) -> AudioInfo:
    pos = 0
    if head[:3] == b"ID3":
        if total_size < 10:
            raise UnsupportedAudio("truncated MP3: file ends inside the ID3 tag header")
        major, minor, flags = head[3], head[4], head[5]
        size_bytes = head[6:10]
        if major not in (2, 3, 4) or minor == 0xFF or any(b & 0x80 for b in size_bytes):
            raise UnsupportedAudio("malformed MP3: invalid ID3v2 tag header")
        tag_size = 0
        for b in size_bytes:
            tag_size = (tag_size << 7) | b
        pos = 10 + tag_size + (10 if flags & 0x10 else 0)
        if pos >= total_size:
            raise UnsupportedAudio("not an audio file: ID3 tag without any MPEG audio")
        if pos + 4 > len(head):
            raise UnsupportedAudio(
                f"unsupported MP3: ID3 tag of {pos} bytes (embedded pictures?) hides the first audio frame"
            )
        # Some writers pad beyond the declared tag size with zero bytes.
        limit = min(len(head), pos + 4096)
        while pos < limit and head[pos] == 0:
            pos += 1
        if pos >= total_size:
            raise UnsupportedAudio("not an audio file: ID3 tag without any MPEG audio")
    frame = _mpeg_frame(head, pos)
    if isinstance(frame, str):
        raise UnsupportedAudio(f"not a valid MP3: no MPEG audio frame header at offset {pos} ({frame})")
    nxt = pos + frame.length
    if nxt > total_size:
        raise UnsupportedAudio(
            f"truncated MP3: first frame needs {frame.length} bytes but file has {total_size - pos}"
        )
    if nxt + 4 <= len(head):
        second = _mpeg_frame(head, nxt)
        same_stream = (
            isinstance(second, _MpegFrame)
            and second.version == frame.version
            and second.sample_rate == frame.sample_rate
        )
        trailer = head[nxt : nxt + 3] == b"TAG" and nxt + 128 == total_size
        if not (same_stream or trailer):
            raise UnsupportedAudio(
                f"not a valid MP3: the frame header at offset {pos} is not followed by another frame"
            )

    duration = None
    for offset in (4 + frame.side_info, 4 + frame.side_info + 2):  # +2: frames with a CRC
        at = pos + offset
        if head[at : at + 4] in (b"Xing", b"Info") and at + 12 <= len(head):
            (flags,) = struct.unpack_from(">I", head, at + 4)
            if flags & 1:
                (frames,) = struct.unpack_from(">I", head, at + 8)
                if frames:
                    duration = frames * frame.samples / frame.sample_rate
            break
    at = pos + 4 + 32
    if duration is None and head[at : at + 4] == b"VBRI" and at + 18 <= len(head):
        (frames,) = struct.unpack_from(">I", head, at + 14)
        if frames:
            duration = frames * frame.samples / frame.sample_rate
    if duration is None:
        audio_bytes = total_size - pos
        if len(end) >= 128 and end[-128:-125] == b"TAG":
            audio_bytes -= 128
        duration = max(audio_bytes, 0) * 8 / frame.bitrate
    return AudioInfo("mp3", "audio/mpeg", duration, "mp3", frame.sample_rate, frame.channels)


# ----------------------------------------------------------------------------------------------
# Ogg


def _ogg_crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return tuple(table)


_OGG_CRC = _ogg_crc_table()


def _ogg_crc(data: bytes) -> int:
    crc = 0
    table = _OGG_CRC
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ b]
    return crc


@dataclass(frozen=True)
class _OggPage:
    flags: int
    granule: int  # signed; -1 means no packet ends on this page
    serial: int
    segments: bytes
    payload: bytes


def _ogg_page(buf: bytes, pos: int) -> _OggPage | str:
    """Parse a complete page at ``pos``; a string says why it is not one."""
    if buf[pos : pos + 4] != b"OggS":
        return "no OggS capture pattern"
    if pos + 27 > len(buf):
        return "page header is cut off"
    version, flags, granule, serial, _seq, crc, nsegs = struct.unpack_from("<BBqIIIB", buf, pos + 4)
    if version != 0:
        return f"unknown Ogg version {version}"
    seg_end = pos + 27 + nsegs
    if seg_end > len(buf):
        return "segment table is cut off"
    segments = buf[pos + 27 : seg_end]
    page_end = seg_end + sum(segments)
    if page_end > len(buf):
        return "page is cut off"
    page = bytearray(buf[pos:page_end])
    page[22:26] = b"\x00\x00\x00\x00"
    if _ogg_crc(bytes(page)) != crc:
        return "page checksum does not match"
    return _OggPage(flags, granule, serial, segments, buf[seg_end:page_end])


def _probe_ogg(head: bytes, total_size: int, end: bytes, whole: bool) -> AudioInfo:
    first = _ogg_page(head, 0)
    if isinstance(first, str):
        if whole and "cut off" in first:
            raise UnsupportedAudio(f"truncated Ogg: the file ends inside its first page ({first})")
        raise UnsupportedAudio(f"malformed Ogg: first page unreadable ({first})")
    if not first.flags & 0x02:
        raise UnsupportedAudio("malformed Ogg: first page does not begin a stream")
    # First packet: lacing values up to and including the first one below 255.
    packet_len = 0
    for lace in first.segments:
        packet_len += lace
        if lace < 255:
            break
    packet = first.payload[:packet_len]
    codec, rate, channels, pre_skip = _ogg_codec(packet)

    if not whole and not end:
        raise ValueError("probe() needs tail= (the last bytes of the file) for the duration of an Ogg file")
    warnings: list[str] = []
    last = None
    stop = len(end)
    while True:
        idx = end.rfind(b"OggS", 0, stop)
        if idx < 0:
            break
        stop = idx + 3
        page = _ogg_page(end, idx)
        if isinstance(page, _OggPage) and page.serial == first.serial and page.granule != -1:
            last = page
            break
    if last is None:
        raise UnsupportedAudio("malformed Ogg: no intact page with a position at the end of the file")
    if last.granule < 0:
        raise UnsupportedAudio("malformed Ogg: negative granule position")
    if not last.flags & 0x04:
        warnings.append("Ogg stream has no end-of-stream page; the recording may be truncated")
    if codec == "opus":
        duration = max(last.granule - pre_skip, 0) / 48000
    else:
        duration = last.granule / rate
    return AudioInfo("ogg", "audio/ogg", duration, codec, rate, channels, tuple(warnings))


def _ogg_codec(packet: bytes) -> tuple[str, int, int, int]:
    """(codec, sample_rate, channels, pre_skip) from an identification header packet."""
    if packet[:7] == b"\x01vorbis":
        if len(packet) < 30:
            raise UnsupportedAudio("malformed Ogg Vorbis: identification header too short")
        version, channels, rate = struct.unpack_from("<IBI", packet, 7)
        if version != 0 or channels == 0 or rate == 0 or not packet[29] & 1:
            raise UnsupportedAudio("malformed Ogg Vorbis: invalid identification header")
        return "vorbis", rate, channels, 0
    if packet[:8] == b"OpusHead":
        if len(packet) < 19:
            raise UnsupportedAudio("malformed Ogg Opus: identification header too short")
        version, channels, pre_skip, input_rate = struct.unpack_from("<BBHI", packet, 8)
        if version >> 4 != 0 or channels == 0:
            raise UnsupportedAudio("unsupported Ogg Opus: unknown header version or no channels")
        # Opus always decodes at 48 kHz; input_rate is informational only.
        return "opus", 48000, channels, pre_skip
    if packet[:8] == b"Speex   ":
        if len(packet) < 52:
            raise UnsupportedAudio("malformed Ogg Speex: header too short")
        (rate,) = struct.unpack_from("<i", packet, 36)
        (channels,) = struct.unpack_from("<i", packet, 48)
        if not 1000 <= rate <= 48000 or channels not in (1, 2):
            raise UnsupportedAudio("malformed Ogg Speex: invalid sample rate or channels")
        return "speex", rate, channels, 0
    if packet[:5] == b"\x7fFLAC":
        raise UnsupportedAudio(f"unsupported audio format: FLAC in Ogg (supported: {SUPPORTED})")
    if packet[:7] in (b"\x80theora", b"\x01video\x00"):
        raise UnsupportedAudio("not an audio recording: Ogg video stream")
    raise UnsupportedAudio(f"unsupported Ogg codec (supported: {SUPPORTED})")


# ----------------------------------------------------------------------------------------------
# Raw GSM 06.10

_GSM_FRAME = 33
_GSM_CHECK_FRAMES = 16


def _probe_gsm(head: bytes, total_size: int, end: bytes) -> AudioInfo:
    if total_size % _GSM_FRAME:
        raise UnsupportedAudio(
            f"not a recognised audio format (raw GSM needs a size that is a multiple of 33 bytes; "
            f"this file has {total_size})"
        )
    frames = total_size // _GSM_FRAME
    for k in range(min(frames, _GSM_CHECK_FRAMES, len(head) // _GSM_FRAME)):
        if head[k * _GSM_FRAME] >> 4 != 0xD:
            raise UnsupportedAudio(f"not a recognised audio format (raw GSM frame {k + 1} has a bad signature)")
    if end:
        start = total_size - len(end)  # file offset of end[0]
        first = (-start) % _GSM_FRAME
        offsets = range(first, len(end) - _GSM_FRAME + 1, _GSM_FRAME)
        for off in list(offsets)[-_GSM_CHECK_FRAMES:]:
            if end[off] >> 4 != 0xD:
                raise UnsupportedAudio(
                    "corrupt raw GSM: a frame near the end of the file has a bad signature"
                )
    return AudioInfo("gsm", "audio/x-gsm", frames * 0.02, "gsm", 8000, 1)
