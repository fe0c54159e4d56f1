"""Silence time ranges of a recording exactly, while it streams: the card details never reach storage.

A phone system reports when recording was paused (a card was being read out), or owner and manager
mark a range after the call; either way the audio in those ranges is replaced before encryption.
Only formats whose audio units are independent can be silenced exactly:

``PCM, IEEE float, A-law and µ-law WAV``  sample-accurate. A range covers every sample whose
    interval it touches: samples ``floor(start × rate)`` to ``ceil(end × rate)`` (exclusive), each
    channel of those sample frames, replaced by the codec's zero (0 for signed PCM and float, 0x80
    for 8-bit PCM, 0xD5 for A-law, 0xFF for µ-law: G.711's codes for 0).
``raw GSM 06.10`` (Asterisk's ``.gsm``: 33-byte frames of 160 samples, 20 ms)  frame-accurate:
    the range is rounded outward to whole frames, each replaced by Asterisk's silent GSM frame
    (``gsm_silence`` in ``formats/format_gsm.c``).
``WAV49`` (Microsoft GSM in WAV, Asterisk's ``format_wav_gsm.c``: 65-byte blocks of two 20 ms
    frames, packed least-significant bit first, the first frame ending in the low nibble of byte 32)
    frame-accurate as well: a range that starts or ends inside a block silences only that block's
    half, nibble-exact, from Asterisk's ``msgsm_silence`` block (two silent frames).

MP3 and Ogg (Vorbis, Opus, Speex) are refused (:class:`SilencingRefused`): their frames overlap and
borrow bits from their neighbours, so no byte range holds exactly one stretch of time and a
"redaction" would leave audible remnants. The reason says what to change on the phone system.

Everything outside the silenced units is left byte for byte as it was (headers included).
"""
from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from callrec_plugin.ingest.audio import HEAD_BYTES, TAIL_BYTES, UnsupportedAudio, _parse_wav_fmt, probe

# Asterisk formats/format_gsm.c, "silent gsm frame" (33 bytes).
GSM_SILENCE = bytes((
    0xD8, 0x20, 0xA2, 0xE1, 0x5A, 0x50, 0x00, 0x49, 0x24, 0x92, 0x49, 0x24, 0x50, 0x00, 0x49,
    0x24, 0x92, 0x49, 0x24, 0x50, 0x00, 0x49, 0x24, 0x92, 0x49, 0x24, 0x50, 0x00, 0x49, 0x24,
    0x92, 0x49, 0x24,
))
# Asterisk formats/format_wav_gsm.c, msgsm_silence (65 bytes: two silent frames, MS packing).
MSGSM_SILENCE = bytes((
    0x48, 0x17, 0xD6, 0x84, 0x02, 0x80, 0x24, 0x49, 0x92, 0x24, 0x89, 0x02, 0x80, 0x24, 0x49,
    0x92, 0x24, 0x89, 0x02, 0x80, 0x24, 0x49, 0x92, 0x24, 0x89, 0x02, 0x80, 0x24, 0x49, 0x92,
    0x24, 0x09, 0x82, 0x74, 0x61, 0x4D, 0x28, 0x00, 0x48, 0x92, 0x24, 0x49, 0x92, 0x28, 0x00,
    0x48, 0x92, 0x24, 0x49, 0x92, 0x28, 0x00, 0x48, 0x92, 0x24, 0x49, 0x92, 0x28, 0x00, 0x48,
    0x92, 0x24, 0x49, 0x92, 0x00,
))
GSM_FRAME_BYTES = 33
GSM_FRAME_SAMPLES = 160
MSGSM_BLOCK_BYTES = 65
MSGSM_HALF = 32  # byte 32 of a block: low nibble ends frame 1, high nibble starts frame 2

# The codec's code for an amplitude of zero, per sample byte (G.711: A-law 0xD5, µ-law 0xFF).
_ZERO_BYTE = {"pcm_u8": b"\x80", "alaw": b"\xd5", "mulaw": b"\xff"}

PBX_ADVICE = ("Set the phone system to record in WAV (FreePBX: Settings > Advanced Settings > "
              "Call Recording Format = wav; Asterisk MixMonitor: a .wav, .WAV or .gsm file name), "
              "so callrec can silence card payments exactly.")
REFUSALS = {
    "mp3": ("MP3 recordings cannot be silenced exactly: every MP3 frame borrows bits from the frames "
            "before it and the decoder overlaps neighbouring frames, so a silenced range would leave "
            "audible remnants at its edges. " + PBX_ADVICE),
    "ogg": ("Ogg (Vorbis, Opus, Speex) recordings cannot be silenced exactly: each packet is overlapped "
            "with the next when decoded, so a silenced range would leave audible remnants at its edges. "
            + PBX_ADVICE),
}
MAX_INTERVALS = 200


