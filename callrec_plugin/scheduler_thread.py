"""The scheduler as a thread of a single-process server (the demo): no separate process to forget.

``start(app, interval=30)`` runs ``queueing.scheduler_tick`` at once and then every ``interval``
seconds in a daemon thread with its own app context, and logs that it started and what each round
did. Without ``CALLREC_REDIS_URL`` the purge then runs in that thread; with it, the rounds enqueue on
RQ and the workers run them. One scheduler per installation: use this only where the server is one
process (``flask run``, the demo); with gunicorn's several workers, run ``flask callrec scheduler``.
"""
import logging
import threading

from callrec_plugin import queueing
from callrec_plugin.state import db_session, get_state

log = logging.getLogger("callrec_plugin.scheduler")


class SchedulerThread(threading.Thread):
    def __init__(self, app, interval):
        super().__init__(name="callrec-scheduler", daemon=True)
        self.app, self.interval = app, interval
        self.stopping = threading.Event()

    def run(self):
        log.info("callrec scheduler thread started in this server: purge every %g min, a round every %g s%s",
                 float(self.app.config["CALLREC_PURGE_INTERVAL_MINUTES"]), self.interval,
                 "" if self.app.config.get("CALLREC_REDIS_URL") else " (jobs run in this thread: no CALLREC_REDIS_URL)")
        lock = None
        with self.app.app_context():
            if queueing.redis_url(self.app):
                lock = queueing.SchedulerLock(queueing.connect(), self.app.config["CALLREC_QUEUE"],
                                              ttl=max(10, int(self.interval * 3)))
        while not self.stopping.is_set():
            self.round(lock)
            self.stopping.wait(self.interval)
        if lock is not None:
            lock.release()

    def round(self, lock):
        with self.app.app_context():
            try:
                done = queueing.scheduler_tick(lock=lock)
                if done.get("scheduled") or any(done.get(k) for k in ("enqueued", "requeued", "abandoned")):
                    log.info("callrec scheduler round: %s", done)
                elif done.get("skipped"):
                    log.info("callrec scheduler round skipped: %s", done["skipped"])
            except Exception:  # one failed round must not end the thread: the next one tries again
                db_session().rollback()
                log.exception("callrec scheduler round failed; trying again in %g s", self.interval)
            finally:
                db_session().remove()

    def stop(self, timeout=30):
        self.stopping.set()
        self.join(timeout)


def start(app, interval=30.0):
    """Start the app's scheduler thread (once per app: a second call returns the running one)."""
    state = get_state(app)
    running = state.cache.get("scheduler_thread")
    if running is not None and running.is_alive():
        return running
    thread = SchedulerThread(app, interval)
    state.cache["scheduler_thread"] = thread
    thread.start()
    return thread
