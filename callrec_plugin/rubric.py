"""The assessment rubric: the criteria a practice scores a call's handling against.

A practice edits its own criteria (add, reword, retire, reorder). A criterion is never deleted and an
assessment copies each criterion's wording into its scores, so a rubric change never rewrites a past
assessment. A practice that has never edited its rubric gets the defaults for dental reception calls.
"""
import re

import sqlalchemy as sa

from callrec_plugin import clock
from callrec_plugin.models import AssessmentScore, RubricCriterion
from callrec_plugin.state import db_session

# (key, label): the defaults for a dental practice's reception calls.
DEFAULT_CRITERIA = (
    ("greeting", "Greeting and identification"),
    ("recording_notice", "Recording notice given"),
    ("identity_checked", "Identity checked before discussing care or payment"),
    ("accuracy", "Accuracy of information"),
    ("courtesy", "Courtesy and empathy"),
    ("outcome", "Outcome and next steps agreed"),
)

MEETS, PARTLY, DOES_NOT_MEET, NOT_APPLICABLE = "meets", "partly", "does_not_meet", "not_applicable"
SCORES = {
    MEETS: "Meets",
    PARTLY: "Partly",
    DOES_NOT_MEET: "Does not meet",
    NOT_APPLICABLE: "Not applicable",
}
# The scores that count towards a criterion's results (not applicable says nothing about the call).
JUDGED = (MEETS, PARTLY, DOES_NOT_MEET)
MAX_LABEL = 200


class RubricError(ValueError):
    """A rubric edit that cannot be made (the message says why)."""


def criteria(practice_ref, include_retired=False):
    """The practice's criteria in order; the defaults are written the first time they are asked for."""
    session = db_session()
    query = sa.select(RubricCriterion).where(RubricCriterion.practice_ref == practice_ref)
    rows = session.scalars(query.order_by(RubricCriterion.position, RubricCriterion.id)).all()
    if not rows:
        rows = _write_defaults(practice_ref)
    return [row for row in rows if include_retired or row.retired_at is None]


def _write_defaults(practice_ref):
    session = db_session()
    rows = [RubricCriterion(practice_ref=practice_ref, key=key, label=label, position=index)
            for index, (key, label) in enumerate(DEFAULT_CRITERIA)]
    try:
        with session.begin_nested():  # two first requests at once: the second reads the first's rows
            session.add_all(rows)
    except sa.exc.IntegrityError:
        return session.scalars(sa.select(RubricCriterion).where(RubricCriterion.practice_ref == practice_ref)
                               .order_by(RubricCriterion.position, RubricCriterion.id)).all()
    return rows


def _key_for(label, taken):
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40] or "criterion"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def _clean_label(label):
    label = " ".join((label or "").split())
    if not label:
        raise RubricError("Give the criterion's wording.")
    if len(label) > MAX_LABEL:
        raise RubricError(f"A criterion's wording is at most {MAX_LABEL} characters.")
    return label


def add_criterion(practice_ref, label):
    everything = criteria(practice_ref, include_retired=True)
    label = _clean_label(label)
    row = RubricCriterion(practice_ref=practice_ref, key=_key_for(label, {c.key for c in everything}), label=label,
                          position=max((c.position for c in everything), default=-1) + 1)
    db_session().add(row)
    db_session().flush()
    return row


def reword_criterion(practice_ref, key, label):
    """A new wording is a new criterion in the same place: assessments made with the old one keep it."""
    old = _active(practice_ref, key)
    label = _clean_label(label)
    if label == old.label:
        return old
    taken = {c.key for c in criteria(practice_ref, include_retired=True)}
    old.retired_at = clock.now()
    row = RubricCriterion(practice_ref=practice_ref, key=_key_for(label, taken), label=label, position=old.position)
    db_session().add(row)
    db_session().flush()
    return row


def retire_criterion(practice_ref, key):
    row = _active(practice_ref, key)
    if len(criteria(practice_ref)) == 1:
        raise RubricError("A rubric needs at least one criterion.")
    row.retired_at = clock.now()
    return row


def move_criterion(practice_ref, key, step):
    """Swap the criterion with its neighbour above (step -1) or below (+1)."""
    active = criteria(practice_ref)
    row = _active(practice_ref, key)
    index = active.index(row)
    other = index + step
    if not 0 <= other < len(active):
        return row
    for position, criterion in enumerate(active):
        criterion.position = position
    active[index].position, active[other].position = other, index
    return row


def _active(practice_ref, key):
    row = next((c for c in criteria(practice_ref) if c.key == key), None)
    if row is None:
        raise RubricError("There is no such criterion in the practice's rubric.")
    return row


def overall_outcome(scores):
    """The assessment's overall result from its scores: the worst judged score; meets if none judged."""
    judged = {score for score in scores if score in JUDGED}
    if DOES_NOT_MEET in judged:
        return DOES_NOT_MEET
    if PARTLY in judged:
        return PARTLY
    return MEETS


def snapshot_scores(assessment_id, active_criteria, answers):
    """Write one AssessmentScore per criterion, copying its wording. ``answers``: key -> (score, note)."""
    rows = [AssessmentScore(assessment_id=assessment_id, position=position, criterion_key=criterion.key,
                            criterion_label=criterion.label, score=answers[criterion.key][0],
                            note=answers[criterion.key][1])
            for position, criterion in enumerate(active_criteria)]
    db_session().add_all(rows)
    return rows


def scores_of(assessment_ids):
    """assessment id -> its scores in rubric order."""
    found = {}
    if assessment_ids:
        for score in db_session().scalars(sa.select(AssessmentScore).where(
                AssessmentScore.assessment_id.in_(list(assessment_ids))).order_by(AssessmentScore.position)):
            found.setdefault(score.assessment_id, []).append(score)
    return found
