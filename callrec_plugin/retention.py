"""Retention: when a recording may be purged, and why not yet.

One function, ``eligibility``, answers for panels, the purge job and the retention page, and it is
recomputed from the holds every time (never remembered), so releasing a hold is always seen.
"""
import datetime as dt
from dataclasses import dataclass

from flask import current_app

from callrec_plugin.models import RecordingStatus


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str
    purge_after: dt.datetime | None  # None while a hold is active or once purged

    def days_left(self, now):
        if self.purge_after is None:
            return None
        return max(0, (self.purge_after - now).days + (1 if (self.purge_after - now).seconds else 0))


def retain_until_for(started_at, retention_days=None):
    days = current_app.config["CALLREC_RETENTION_DAYS"] if retention_days is None else retention_days
    return started_at + dt.timedelta(days=days)


def grace_period():
    return dt.timedelta(days=current_app.config["CALLREC_HOLD_GRACE_DAYS"])


def purge_after(retain_until, holds, grace):
    """The earliest moment a recording may go, or None while any hold is active."""
    if any(hold.released_at is None for hold in holds):
        return None
    released = [hold.released_at + grace for hold in holds]
    return max([retain_until, *released])


def eligibility(recording, holds, now, grace=None):
    """Is this recording eligible for purge at ``now``, and if not, why."""
    if recording.status == RecordingStatus.PURGED:
        return Eligibility(False, "already purged", None)
    grace = grace_period() if grace is None else grace
    after = purge_after(recording.retain_until, holds, grace)
    if after is None:
        kinds = sorted({hold.kind for hold in holds if hold.released_at is None})
        return Eligibility(False, "held: " + ", ".join(kinds), None)
    if now < after:
        if after > recording.retain_until:
            return Eligibility(False, "in the grace period after a hold was released", after)
        return Eligibility(False, "within the retention period", after)
    return Eligibility(True, "past retention and not held", after)
