"""Monthly spot checks: each practice's sampling plan, and the reproducible random draw of calls.

On the first of each month (the scheduler, or ``flask callrec spot-checks draw``) callrec draws, for
every member of staff, up to the plan's number of their calls of the month before. The draw keeps its
seed and the plan it used, so anyone can draw again from the same calls and get the same sample
(:func:`pick`). Never drawn: a purged call, a call of a patient who objected to recording, a call
recorded despite an objection, a call under a law-enforcement hold.

Months are the practice's calendar months (its time zone, ``callrec_practice_settings``).
"""
import datetime as dt
import random
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from callrec_plugin import audit, clock
from callrec_plugin.identity import SYSTEM
from callrec_plugin.models import (
    Hold, HoldKind, PatientObjection, Recording, RecordingStatus, SamplingPlan, SpotCheck, SpotCheckDraw,
)
from callrec_plugin.practice_settings import settings_for
from callrec_plugin.state import db_session, get_state

DEFAULT_CALLS_PER_STAFF = 3
MAX_CALLS_PER_STAFF = 50
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
# Audit object types of this module: confidential like assessments (visibility.py hides them).
OBJECT_TYPE_DRAW, OBJECT_TYPE_PLAN = "spot_check_draw", "sampling_plan"


class SpotCheckError(ValueError):
    """A plan or a draw that cannot be made (the message says why)."""


# -- the plan ----------------------------------------------------------------------------------------------


def plan_for(practice_ref):
    """The practice's plan (an unsaved default one if it never set its own)."""
    plan = db_session().get(SamplingPlan, practice_ref)
    if plan is None:
        plan = SamplingPlan(practice_ref=practice_ref, calls_per_staff=DEFAULT_CALLS_PER_STAFF, inbound_only=False,
                            min_duration_seconds=0.0)
    return plan


def save_plan(actor, calls_per_staff, inbound_only, min_duration_seconds):
    if not 1 <= calls_per_staff <= MAX_CALLS_PER_STAFF:
        raise SpotCheckError(f"Calls per member of staff must be between 1 and {MAX_CALLS_PER_STAFF}.")
    if not 0 <= min_duration_seconds <= 24 * 3600:
        raise SpotCheckError("The minimum duration must be between 0 seconds and a day.")
    session = db_session()
    plan = session.get(SamplingPlan, actor.practice_ref)
    if plan is None:
        plan = SamplingPlan(practice_ref=actor.practice_ref)
        session.add(plan)
    plan.calls_per_staff, plan.inbound_only = calls_per_staff, bool(inbound_only)
    plan.min_duration_seconds, plan.updated_by_ref, plan.updated_at = float(min_duration_seconds), actor.ref, clock.now()
    audit.record("sampling_plan_changed", "done", actor=actor, object_type=OBJECT_TYPE_PLAN,
                 object_id=actor.practice_ref, reason=describe_plan(plan))
    return plan


def describe_plan(plan):
    calls = "inbound calls" if plan.inbound_only else "calls"
    longer = f" of at least {plan.min_duration_seconds:g} s" if plan.min_duration_seconds else ""
    return f"{plan.calls_per_staff} {calls}{longer} per member of staff per month"


# -- months ----------------------------------------------------------------------------------------------


def parse_month(text):
    match = MONTH.match((text or "").strip())
    if not match:
        raise SpotCheckError("A month is written YYYY-MM, e.g. 2026-11.")
    return int(match.group(1)), int(match.group(2))


def month_label(month):
    year, number = parse_month(month)
    return dt.date(year, number, 1).strftime("%B %Y")


def previous_month(now, zone):
    """The calendar month before ``now`` in the practice's zone, as YYYY-MM."""
    local = now.astimezone(zone)
    last = local.date().replace(day=1) - dt.timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def month_bounds(month, zone):
    """[start, end) of the month in the practice's zone, as aware UTC datetimes."""
    year, number = parse_month(month)
    start = dt.datetime(year, number, 1, tzinfo=zone)
    end = dt.datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


# -- who may be drawn ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    recording_id: str
    staff_user_ref: str
    staff_name: str


def eligible_calls(practice_ref, month, inbound_only, min_duration_seconds):
    """The calls of the month that may be drawn, per member of staff: staff ref -> [Candidate] in call order."""
    start, end = month_bounds(month, settings_for(practice_ref).zone)
    objected = sa.exists().where(
        PatientObjection.practice_ref == Recording.practice_ref,
        PatientObjection.withdrawn_at.is_(None),
        sa.or_(PatientObjection.patient_ref == Recording.patient_ref, PatientObjection.recording_id == Recording.id),
    )
    police_hold = sa.exists().where(Hold.recording_id == Recording.id, Hold.kind == HoldKind.LAW_ENFORCEMENT,
                                    Hold.released_at.is_(None))
    query = sa.select(Recording.id, Recording.staff_user_ref, Recording.staff_name).where(
        Recording.practice_ref == practice_ref,
        Recording.started_at >= start, Recording.started_at < end,
        Recording.status == RecordingStatus.ACTIVE,
        Recording.staff_user_ref.is_not(None),
        Recording.duration_seconds >= min_duration_seconds,
        Recording.recorded_despite_objection.is_(False),
        ~objected, ~police_hold,
    )
    if inbound_only:
        query = query.where(Recording.direction == "inbound")
    by_staff = {}
    for row in db_session().execute(query.order_by(Recording.started_at, Recording.id)):
        by_staff.setdefault(row.staff_user_ref, []).append(Candidate(row.id, row.staff_user_ref, row.staff_name or ""))
    return by_staff