class SilencingRefused(Exception):
    """This recording cannot be silenced exactly; ``reason`` says why and what to change."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Layout:
    """Where the audio units of a file are and what a silent unit is."""

    kind: str  # "pcm" (sample frames), "gsm" (raw 33-byte frames) or "wav49" (65-byte blocks)
    data_start: int  # file offset of the first audio byte
    data_stop: int  # file offset after the last audio byte
    unit_bytes: int  # bytes of one silenceable unit (a sample frame, a GSM frame, a WAV49 block)
    silent_unit: bytes
    units_per_second: Fraction  # samples (pcm) or 20 ms frames (gsm, wav49) per second
    units: int  # how many units the file holds (wav49: frames, two per block)

    @property
    def duration(self):
        return Fraction(self.units) / self.units_per_second


@dataclass(frozen=True)
class Patch:
    """Bytes [start, stop) of the file replaced by ``pattern`` repeated from offset ``origin``;
    with ``mask`` only those bits of each byte (a WAV49 frame ends mid-byte)."""

    start: int
    stop: int
    pattern: bytes
    origin: int
    mask: int = 0xFF


@dataclass(frozen=True)
class Plan:
    layout: Layout
    ranges: tuple  # merged (first_unit, stop_unit) pairs actually silenced
    patches: tuple

    @property
    def seconds(self):
        """The silenced ranges in seconds, as floats (rounded outward for GSM and WAV49)."""
        rate = self.layout.units_per_second
        return tuple((float(first / rate), float(stop / rate)) for first, stop in self.ranges)


# -- intervals -----------------------------------------------------------------------------------


def exact_seconds(value):
    """A time in seconds as an exact fraction: 0.1 means one tenth, not the float nearest to it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal, Fraction)):
        raise ValueError(f"a time must be a number of seconds, not {value!r}")
    if isinstance(value, Fraction):
        return value
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError(f"a time must be a number of seconds, not {value!r}") from None
    if not number.is_finite():
        raise ValueError("a time must be a finite number of seconds")
    return Fraction(number)


def parse_intervals(raw):
    """``[[start, end], …]`` in seconds from the call's start -> sorted exact (start, end) pairs.

    ValueError (with a sentence for the phone system's administrator) for anything else."""
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise ValueError("silence must be a list of [start_seconds, end_seconds] pairs")
    if len(raw) > MAX_INTERVALS:
        raise ValueError(f"silence may list at most {MAX_INTERVALS} intervals")
    intervals = []
    for item in raw:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError("each silence interval must be a pair [start_seconds, end_seconds]")
        start, end = exact_seconds(item[0]), exact_seconds(item[1])
        if start < 0:
            raise ValueError("a silence interval cannot start before the call (negative seconds)")
        if end <= start:
            raise ValueError(f"a silence interval must end after it starts ({float(start)} to {float(end)})")
        intervals.append((start, end))
    return sorted(intervals)


# -- layout --------------------------------------------------------------------------------------


def _head_size_tail(fileobj):
    start = fileobj.tell()
    size = fileobj.seek(0, os.SEEK_END) - start
    fileobj.seek(start)
    head = fileobj.read(min(HEAD_BYTES, size))
    fileobj.seek(start + max(0, size - TAIL_BYTES))
    tail = fileobj.read(TAIL_BYTES)
    fileobj.seek(start)
    return head, size, tail


def layout_of(fileobj):
    """The Layout of the audio in a seekable binary file read from its current position (which it
    keeps). SilencingRefused for a format that cannot be silenced exactly or is not audio."""
    head, size, tail = _head_size_tail(fileobj)
    try:
        info = probe(head, size, tail)
    except UnsupportedAudio as exc:
        raise SilencingRefused(exc.reason) from None
    if info.format in REFUSALS:
        raise SilencingRefused(REFUSALS[info.format])
    if info.format == "gsm":
        frames = size // GSM_FRAME_BYTES
        return Layout("gsm", 0, frames * GSM_FRAME_BYTES, GSM_FRAME_BYTES, GSM_SILENCE, Fraction(50), frames)
    return _wav_layout(head, size)


