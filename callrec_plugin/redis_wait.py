"""Waiting for Redis: a worker or scheduler started while Redis is down waits and reconnects, logging
each try, instead of dying with a traceback (docs/jobs.md)."""
import logging
import time

log = logging.getLogger("callrec_plugin.redis")

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0


def redacted(url):
    """The URL without its password, for logs."""
    if url and "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def connection_errors():
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def wait_for_redis(url, *, stopping=lambda: False, sleep=time.sleep, first_delay=FIRST_DELAY_SECONDS,
                   max_delay=MAX_DELAY_SECONDS):
    """A Redis client that answered PING; tries again with back-off (1, 2, 4 ... 30 s) until it does.
    Returns None only if ``stopping()`` becomes true while waiting."""
    from callrec_plugin.queueing import connect

    attempt = 0
    while True:
        attempt += 1
        connection = connect(url)
        try:
            connection.ping()
        except connection_errors() as exc:
            delay = min(max_delay, first_delay * 2 ** (attempt - 1))
            log.warning("Redis at %s does not answer (try %d: %s); trying again in %g s",
                        redacted(url), attempt, exc, delay)
            if stopping():
                return None
            sleep(delay)
            continue
        if attempt > 1:
            log.info("Redis at %s answers after %d tries", redacted(url), attempt)
        return connection
