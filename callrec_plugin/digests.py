"""SHA-256 digests of a stream and of named parts of it, made on a second thread.

An export's build needs two digests of its audio bytes: each file's (SHA256SUMS, the manifest) and the
whole ZIP's. Made on the build's own thread, that is two SHA-256 passes per byte on the critical path
(decrypt, CRC-32, re-encrypt and write are the rest). ``hashlib`` releases the GIL while it hashes more
than 2 KiB, so a second thread fed the same pieces makes both digests on another core while the first
thread decrypts, checksums and encrypts: the build's own thread hashes nothing.

Pieces cross to the thread in batches of about BATCH bytes (512 KiB): one hand-over per eight 64 KiB
segments, so the two threads wait less often for each other's GIL. The queue between them is bounded
(``depth`` batches): memory stays flat whatever the stream's size (about 2 MiB at most in flight), and
a hasher that falls behind slows the producer instead of piling pieces up.
"""
from __future__ import annotations

import hashlib
import queue
import threading

_DONE = object()
_END_PART = object()
_SYNC = object()
BATCH = 1 << 19


class BackgroundDigests:
    """``feed(piece, part)`` every piece of a stream, in order; ``end_part(part)`` after a part's last
    piece. ``part_digests()`` waits for the parts ended so far; ``hexdigest()`` (after the last piece)
    is the whole stream's. ``close()`` ends the thread; call it in a ``finally``."""

    def __init__(self, depth: int = 2, batch: int = BATCH):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._batch_limit = batch
        self._batch: list[bytes] = []
        self._batch_part = None
        self._batch_size = 0
        self._whole = hashlib.sha256()
        self._open_parts: dict = {}  # the thread's: part -> its hash so far
        self._ended: dict = {}  # the thread's: part -> hex digest
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="callrec-sha256", daemon=True)
        self._thread.start()

    # -- the producer's side ----------------------------------------------------------------------------

    def feed(self, piece, part=None):
        """Count ``piece`` in the whole stream's digest and, with ``part``, in that part's. A view of a
        buffer the producer reuses is copied first (bytes are kept as they are)."""
        if not isinstance(piece, bytes):
            piece = bytes(piece)
        if not piece:
            return
        if part != self._batch_part:
            self._flush()
            self._batch_part = part
        self._batch.append(piece)
        self._batch_size += len(piece)
        if self._batch_size >= self._batch_limit:
            self._flush()

    def end_part(self, part):
        self._flush()
        self._queue.put((_END_PART, part))

    def part_digests(self) -> dict:
        """{part: hex digest} of every part ended so far, once the thread has hashed them."""
        self._flush()
        hashed = threading.Event()
        self._queue.put((_SYNC, hashed))
        hashed.wait()
        self._raise_if_failed()
        return dict(self._ended)

    def hexdigest(self) -> str:
        self.close()
        self._thread.join()
        self._raise_if_failed()
        return self._whole.hexdigest()

    def close(self):
        """End the thread (idempotent)."""
        if not self._finished:
            self._flush()
            self._finished = True
            self._queue.put((_DONE, None))

    def _flush(self):
        if self._batch:
            data = self._batch[0] if len(self._batch) == 1 else b"".join(self._batch)
            self._queue.put((data, self._batch_part))
        self._batch, self._batch_size = [], 0

    def _raise_if_failed(self):
        if self._error is not None:  # pragma: no cover
            raise self._error

    # -- the hashing thread -----------------------------------------------------------------------------

    def _run(self):
        try:
            while True:
                data, part = self._queue.get()
                if data is _DONE:
                    return
                self._handle(data, part)
        except BaseException as error:  # pragma: no cover - hashlib does not fail on bytes
            self._error = error
            self._drain()

    def _drain(self):  # pragma: no cover
        """After a failure: keep taking pieces so that the producer never blocks, and wake its waits."""
        while True:
            data, part = self._queue.get()
            if data is _DONE:
                return
            if data is _SYNC:
                part.set()

    def _handle(self, data, part):
        if data is _SYNC:
            part.set()
        elif data is _END_PART:
            self._ended[part] = self._open_parts.pop(part, hashlib.sha256()).hexdigest()
        else:
            self._whole.update(data)
            if part is not None:
                self._open_parts.setdefault(part, hashlib.sha256()).update(data)
