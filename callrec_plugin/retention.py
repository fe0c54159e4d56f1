"""Retention: when a recording may be purged, and why not yet.

One function, ``eligibility``, answers for panels, the purge job and the retention page, and it is
recomputed from the holds every time (never remembered), so releasing a hold is always seen.
"""
import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from callrec_plugin.models import Hold, Recording, RecordingStatus


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str
    purge_after: dt.datetime | None  # None while a hold is active or once purged

    def days_left(self, now):
        return days_until(self.purge_after, now)


def retain_until_for(started_at, retention_days=None):
    days = current_app.config["CALLREC_RETENTION_DAYS"] if retention_days is None else retention_days
    return started_at + dt.timedelta(days=days)


def grace_period():
    return dt.timedelta(days=current_app.config["CALLREC_HOLD_GRACE_DAYS"])


def purge_after(retain_until, holds, grace):
    """The earliest moment a recording may go, or None while any hold is active."""
    held = any(hold.released_at is None for hold in holds)
    last_release = max((hold.released_at for hold in holds if hold.released_at is not None), default=None)
    return purge_after_summary(retain_until, held, last_release, grace)


def purge_after_summary(retain_until, held, last_release, grace):
    """purge_after from a summary of the holds (any active; the latest release), as panels query it."""
    if held:
        return None
    return retain_until if last_release is None else max(retain_until, last_release + grace)


def days_until(moment, now):
    """Whole days, rounded up, until moment (0 once it has passed); None for None."""
    if moment is None:
        return None
    left = moment - now
    return max(0, left.days + (1 if left.seconds or left.microseconds else 0))


def eligibility(recording, holds, now, grace=None):
    """Is this recording eligible for purge at ``now``, and if not, why."""
    if recording.status == RecordingStatus.PURGED:
        return Eligibility(False, "already purged", None)
    if recording.status != RecordingStatus.ACTIVE:  # a purge began (its key is gone); the reconciler ends it
        return Eligibility(False, "being purged", None)
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


def eligible_for_purge(now, grace=None):
    """A SELECT of active recordings eligible at ``now``: the SQL form of ``eligibility``.

    Past retain_until, no active hold, and no hold released less than the grace period ago. The purge
    job re-checks each row with ``eligibility`` under a row lock before it destroys anything.
    """
    grace = grace_period() if grace is None else grace
    blocking_hold = sa.select(Hold.id).where(
        Hold.recording_id == Recording.id,
        sa.or_(Hold.released_at.is_(None), Hold.released_at > now - grace),
    )
    return sa.select(Recording).where(
        Recording.status == RecordingStatus.ACTIVE,
        Recording.retain_until <= now,
        ~blocking_hold.exists(),
    )
