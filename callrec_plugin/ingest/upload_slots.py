"""A cap on the uploads a practice may have in flight at once.

A phone system sends each call once, after it ends; a practice with far more uploads running than
it has lines is a broken or compromised client, and every upload holds a worker thread for as long
as its body takes to arrive. Taken only after the signature is checked, so a stranger cannot use up
a practice's slots.

With ``CALLREC_REDIS_URL`` set the slots are shared by every web process (gunicorn runs several, often
on several machines): a Redis sorted set per practice holds one member per upload in flight, scored by
when it began. A process killed mid-upload cannot release its slot, so a slot older than
``CALLREC_API_UPLOAD_LEASE_SECONDS`` no longer counts. Without Redis, or while Redis cannot be reached,
each process keeps its own count (the cap then applies per process, and a warning says so).
"""
import logging
import secrets
import threading
import time
from collections import Counter
from contextlib import contextmanager

from flask import current_app

from callrec_plugin.state import get_state

CACHE_KEY = "ingest_upload_slots"
KEY_PREFIX = "callrec:upload-slots:"
log = logging.getLogger("callrec.ingest")

# Forget lapsed slots, then take one if fewer than the cap are in flight: one atomic step at the server,
# so two processes can never both take the last slot.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class NoSlot(Exception):
    pass


def _refusal(cap):
    return NoSlot(f"{cap} uploads of this practice are already in progress; retry when one ends")


class UploadSlots:
    """This process's uploads in flight, by practice."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running = Counter()

    @contextmanager
    def taken(self, practice_ref, cap):
        with self._lock:
            if self._running[practice_ref] >= cap:
                raise _refusal(cap)
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


class SharedUploadSlots:
    """Every process's uploads in flight, by practice, in Redis; this process's own count while Redis is
    unreachable (an upload is never refused because the counter is down)."""

    def __init__(self, connection, lease_seconds, fallback=None):
        self.connection = connection
        self.lease_seconds = int(lease_seconds)
        self.fallback = fallback or UploadSlots()
        self._take = connection.register_script(_TAKE)

    @contextmanager
    def taken(self, practice_ref, cap):
        from redis.exceptions import RedisError

        key, token = KEY_PREFIX + practice_ref, secrets.token_hex(8)
        try:
            took = self._take(keys=[key], args=[time.time(), self.lease_seconds, cap, token])
        except RedisError as error:
            log.warning("callrec upload slots: Redis unavailable (%s); counting this process's uploads only", error)
            with self.fallback.taken(practice_ref, cap):
                yield
            return
        if not took:
            raise _refusal(cap)
        try:
            yield
        finally:
            try:
                self.connection.zrem(key, token)
            except RedisError:  # the lease frees it
                log.warning("callrec upload slots: could not release a slot of %s; it lapses after %d s",
                            practice_ref, self.lease_seconds)

    def running(self, practice_ref):
        since = time.time() - self.lease_seconds
        return int(self.connection.zcount(KEY_PREFIX + practice_ref, since, "+inf"))


def redis_client(url):
    """A client with short timeouts: an upload waits at most a few seconds for the counter."""
    from redis import Redis

    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def slots(app=None):
    """The app's upload slots: shared through Redis when CALLREC_REDIS_URL is set, else this process's."""
    app = app or current_app
    cache = get_state(app).cache
    if CACHE_KEY not in cache:
        url = app.config.get("CALLREC_REDIS_URL")
        cache[CACHE_KEY] = (SharedUploadSlots(redis_client(url), app.config["CALLREC_API_UPLOAD_LEASE_SECONDS"])
                            if url else UploadSlots())
    return cache[CACHE_KEY]
