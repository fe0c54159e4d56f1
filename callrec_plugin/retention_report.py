"""What the retention page shows, computed for one practice: the purge's state, the calls due, the
calls held past their date, the extensions, and the counts behind its two charts.

Every query is scoped to the practice. A purge run covers every practice, so the page counts only
this practice's tombstones of a run, never another practice's numbers.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from callrec_plugin import queueing
from callrec_plugin.holds import holds_of
from callrec_plugin.models import Hold, Job, PurgeRun, Recording, RecordingStatus, RetentionExtension, Tombstone
from callrec_plugin.practice_settings import settings_for
from callrec_plugin.retention import days_until, eligibility, eligible_for_purge
from callrec_plugin.scoping import recordings_in
from callrec_plugin.state import db_session, get_state

DUE_WITHIN = dt.timedelta(days=30)
MONTHS_CHARTED = 12
# A scheduled purge that has not appeared this long after it was due means no scheduler is running.
SCHEDULER_SLACK = dt.timedelta(minutes=5)
HOLD_KIND_LABELS = {"complaint": "Complaint", "investigation": "Internal investigation", "regulator": "Regulator",
                    "law_enforcement": "Law enforcement", "disclosure": "Disclosure"}


@dataclass
class PurgeStatus:
    last_run: PurgeRun | None
    last_run_purged_here: int  # this practice's calls the last run deleted
    next_run: dt.datetime
    overdue: int  # this practice's calls past their date, not held, still here
    problem: str | None  # why overdue calls are still here, or why the purge is not running
    scheduler_seen: dt.datetime | None

    @property
    def healthy(self):
        return self.overdue == 0 and self.problem is None


@dataclass
class DueRow:
    recording: Recording
    purge_after: dt.datetime
    days_left: int
    patient_name: str | None


@dataclass
class HeldRow:
    recording: Recording
    holds: list
    patient_name: str | None

    def oldest_age_days(self, now):
        return max((now - hold.placed_at).days for hold in self.holds)


@dataclass
class WeekGroup:
    label: str
    rows: list = field(default_factory=list)


def purge_status(practice_ref, now):
    session = db_session()
    last_run = session.scalars(sa.select(PurgeRun).order_by(PurgeRun.started_at.desc(), PurgeRun.id.desc())
                               .limit(1)).first()
    purged_here = 0
    if last_run is not None:
        purged_here = session.scalar(sa.select(sa.func.count()).select_from(Tombstone).where(
            Tombstone.practice_ref == practice_ref, Tombstone.purged_at == last_run.started_at)) or 0
    interval = queueing.purge_interval()
    due = queueing.purge_due_at(now, interval)
    scheduler_seen = session.scalar(sa.select(sa.func.max(Job.created_at)).where(
        Job.kind == "purge", Job.requested_by_ref == queueing.SCHEDULER_REF))
    overdue = session.scalar(sa.select(sa.func.count()).select_from(
        eligible_for_purge(now, practice_ref=practice_ref).subquery())) or 0
    problem = None
    stale = dt.timedelta(seconds=float(current_app.config["CALLREC_JOB_STALE_SECONDS"]))
    if last_run is not None and last_run.status == "failed":
        problem = f"the last purge run failed: {last_run.error or 'no error recorded'}"
    elif last_run is not None and last_run.status == "running" and now - last_run.started_at > stale:
        problem = "the last purge run stopped part-way (its process died); the next run finishes its work"
    elif (scheduler_seen is None or scheduler_seen < due) and now - due > SCHEDULER_SLACK:
        problem = ("the scheduler is not running: no scheduled purge since "
                   + (f"{scheduler_seen:%d %b %Y %H:%M} UTC" if scheduler_seen else "callrec was installed")
                   + " (start `flask callrec scheduler`)")
    elif overdue:
        problem = f"the next run ({due + interval:%H:%M} UTC) deletes them"
    return PurgeStatus(last_run, purged_here, due + interval, overdue, problem, scheduler_seen)


def _patient_names(refs):
    """{patient ref: name} from the host, one hook call per patient on the page."""
    hook, names = get_state().pm.hook, {}
    for ref in sorted(set(filter(None, refs))):
        summary = hook.callrec_patient_summary(patient_ref=ref) or {}
        names[ref] = summary.get("name") or ref
    return names


def due_and_held(practice_ref, now, patient_ref=None):
    """(weeks of calls due within 30 days, overdue ones first; calls past their date kept by a hold)."""
    session = db_session()
    query = recordings_in(practice_ref).where(Recording.status == RecordingStatus.ACTIVE,
                                              Recording.retain_until < now + DUE_WITHIN)
    if patient_ref is not None:
        query = query.where(Recording.patient_ref == patient_ref)
    recordings = session.scalars(query.order_by(Recording.retain_until, Recording.id)).all()
    by_recording = holds_of(r.id for r in recordings)
    names = _patient_names(r.patient_ref for r in recordings)
    zone = settings_for(practice_ref).zone
    due, held = [], []
    for recording in recordings:
        holds = by_recording.get(recording.id, [])
        answer = eligibility(recording, holds, now)
        active = [hold for hold in holds if hold.released_at is None]
        if active:
            if recording.retain_until <= now:
                held.append(HeldRow(recording, active, names.get(recording.patient_ref)))
            continue
        if answer.purge_after is not None and answer.purge_after < now + DUE_WITHIN:
            due.append(DueRow(recording, answer.purge_after, days_until(answer.purge_after, now),
                              names.get(recording.patient_ref)))
    due.sort(key=lambda row: (row.purge_after, row.recording.id))
    return _by_week(due, now, zone), held


def _by_week(rows, now, zone):
    groups = {}
    for row in rows:
        if row.purge_after <= now:
            label = "Overdue: deleted at the next purge run"
        else:
            local = row.purge_after.astimezone(zone).date()
            monday = local - dt.timedelta(days=local.weekday())
            label = f"Week of {monday:%d %b %Y}"
        groups.setdefault(label, WeekGroup(label)).rows.append(row)
    return list(groups.values())


def extensions_in(practice_ref, limit=50):
    return db_session().scalars(
        sa.select(RetentionExtension).where(RetentionExtension.practice_ref == practice_ref)
        .order_by(RetentionExtension.extended_at.desc(), RetentionExtension.id.desc()).limit(limit)).all()


def _month_start(moment):
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def deleted_per_month(practice_ref, now, months=MONTHS_CHARTED):
    """[(YYYY-MM, tombstones purged that month)] for the last ``months`` months, oldest first, zeros included
    (months in UTC: tombstone times are UTC)."""
    first = _month_start(now)
    for _ in range(months - 1):
        first = _month_start(first - dt.timedelta(days=1))
    rows = db_session().scalars(sa.select(Tombstone.purged_at).where(Tombstone.practice_ref == practice_ref,
                                                                      Tombstone.purged_at >= first))
    counts = {}
    for purged_at in rows:
        key = purged_at.strftime("%Y-%m")
        counts[key] = counts.get(key, 0) + 1
    labels, month = [], first
    while month <= now:
        labels.append(month.strftime("%Y-%m"))
        month = _month_start(month + dt.timedelta(days=32))
    return [(label, counts.get(label, 0)) for label in labels]


def active_holds_by_kind(practice_ref):
    """[(kind label, active holds of that kind)], largest first."""
    rows = db_session().execute(
        sa.select(Hold.kind, sa.func.count()).where(Hold.practice_ref == practice_ref, Hold.released_at.is_(None))
        .group_by(Hold.kind)).all()
    return sorted(((HOLD_KIND_LABELS.get(kind, kind), count) for kind, count in rows), key=lambda kv: (-kv[1], kv[0]))
