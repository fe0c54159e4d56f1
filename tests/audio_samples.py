"""Audio bytes for tests, made with the standard library."""
import io
import math
import struct
import wave


class Clip(bytes):
    """Audio bytes with a short repr, so a failing test does not print a megabyte."""

    def __repr__(self):
        return f"<{len(self)} bytes of audio>"

    def __getitem__(self, key):
        return Clip(super().__getitem__(key)) if isinstance(key, slice) else super().__getitem__(key)


def wav_bytes(seconds=3.0, rate=8000, tone=440.0):
    """A mono 16-bit PCM WAV with a sine tone: real, playable audio."""
    frames = int(rate * seconds)
    samples = struct.pack(f"<{frames}h", *(int(8000 * math.sin(2 * math.pi * tone * i / rate)) for i in range(frames)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return Clip(buffer.getvalue())
