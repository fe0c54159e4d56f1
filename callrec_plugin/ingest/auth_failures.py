"""Signed-API requests that failed authentication: counted and logged, never written to the audit trail.

The audit trail records decisions about a practice's data. A request that failed authentication names
a practice only its sender vouches for, so writing it there would let anyone on the network write
rows into every practice's hash chain. Instead each process counts them (the jobs page shows the
counts) and logs at most one line per LOG_INTERVAL seconds, saying how many it did not log.
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


def failures(app=None):
    cache = get_state(app).cache
    return cache.setdefault(CACHE_KEY, AuthFailures())


def note(endpoint, status, reason, claimed_practice, remote_addr):
    """Count a request that failed authentication and log it, rate-limited (the claimed practice and
    the address are the sender's word and are logged as such, escaped)."""
    reported = failures().add(endpoint, reason, time.time())
    if reported:
        current_app.logger.warning(
            "callrec signed API: %d request(s) failed authentication since the last such line; latest: %s "
            "answered %s (%s), claimed practice %r, from %s", reported, endpoint, status, reason,
            (claimed_practice or "")[:64], remote_addr)
