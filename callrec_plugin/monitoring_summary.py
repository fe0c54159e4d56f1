"""The monthly monitoring summary for the owner and the manager (confidential: nobody else).

Over the last twelve months: spot checks drawn and done against the plan, month by month; results per
criterion of the rubric; and per member of staff. One function computes the figures; the page shows
them as tables and draws the charts from the very same numbers.
"""
import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from callrec_plugin import clock, rubric, spot_checks
from callrec_plugin.models import Assessment, AssessmentScore, Recording
from callrec_plugin.people import display_name
from callrec_plugin.practice_settings import settings_for
from callrec_plugin.state import db_session
from callrec_plugin.summary_chart import stacked_bars

MONTHS = 12
SCORE_SERIES = [(rubric.MEETS, "Meets", "#1a7f37"), (rubric.PARTLY, "Partly", "#9a6700"),
                (rubric.DOES_NOT_MEET, "Does not meet", "#cf222e")]
CHECK_SERIES = [("done", "Done", "#0969da"), ("open", "Not done yet", "#6e7781")]


@dataclass
class MonthRow:
    month: str
    label: str
    target: int  # the plan: calls per member of staff x members of staff drawn
    drawn: int
    done: int


@dataclass
class CriterionRow:
    key: str
    label: str
    counts: dict = field(default_factory=dict)  # score -> number of assessments


@dataclass
class StaffRow:
    ref: str
    name: str
    drawn: int = 0
    done: int = 0
    outcomes: dict = field(default_factory=dict)  # overall outcome -> number of assessments


@dataclass
class Summary:
    since: dt.datetime
    months: list
    criteria: list
    staff: list

    def chart_checks(self):
        return stacked_bars("Spot checks done and not done, by month of the calls",
                            [(row.label, {"done": row.done, "open": row.drawn - row.done}) for row in self.months],
                            CHECK_SERIES)

    def chart_criteria(self):
        return stacked_bars("Results per criterion", [(row.label, row.counts) for row in self.criteria],
                            SCORE_SERIES)

    def chart_staff(self):
        return stacked_bars("Overall results per member of staff", [(row.name, row.outcomes) for row in self.staff],
                            SCORE_SERIES)


def window_start(now, zone):
    """The first day (practice time) of the month eleven months before this one: twelve months in all."""
    local = now.astimezone(zone)
    year, month = local.year, local.month - (MONTHS - 1)
    while month < 1:
        year, month = year - 1, month + 12
    return dt.datetime(year, month, 1, tzinfo=zone).astimezone(dt.timezone.utc)


def _month_key(moment, zone):
    local = moment.astimezone(zone)
    return f"{local.year:04d}-{local.month:02d}"


def summarise(practice_ref, now=None):
    now = now or clock.now()
    zone = settings_for(practice_ref).zone
    since = window_start(now, zone)
    first_month = _month_key(since, zone)
    session = db_session()
    staff = {}

    def person(ref, name):
        row = staff.setdefault(ref, StaffRow(ref=ref, name=name))
        row.name = row.name or name
        return row

    months = []
    for draw in sorted(spot_checks.draws_of(practice_ref), key=lambda d: d.month):
        if draw.month < first_month:
            continue
        checks = spot_checks.checks_of(draw)
        for check in checks:
            row = person(check.staff_user_ref, check.staff_name)
            row.drawn += 1
            row.done += check.assessment_id is not None
        drawn_staff = {check.staff_user_ref for check in checks}
        months.append(MonthRow(month=draw.month, label=spot_checks.month_label(draw.month),
                               target=draw.calls_per_staff * len(drawn_staff), drawn=len(checks),
                               done=sum(check.assessment_id is not None for check in checks)))

    assessments = session.execute(sa.select(Assessment, Recording.staff_name).join(
        Recording, Recording.id == Assessment.recording_id).where(
        Assessment.practice_ref == practice_ref, Assessment.created_at >= since)).all()
    for assessment, staff_name in assessments:
        row = person(assessment.staff_user_ref, staff_name)
        row.outcomes[assessment.outcome] = row.outcomes.get(assessment.outcome, 0) + 1

    labels = {c.key: c.label for c in rubric.criteria(practice_ref, include_retired=True)}
    order = {c.key: i for i, c in enumerate(rubric.criteria(practice_ref, include_retired=True))}
    criteria = {}
    if assessments:
        ids = [a.id for a, _ in assessments]
        for key, label, score, number in session.execute(
                sa.select(AssessmentScore.criterion_key, sa.func.max(AssessmentScore.criterion_label),
                          AssessmentScore.score, sa.func.count())
                .where(AssessmentScore.assessment_id.in_(ids))
                .group_by(AssessmentScore.criterion_key, AssessmentScore.score)):
            row = criteria.setdefault(key, CriterionRow(key=key, label=labels.get(key, label)))
            row.counts[score] = number
    for row in staff.values():  # by name, never the staff id: the audit trail's name for who has left
        row.name = display_name(practice_ref, row.ref, row.name)
    return Summary(since=since, months=months,
                   criteria=sorted(criteria.values(), key=lambda r: (order.get(r.key, len(order)), r.label)),
                   staff=sorted(staff.values(), key=lambda r: (r.name.lower(), r.ref)))