def _wav_layout(head, size):
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        chunk, length = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            fmt = _parse_wav_fmt(head[body:body + length])
        elif chunk == b"data":
            break
        pos = body + length + (length & 1)
    else:  # probe() accepted the file, so this is a caller's bug, not a user's file
        raise SilencingRefused("malformed WAV: no data chunk in the header")
    available = size - body
    stop = size if length in (0, 0xFFFFFFFF) or length > available else body + length
    if fmt.codec == "gsm":
        blocks = (stop - body) // MSGSM_BLOCK_BYTES
        return Layout("wav49", body, stop, MSGSM_BLOCK_BYTES, MSGSM_SILENCE,
                      Fraction(fmt.sample_rate, GSM_FRAME_SAMPLES), 2 * blocks)
    zero = _ZERO_BYTE.get(fmt.codec, b"\x00")
    return Layout("pcm", body, stop, fmt.block_align, zero * fmt.block_align, Fraction(fmt.sample_rate),
                  (stop - body) // fmt.block_align)


# -- plan ------------------------------------------------------------------------------------------


def unit_ranges(layout, intervals):
    """Exact second intervals -> merged [first, stop) unit indices, rounded outward, clamped to the
    file. Overlapping and adjacent ranges merge; ranges wholly past the end vanish."""
    rate = layout.units_per_second
    spans = []
    for start, end in intervals:
        first, stop = math.floor(start * rate), min(math.ceil(end * rate), layout.units)
        if first < stop:
            spans.append((first, stop))
    merged = []
    for first, stop in sorted(spans):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((first, stop))
    return tuple(merged)


def _patches(layout, first, stop):
    pattern, origin, size = layout.silent_unit, layout.data_start, layout.unit_bytes
    if layout.kind != "wav49":
        end = layout.data_stop if stop == layout.units else origin + stop * size  # a torn last unit goes too
        return [Patch(origin + first * size, end, pattern, origin)]
    patches = []
    if first % 2:  # the range starts with the second frame of a block
        block = origin + (first // 2) * size
        patches += [Patch(block + MSGSM_HALF, block + MSGSM_HALF + 1, pattern, block, 0xF0),
                    Patch(block + MSGSM_HALF + 1, block + size, pattern, block)]
        first += 1
    if stop % 2 and stop - 1 >= first:  # the range ends with the first frame of a block
        block = origin + (stop // 2) * size
        patches += [Patch(block, block + MSGSM_HALF, pattern, block),
                    Patch(block + MSGSM_HALF, block + MSGSM_HALF + 1, pattern, block, 0x0F)]
        stop -= 1
    if first < stop:
        end = layout.data_stop if stop == layout.units else origin + (stop // 2) * size
        patches.append(Patch(origin + (first // 2) * size, end, pattern, origin))
    return patches


def plan(fileobj, intervals):
    """The Plan that silences ``intervals`` (exact (start, end) seconds) in this file."""
    layout = layout_of(fileobj)
    ranges = unit_ranges(layout, intervals)
    patches = [patch for first, stop in ranges for patch in _patches(layout, first, stop)]
    return Plan(layout, ranges, tuple(sorted(patches, key=lambda p: (p.start, p.mask))))


# -- applying it while streaming ---------------------------------------------------------------------


def apply(buffer, offset, patches):
    """Silence, in place, the part of the writable ``buffer`` (file bytes from ``offset``) that the
    patches cover."""
    end = offset + len(buffer)
    for patch in patches:
        if patch.stop <= offset:
            continue
        if patch.start >= end:
            break
        lo, hi = max(patch.start, offset), min(patch.stop, end)
        period = len(patch.pattern)
        phase = (lo - patch.origin) % period
        fill = (patch.pattern * ((phase + hi - lo) // period + 1))[phase:phase + hi - lo]
        if patch.mask == 0xFF:
            buffer[lo - offset:hi - offset] = fill
        else:
            keep = 0xFF ^ patch.mask
            for i, byte in enumerate(fill):
                j = lo - offset + i
                buffer[j] = (buffer[j] & keep) | (byte & patch.mask)


class SilencedReader(io.RawIOBase):
    """A read-only stream of ``source`` (positioned at the file's first byte) with the plan's
    patches applied on the way: the original bytes of a silenced range exist only in the buffer
    being filled, never in what is returned."""

    def __init__(self, source, patches):
        super().__init__()
        self._source, self._patches, self._pos = source, tuple(patches), 0
        self._readinto = getattr(source, "readinto", None)

    def readable(self):
        return True

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        if self._readinto is not None:
            n = self._readinto(view) or 0
        else:
            data = self._source.read(len(view))
            n = len(data)
            view[:n] = data
        if n:
            apply(view[:n], self._pos, self._patches)
            self._pos += n
        return n


def silenced(fileobj, plan_or_none):
    """``fileobj`` itself when there is nothing to silence, else a SilencedReader over it."""
    if plan_or_none is None or not plan_or_none.patches:
        return fileobj
    return SilencedReader(fileobj, plan_or_none.patches)
