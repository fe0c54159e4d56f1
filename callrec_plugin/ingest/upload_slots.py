"""A cap on the uploads a practice may have in flight at once (per process).

A phone system sends each call once, after it ends; a practice with far more uploads running than
it has lines is a broken or compromised client, and every upload holds a worker thread for as long
as its body takes to arrive. Taken only after the signature is checked, so a stranger cannot use up
a practice's slots.
"""
import threading
from collections import Counter
from contextlib import contextmanager

from callrec_plugin.state import get_state

CACHE_KEY = "ingest_upload_slots"


class NoSlot(Exception):
    pass


class UploadSlots:
    def __init__(self):
        self._lock = threading.Lock()
        self._running = Counter()

    @contextmanager
    def taken(self, practice_ref, cap):
        with self._lock:
            if self._running[practice_ref] >= cap:
                raise NoSlot(f"{cap} uploads of this practice are already in progress; retry when one ends")
            self._running[practice_ref] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[practice_ref] -= 1
                if not self._running[practice_ref]:
                    del self._running[practice_ref]

    def running(self, practice_ref):
        with self._lock:
            return self._running[practice_ref]


def slots(app=None):
    return get_state(app).cache.setdefault(CACHE_KEY, UploadSlots())
