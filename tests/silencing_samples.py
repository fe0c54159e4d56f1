"""Recordings in every format callrec can silence, with random (so recognisable) audio, for tests.

Each maker returns (file bytes, Layout-independent facts the tests check against): the data offset,
the bytes of one unit and how many units per second, worked out here from the format's definition,
not by callrec's parser.
"""
import os
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    data_start: int
    unit_bytes: int  # a sample frame, a GSM frame (33) or a WAV49 block (65)
    units_per_second: int  # samples, or 20 ms frames for GSM and WAV49
    silent_unit: bytes
    kind: str  # pcm, gsm, wav49


def _riff(fmt_chunk, data, extra_chunks=b""):
    body = b"WAVE" + fmt_chunk + extra_chunks + b"data" + struct.pack("<I", len(data)) + data
    if len(data) % 2:
        body += b"\x00"
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _fmt(tag, channels, rate, bits, align, extra=b""):
    payload = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits) + extra
    return b"fmt " + struct.pack("<I", len(payload)) + payload


def pcm_wav(seconds=0.5, rate=8000, channels=1, bits=16, tag=1, name=None):
    """PCM (tag 1), IEEE float (3), A-law (6) or µ-law (7) WAV of random samples."""
    align = channels * bits // 8
    frames = int(rate * seconds)
    data = os.urandom(frames * align)
    zero = {(1, 8): b"\x80", (6, 8): b"\xd5", (7, 8): b"\xff"}.get((tag, bits), b"\x00")
    header_fmt = _fmt(tag, channels, rate, bits, align, b"\x00\x00" if tag != 1 else b"")
    blob = _riff(header_fmt, data, extra_chunks=b"LIST" + struct.pack("<I", 4) + b"INFO")
    start = len(blob) - len(data) - (len(data) % 2)
    kind = {1: "pcm", 3: "float", 6: "alaw", 7: "mulaw"}[tag]
    return Sample(name or f"{kind}{bits}x{channels}@{rate}", blob, start, align, rate, zero * align, "pcm")


def raw_gsm(seconds=0.5):
    frames = int(seconds * 50)
    data = bytearray(os.urandom(frames * 33))
    for k in range(frames):
        data[k * 33] = 0xD0 | (data[k * 33] & 0x0F)  # the GSM 06.10 frame signature
    from callrec_plugin.silencing import GSM_SILENCE

    return Sample("gsm", bytes(data), 0, 33, 50, GSM_SILENCE, "gsm")


def wav49(seconds=0.52):
    """Microsoft GSM WAV laid out as Asterisk's format_wav_gsm.c writes it (60-byte header)."""
    from callrec_plugin.silencing import MSGSM_SILENCE

    blocks = int(seconds * 25)
    data = os.urandom(blocks * 65)
    fmt = _fmt(0x31, 1, 8000, 0, 65, struct.pack("<HH", 2, 320))
    fact = b"fact" + struct.pack("<II", 4, blocks * 320)
    blob = _riff(fmt, data, extra_chunks=fact)
    assert blob.index(b"data") + 8 == 60
    return Sample("wav49", blob, 60, 65, 50, MSGSM_SILENCE, "wav49")


def all_samples():
    return [pcm_wav(), pcm_wav(bits=8, name="pcm_u8"), pcm_wav(bits=24, channels=2), pcm_wav(tag=3, bits=32),
            pcm_wav(tag=6, bits=8), pcm_wav(tag=7, bits=8), pcm_wav(channels=2, rate=11025), raw_gsm(), wav49()]
