"""A SHA-256 of a stream computed on a second thread, off the stream's critical path.

An export's build already hashes every audio byte once for SHA256SUMS; hashing the whole ZIP again on
the same thread would make the build pay SHA-256 twice per byte. ``hashlib`` releases the GIL while it
hashes more than 2 KiB, so a second thread fed the same pieces hashes on another core while the first
decrypts, checksums and encrypts. The queue between them is bounded: memory stays flat whatever the
stream's size, and a hasher that falls behind slows the producer instead of piling pieces up.
"""
from __future__ import annotations

import hashlib
import queue
import threading

_DONE = object()


class BackgroundSHA256:
    """``pieces = hasher.wrap(pieces)`` passes an iterator of bytes through unchanged while a second
    thread hashes it; ``hexdigest()`` (after the iterator is exhausted) waits for the thread."""

    def __init__(self, depth: int = 8):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._hash = hashlib.sha256()
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="callrec-sha256", daemon=True)
        self._thread.start()

    def _run(self):
        update = self._hash.update
        try:
            while True:
                piece = self._queue.get()
                if piece is _DONE:
                    return
                update(piece)
        except BaseException as error:  # pragma: no cover - hashlib does not fail on bytes
            self._error = error
            while self._queue.get() is not _DONE:  # keep draining so the producer never blocks
                pass

    def wrap(self, pieces):
        """Yield every piece of ``pieces``, handing each to the hashing thread first. Pieces must not
        change afterwards (bytes do not; a view of a reused buffer is copied)."""
        put = self._queue.put
        try:
            for piece in pieces:
                if not isinstance(piece, bytes):
                    piece = bytes(piece)
                if piece:
                    put(piece)
                yield piece
        finally:
            self.close()  # also when the consumer stops early or the producer raises

    def close(self):
        """End the thread (idempotent); call it in a ``finally`` in case the wrapped iterator was
        never started."""
        if not self._finished:
            self._finished = True
            self._queue.put(_DONE)

    def hexdigest(self) -> str:
        self.close()
        self._thread.join()
        if self._error is not None:  # pragma: no cover
            raise self._error
        return self._hash.hexdigest()
