"""Retention: when a recording may be purged, and why not yet.

A call is kept for whole calendar months (``retention_months`` of the practice, six by default): until
the same wall-clock moment on the same day that many months later, in the practice's time zone, or on
the last day of a shorter month (31 August -> 28 or 29 February). The practice's zone matters at
midnight: a call at 23:30 UTC on 31 August is 00:30 on 1 September in London, so it is kept until
1 March, not 28 February.

One function, ``eligibility``, answers for panels, the purge job and the retention page, and it is
recomputed from the holds every time (never remembered), so releasing a hold is always seen.
"""
import calendar
import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from callrec_plugin.models import Hold, Recording, RecordingStatus
from callrec_plugin.practice_settings import settings_for

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str
    purge_after: dt.datetime | None  # None while a hold is active or once purged

    def days_left(self, now):
        return days_until(self.purge_after, now)


# -- calendar months --------------------------------------------------------------------------------


def add_months(moment, months):
    """The same day ``months`` later (the last day of the month when that day does not exist)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def local_to_utc(wall, zone):
    """The first instant at which the practice's clock reads ``wall`` (a naive local time) or later.

    An ambiguous time (the hour repeated when clocks go back) is its first occurrence; a time that
    does not exist (skipped when clocks go forward) is the instant the clock jumps past it. So the
    result never moves backwards as ``wall`` moves forwards.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: the jump lies between the two readings; find it to the microsecond.
    low, high = wall.replace(tzinfo=zone, fold=1).astimezone(UTC), first
    low, high = min(low, high), max(low, high)
    while high - low > dt.timedelta(microseconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def retain_until_for(started_at, practice_ref=None, months=None, zone=None):
    """When a call that started at ``started_at`` (aware) may first be purged, if nothing holds it."""
    settings = settings_for(practice_ref) if months is None or zone is None else None
    months = settings.retention_months if months is None else months
    zone = settings.zone if zone is None else zone
    local = started_at.astimezone(zone).replace(tzinfo=None)
    return local_to_utc(add_months(local, months), zone)


def months_after(moment, months, practice_ref=None, zone=None):
    """``moment`` plus whole calendar months on the practice's calendar (aware in, aware UTC out)."""
    zone = settings_for(practice_ref).zone if zone is None else zone
    return local_to_utc(add_months(moment.astimezone(zone).replace(tzinfo=None), months), zone)


def grace_period(practice_ref=None):
    return dt.timedelta(days=settings_for(practice_ref).grace_days)


# -- eligibility ------------------------------------------------------------------------------------


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


GRACE_REASON = "in the grace period after a hold was released"


def eligibility(recording, holds, now, grace=None):
    """Is this recording eligible for purge at ``now``, and if not, why."""
    if recording.status == RecordingStatus.PURGED:
        return Eligibility(False, "already purged", None)
    if recording.status != RecordingStatus.ACTIVE:  # a purge began (its key is gone); the reconciler ends it
        return Eligibility(False, "being purged", None)
    grace = grace_period(recording.practice_ref) if grace is None else grace
    after = purge_after(recording.retain_until, holds, grace)
    if after is None:
        kinds = sorted({hold.kind for hold in holds if hold.released_at is None})
        return Eligibility(False, "held: " + ", ".join(kinds), None)
    if now < after:
        if after > recording.retain_until:
            return Eligibility(False, GRACE_REASON, after)
        return Eligibility(False, "within the retention period", after)
    if after > recording.retain_until:
        return Eligibility(True, "past the grace period after a hold was released", after)
    return Eligibility(True, "past retention and not held", after)


def eligible_for_purge(now, grace=None, practice_ref=None):
    """A SELECT of active recordings eligible at ``now``: the SQL form of ``eligibility``.

    Past retain_until, no active hold, and no hold released less than the grace period ago. The grace
    period is a practice's, so give ``practice_ref`` (its settings' grace) or ``grace`` explicitly.
    The purge job re-checks each row with ``eligibility`` under a row lock before it destroys anything.
    """
    grace = grace_period(practice_ref) if grace is None else grace
    blocking_hold = sa.select(Hold.id).where(
        Hold.recording_id == Recording.id,
        sa.or_(Hold.released_at.is_(None), Hold.released_at > now - grace),
    )
    query = sa.select(Recording).where(
        Recording.status == RecordingStatus.ACTIVE,
        Recording.retain_until <= now,
        ~blocking_hold.exists(),
    )
    if practice_ref is not None:
        query = query.where(Recording.practice_ref == practice_ref)
    return query


def practices_past_retention(session, now):
    """The practices with at least one active recording past its date (each has its own grace)."""
    return session.scalars(
        sa.select(Recording.practice_ref).where(Recording.status == RecordingStatus.ACTIVE,
                                                Recording.retain_until <= now)
        .distinct().order_by(Recording.practice_ref)
    ).all()
