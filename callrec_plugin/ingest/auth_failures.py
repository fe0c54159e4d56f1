"""Signed-API requests that failed authentication: counted and logged, never written to the audit trail.

The audit trail records decisions about a practice's data. A request that failed authentication names
a practice only its sender vouches for, so writing it there would let anyone on the network write
rows into every practice's hash chain. Instead they are counted (the jobs page shows the counts) and
each process logs at most one line per LOG_INTERVAL seconds, saying how many it did not log.

With ``CALLREC_REDIS_URL`` set the counts are kept in Redis, so the jobs page shows every process's
(a hash of counts by endpoint, the latest reason, since when); without it, or while Redis cannot be
reached, the page shows this process's own.
"""
import datetime as dt
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from flask import current_app

from callrec_plugin.state import get_state

LOG_INTERVAL = 60.0
CACHE_KEY = "signed_api_auth_failures"


@dataclass
class AuthFailures:
    """This process's count of signed-API requests that failed authentication, by endpoint."""

    since: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    by_endpoint: Counter = field(default_factory=Counter)
    last_reason: str = ""
    _logged_at: float = 0.0
    _unlogged: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    shared = False  # this process's counts only

    @property
    def total(self):
        return sum(self.by_endpoint.values())

    def add(self, endpoint, reason, now):
        """Count one; returns how many to report in a log line now (0: stay quiet)."""
        with self._lock:
            self.by_endpoint[endpoint] += 1
            self.last_reason = reason
            self._unlogged += 1
            if now - self._logged_at < LOG_INTERVAL:
                return 0
            self._logged_at, reported, self._unlogged = now, self._unlogged, 0
            return reported


SHARED_KEY = "callrec:signed-api-auth-failures"  # a hash: endpoint -> count, plus the two fields below
_SINCE, _LAST_REASON = "~since", "~last_reason"  # "~" never begins an endpoint name


@dataclass
class SharedCounts:
    """Every process's counts, as read from Redis (the same shape the jobs page reads from AuthFailures)."""

    since: dt.datetime
    by_endpoint: Counter
    last_reason: str
    shared: bool = True

    @property
    def total(self):
        return sum(self.by_endpoint.values())


def _local(app=None):
    return get_state(app).cache.setdefault(CACHE_KEY, AuthFailures())


def _redis(app=None):
    from callrec_plugin.ingest.upload_slots import redis_client

    app = app or current_app
    url = app.config.get("CALLREC_REDIS_URL")
    if not url:
        return None
    cache = get_state(app).cache
    return cache.setdefault(CACHE_KEY + ":redis", redis_client(url))


def _count_shared(endpoint, reason, now):
    from redis.exceptions import RedisError

    connection = _redis()
    if connection is None:
        return
    try:
        with connection.pipeline() as pipe:
            pipe.hincrby(SHARED_KEY, endpoint, 1)
            pipe.hset(SHARED_KEY, _LAST_REASON, reason[:300])
            pipe.hsetnx(SHARED_KEY, _SINCE, repr(now))
            pipe.execute()
    except RedisError as error:  # still counted in this process
        current_app.logger.warning("callrec signed API: could not count a failed request in Redis (%s)", error)


def failures(app=None):
    """The counts to show: every process's (Redis) when CALLREC_REDIS_URL is set and answers, else this
    process's."""
    from redis.exceptions import RedisError

    connection = _redis(app)
    if connection is None:
        return _local(app)
    try:
        fields = {key.decode(): value.decode() for key, value in connection.hgetall(SHARED_KEY).items()}
    except RedisError:
        return _local(app)
    since = fields.pop(_SINCE, None)
    last_reason = fields.pop(_LAST_REASON, "")
    return SharedCounts(
        since=dt.datetime.fromtimestamp(float(since), dt.timezone.utc) if since else _local(app).since,
        by_endpoint=Counter({endpoint: int(count) for endpoint, count in fields.items()}),
        last_reason=last_reason)


def note(endpoint, status, reason, claimed_practice, remote_addr):
    """Count a request that failed authentication and log it, rate-limited (the claimed practice and
    the address are the sender's word and are logged as such, escaped)."""
    now = time.time()
    reported = _local().add(endpoint, reason, now)
    _count_shared(endpoint, reason, now)
    if reported:
        current_app.logger.warning(
            "callrec signed API: %d request(s) failed authentication since the last such line; latest: %s "
            "answered %s (%s), claimed practice %r, from %s", reported, endpoint, status, reason,
            (claimed_practice or "")[:64], remote_addr)
