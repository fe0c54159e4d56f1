"""Throughput of each per-byte step of ingest and export, measured alone on this machine, so a figure that
misses its bar can say what bounds it (the "floor": one core doing every step, one after another).

Each rate is the best of three, each over repeated runs lasting at least 0.2 s, on 64 KiB pieces (the CRE1
segment size, which is also what the pipelines hand around).
"""
import hashlib
import os
import time
import zlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MiB = 2**20
PIECE = 65536


def best_rate(function, volume, min_seconds=0.2, rounds=3, cleanup=None):
    """Bytes per second of ``function()`` (which handles ``volume`` bytes): best of ``rounds``, each over as many
    calls as take ``min_seconds``; ``cleanup()`` runs untimed after each call."""
    rates = []
    for _ in range(rounds):
        calls, elapsed = 0, 0.0
        while calls == 0 or elapsed < min_seconds:
            started = time.perf_counter()
            function()
            elapsed += time.perf_counter() - started
            calls += 1
            if cleanup is not None:
                cleanup()
        rates.append(volume * calls / elapsed)
    return max(rates)


def _pieces(volume):
    data = os.urandom(PIECE)
    return data, volume // PIECE


def sha256(volume=64 * MiB):
    data, count = _pieces(volume)

    def run():
        digest = hashlib.sha256()
        for _ in range(count):
            digest.update(data)
        digest.digest()

    return best_rate(run, volume)


def crc32(volume=64 * MiB):
    data, count = _pieces(volume)

    def run():
        crc = 0
        for _ in range(count):
            crc = zlib.crc32(data, crc)

    return best_rate(run, volume)


def aes_gcm_encrypt(volume=64 * MiB):
    """AES-256-GCM into a reused buffer (encrypt_into), as encrypt_stream does."""
    data, count = _pieces(volume)
    aead, nonce, out = AESGCM(os.urandom(32)), os.urandom(12), bytearray(PIECE + 16)

    def run():
        for _ in range(count):
            aead.encrypt_into(nonce, data, None, out)

    return best_rate(run, volume)


def copy(volume=64 * MiB):
    """One memory copy of each piece into a reused buffer (what re-slicing a stream into segments costs)."""
    data, count = _pieces(volume)
    buffer = memoryview(bytearray(PIECE))

    def run():
        for _ in range(count):
            buffer[:] = data

    return best_rate(run, volume)


def read(path):
    """Reading a (cached) file in 64 KiB readinto calls."""
    volume = os.path.getsize(path)
    buffer = bytearray(PIECE)

    def run():
        with open(path, "rb") as source:
            while source.readinto(buffer):
                pass

    return best_rate(run, volume)


def write(directory, volume=128 * MiB):
    """Writing a new file of ``volume`` bytes in directory (no fsync), in CRE1-segment-sized writes; deleted
    after each run, untimed."""
    data, count = os.urandom(PIECE + 16), volume // PIECE
    target = os.path.join(directory, "floor-write.bin")

    def run():
        with open(target, "wb") as out:
            for _ in range(count):
                out.write(data)

    return best_rate(run, volume, cleanup=lambda: os.unlink(target))


def one_core(*rates):
    """Throughput of one core doing every step in turn: 1 / sum(1 / rate)."""
    return 1 / sum(1 / rate for rate in rates)
