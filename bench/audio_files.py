"""Large WAV files of noise for benchmarks, written in chunks (never held whole in memory)."""
import os
import struct


def write_wav(path, size):
    """A mono 16-bit 8 kHz PCM WAV of about `size` bytes of random samples."""
    data_size = size - 44
    header = b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", data_size)
    with open(path, "wb") as out:
        out.write(header)
        remaining = data_size
        while remaining:
            chunk = min(remaining, 1 << 20)
            out.write(os.urandom(chunk))
            remaining -= chunk
    return path
