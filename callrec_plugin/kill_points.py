"""TEST ONLY crash injection: named points at which a process can be made to die by SIGKILL.

Purge, export and job code call :func:`kill_point` at the moments a power cut would hurt most; the
crash tests set ``CALLREC_TEST_KILL_AT`` to pick one. Unset (always in production) it does nothing.
A leaf module (standard library only), so any layer may mark a point without importing the job runner.
"""
import logging
import os
import signal

log = logging.getLogger(__name__)

KILL_ENV = "CALLREC_TEST_KILL_AT"
_kill_counts = {}


def kill_point(name):
    """TEST ONLY. With CALLREC_TEST_KILL_AT="<name>:<n>", the n-th time this process reaches the
    point <name> it dies by SIGKILL, as in a power cut. Inside an RQ work horse the worker that
    forked it dies first, so nothing is left to tidy up ("<name>:<n>:horse": the horse alone).
    Unset (always in production): no effect."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    target, _, rest = spec.partition(":")
    count, _, scope = rest.partition(":")
    if target != name:
        return
    _kill_counts[name] = _kill_counts.get(name, 0) + 1
    if _kill_counts[name] == int(count or 1):
        log.warning("%s=%s: killing the process now", KILL_ENV, spec)
        # An RQ work horse runs in a process group of its own (os.setpgrp after the fork). The scope
        # "horse" ("<name>:<n>:horse") kills the work horse alone: its worker lives on and sees it die.
        in_horse = os.environ.get("RQ_JOB_ID") and os.getpgrp() == os.getpid() and os.getppid() > 1
        if in_horse and scope != "horse":
            os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
