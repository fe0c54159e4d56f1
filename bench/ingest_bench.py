"""Ingest figures: file to encrypted blob against AES-GCM encryption, and memory at two sizes.

The bar (DESIGN.md §12) is about the encryption pipeline, so the primary row keeps everything (the audio
files, the database, the blobs) on tmpfs when there is one (CALLREC_BENCH_DIR overrides it), as the export
figure does: what is left is reading, encrypting and writing. A context row repeats the ingest into storage
on the real disk, fsynced, against a plain fsynced copy of the same bytes there: the disk's limit.
"""
import datetime as dt
import itertools
import os
import shutil
import tempfile

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench import floors
from bench.audio_files import write_wav
from bench.demoapp import demo_app, scratch_base, where
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
    from callrec_plugin.ingest import ingest_audio

    def run():
        with app.app_context(), open(path, "rb") as source:
            ingest_audio(source, practice_ref="p1", started_at=dt.datetime.now(dt.timezone.utc), direction="inbound",
                         from_number="+447700900100", to_number="201", source="bench",
                         source_ref=f"{os.path.basename(path)}-{next(_CALLS)}")  # never a duplicate

    return run


def _empty(directory):
    """Delete the blobs written so far (between measurements, never inside one): see timing.side_by_side."""
    shutil.rmtree(directory, ignore_errors=True)


def run(small=10 * 2**20, large=200 * 2**20):
    with demo_app(base=scratch_base()) as (app, state):
        return _run(app, state, small, large)


def _run(app, state, small, large):
    small_path = write_wav(os.path.join(state, "small.wav"), small)
    large_path = write_wav(os.path.join(state, "large.wav"), large)
    storage = app.config["CALLREC_STORAGE_DIR"]
    _ingest(app, large_path)()  # warm the code paths and the page cache
    _empty(storage)
    ours, aes = side_by_side(_ingest(app, large_path), _aes_reference(large_path), repeat=1, rounds=5,
                             cleanup=lambda: _empty(storage))
    rows = [Row(f"ingest, file to encrypted blob ({where(storage)})", mib_per_s(large, ours),
                f"AES-GCM {mib_per_s(large, aes)}", aes / ours, "≥ 0.40", aes / ours >= 0.4)]

    os.makedirs(storage, exist_ok=True)
    read, enc, write = floors.read(large_path), floors.aes_gcm_encrypt(), floors.write(storage)
    floor = floors.one_core(read, enc, write)
    rows.append(Row(f"  (context) ingest floor, one core: read {read / 2**20:,.0f}, AES-GCM {enc / 2**20:,.0f}, "
                    f"write a new file {write / 2**20:,.0f} MiB/s", f"{floor / 2**20:,.0f} MiB/s",
                    f"AES-GCM {mib_per_s(large, aes)}", floor / (large / aes), "(the most one core can do)", True))

    disk = tempfile.mkdtemp(prefix="callrec-bench-disk-")  # the default temporary directory: a real disk
    try:
        if where(disk) == "disk":
            app.config["CALLREC_STORAGE_DIR"] = os.path.join(disk, "storage")
            os.makedirs(app.config["CALLREC_STORAGE_DIR"])
            ours, copy = side_by_side(_ingest(app, large_path), _copy_reference(large_path, disk), repeat=1, rounds=3,
                                      cleanup=lambda: _empty(app.config["CALLREC_STORAGE_DIR"]))
            rows.append(Row("  (context) ingest into storage on disk, fsynced, vs a plain fsynced copy there",
                            mib_per_s(large, ours), f"copy {mib_per_s(large, copy)}", copy / ours,
                            "(the disk's limit)", True))
    finally:
        app.config["CALLREC_STORAGE_DIR"] = storage
        shutil.rmtree(disk, ignore_errors=True)

    small_peak = peak_memory(_ingest(app, small_path))
    large_peak = peak_memory(_ingest(app, large_path))
    _empty(storage)
    ratio = large_peak / small_peak
    rows.append(Row(f"ingest peak memory, {large >> 20} MiB vs {small >> 20} MiB",
                    f"{large_peak / 2**10:,.0f} KiB", f"{small_peak / 2**10:,.0f} KiB", ratio, "≈ 1 (≤ 1.5)",
                    ratio <= 1.5))
    return rows