def pick(candidates_by_staff, seed, calls_per_staff):
    """The sample: for each member of staff, ``calls_per_staff`` of their calls (all of them if fewer).

    Each member of staff's draw has its own generator seeded from the draw's seed and their ref, so one
    person's calls never change another's sample; candidates are taken in the order given (call order).
    """
    chosen = {}
    for staff_ref in sorted(candidates_by_staff):
        calls = list(candidates_by_staff[staff_ref])
        rng = random.Random(f"{seed}:{staff_ref}")
        chosen[staff_ref] = calls if len(calls) <= calls_per_staff else rng.sample(calls, calls_per_staff)
    return chosen


# -- the draw -------------------------------------------------------------------------------------------


def draw(practice_ref, month, actor=SYSTEM, seed=None):
    """Draw the month's spot checks for a practice; a month already drawn is kept as it was.

    Returns (draw, made): ``made`` is False when the month had been drawn before."""
    if month_bounds(month, settings_for(practice_ref).zone)[1] > clock.now():
        raise SpotCheckError(f"{month} has not ended yet: a month is drawn once all its calls are in.")
    session = db_session()
    existing = session.scalar(sa.select(SpotCheckDraw).where(SpotCheckDraw.practice_ref == practice_ref,
                                                             SpotCheckDraw.month == month))
    if existing is not None:
        return existing, False
    plan = plan_for(practice_ref)
    record = SpotCheckDraw(practice_ref=practice_ref, month=month, seed=seed or secrets.token_hex(16),
                           calls_per_staff=plan.calls_per_staff, inbound_only=plan.inbound_only,
                           min_duration_seconds=plan.min_duration_seconds, drawn_at=clock.now(),
                           drawn_by_ref=actor.ref)
    session.add(record)
    session.flush()
    candidates = eligible_calls(practice_ref, month, plan.inbound_only, plan.min_duration_seconds)
    sample = pick(candidates, record.seed, plan.calls_per_staff)
    session.add_all(SpotCheck(draw_id=record.id, practice_ref=practice_ref, recording_id=call.recording_id,
                              staff_user_ref=staff_ref, staff_name=call.staff_name,
                              population=len(candidates[staff_ref]))
                    for staff_ref, calls in sample.items() for call in calls)
    drawn = sum(len(calls) for calls in sample.values())
    audit.record("spot_checks_drawn", "done", actor=actor, practice_ref=practice_ref,
                 object_type=OBJECT_TYPE_DRAW, object_id=str(record.id),
                 reason=f"{drawn} calls of {len(sample)} members of staff drawn from {month} "
                        f"({describe_plan(plan)}; seed {record.seed})")
    return record, True


def practices_with_recent_calls(now):
    """Practices with calls in the last two months: those that may need last month drawn."""
    return set(db_session().scalars(sa.select(Recording.practice_ref).where(
        Recording.started_at >= now - dt.timedelta(days=62)).distinct()))


def draw_due(now=None):
    """The scheduler's part: draw last month for every practice that has calls and no draw for it yet.

    Checked once per UTC day per process (the state cache), so a scheduler round costs nothing the
    rest of the day; the database's unique (practice, month) makes a second scheduler harmless."""
    now = now or clock.now()
    cache = get_state().cache
    if cache.get("spot_checks_checked") == now.date():
        return []
    session = db_session()
    made = []
    for practice_ref in sorted(practices_with_recent_calls(now)):
        month = previous_month(now, settings_for(practice_ref).zone)
        try:
            record, new = draw(practice_ref, month)
            session.commit()
        except sa.exc.IntegrityError:  # another scheduler drew it a moment ago
            session.rollback()
            continue
        if new:
            made.append(record.id)
    cache["spot_checks_checked"] = now.date()
    return made


# -- the queue ------------------------------------------------------------------------------------------


def draws_of(practice_ref):
    return db_session().scalars(sa.select(SpotCheckDraw).where(SpotCheckDraw.practice_ref == practice_ref)
                                .order_by(SpotCheckDraw.month.desc())).all()


def checks_of(draw_record):
    return db_session().scalars(sa.select(SpotCheck).where(SpotCheck.draw_id == draw_record.id)
                                .order_by(SpotCheck.staff_name, SpotCheck.staff_user_ref, SpotCheck.id)).all()


def mark_done(recording, assessment):
    """An assessment of a drawn call completes its spot check (in every draw that holds it and is open)."""
    for check in db_session().scalars(sa.select(SpotCheck).where(
            SpotCheck.practice_ref == recording.practice_ref, SpotCheck.recording_id == recording.id,
            SpotCheck.assessment_id.is_(None))):
        check.assessment_id = assessment.id
