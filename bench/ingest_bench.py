"""Ingest figures: file to encrypted blob against AES-GCM encryption, and memory at two sizes."""
import itertools
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.audio_files import write_wav
from bench.demoapp import make_demo_app
from bench.timing import Row, mib_per_s, peak_memory, side_by_side


_CALLS = itertools.count()


def _aes_reference(path):
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)

    def run():
        with open(path, "rb") as source:
            while chunk := source.read(65536):
                aead.encrypt(nonce, chunk, None)

    return run


def _copy_reference(path, directory):
    """A plain copy of the same bytes into the same storage, fsynced like a blob: the disk's limit."""
    target = os.path.join(directory, "copy-reference.bin")

    def run():
        with open(path, "rb") as source, open(target, "wb") as out:
            while chunk := source.read(65536):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.unlink(target)

    return run


def _ingest(app, path):
    import datetime as dt

    from callrec_plugin.ingest import ingest_audio

    def run():
        with app.app_context(), open(path, "rb") as source:
            ingest_audio(source, practice_ref="p1", started_at=dt.datetime.now(dt.timezone.utc), direction="inbound",
                         from_number="+447700900100", to_number="201", source="bench",
                         source_ref=f"{os.path.basename(path)}-{next(_CALLS)}")  # never a duplicate

    return run


def run(small=10 * 2**20, large=200 * 2**20):
    app, state = make_demo_app()
    small_path = write_wav(os.path.join(state, "small.wav"), small)
    large_path = write_wav(os.path.join(state, "large.wav"), large)
    ours, aes = side_by_side(_ingest(app, large_path), _aes_reference(large_path), repeat=1, rounds=3)
    rows = [Row("ingest, file to encrypted blob", mib_per_s(large, ours), f"AES-GCM {mib_per_s(large, aes)}",
                aes / ours, "≥ 0.40", aes / ours >= 0.4)]
    storage = app.config["CALLREC_STORAGE_DIR"]
    ours, copy = side_by_side(_ingest(app, large_path), _copy_reference(large_path, storage), repeat=1, rounds=3)
    rows.append(Row("  (context) ingest vs a plain fsynced copy", mib_per_s(large, ours),
                    f"copy {mib_per_s(large, copy)}", copy / ours, "(the disk's limit)", True))
    small_peak = peak_memory(_ingest(app, small_path))
    large_peak = peak_memory(_ingest(app, large_path))
    ratio = large_peak / small_peak
    rows.append(Row(f"ingest peak memory, {large >> 20} MiB vs {small >> 20} MiB",
                    f"{large_peak / 2**10:,.0f} KiB", f"{small_peak / 2**10:,.0f} KiB", ratio, "≈ 1 (≤ 1.5)",
                    ratio <= 1.5))
    return rows
