"""Audio bytes for tests, made with the standard library."""
import io
import math
import struct
import wave


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
    return buffer.getvalue()
