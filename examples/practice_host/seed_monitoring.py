"""Demo monitoring (issue 13): consented training calls, a sampling plan, last month's spot-check draw
with two checks done, and one training request waiting for reception's answer.

Seeded history, like the rest of ``seed.py``: the consent rows are written as if staff had answered;
the draw and the assessments go through callrec's own functions (so they are audited as the seed's).
"""
import datetime as dt

import sqlalchemy as sa

TRAINING_NOTES = [
    "Books a check-up clearly and confirms the date back",
    "Good identity check before discussing the appointment",
    "Friendly greeting; recording notice given",
]


def seed_monitoring(training_calls, reception_calls, owner_ref, manager_ref, now, echo):
    """``training_calls``: recording ids whose member of staff consented; ``reception_calls``: recent
    calls of reception, the first of which gets an open training request."""
    from callrec_plugin import rubric, spot_checks, training_library
    from callrec_plugin.identity import Actor
    from callrec_plugin.models import Assessment, Recording, SamplingPlan, SpotCheck, TrainingConsent
    from callrec_plugin.practice_settings import settings_for
    from callrec_plugin.state import db_session

    session = db_session()
    consented = 0
    for index, recording_id in enumerate(training_calls):
        recording = session.get(Recording, recording_id)
        if recording is None or not recording.staff_user_ref:
            continue
        consent = TrainingConsent(recording_id=recording.id, practice_ref=recording.practice_ref,
                                  staff_user_ref=recording.staff_user_ref, status=training_library.CONSENTED,
                                  training_note=TRAINING_NOTES[index % len(TRAINING_NOTES)],
                                  proposed_by_ref=owner_ref, proposed_at=recording.started_at + dt.timedelta(days=2),
                                  answered_at=recording.started_at + dt.timedelta(days=3))
        session.add(consent)
        consented += training_library.refresh(recording, consent)
    for recording_id in reception_calls[:1]:
        recording = session.get(Recording, recording_id)
        session.add(TrainingConsent(recording_id=recording.id, practice_ref="p1", staff_user_ref=recording.staff_user_ref,
                                    status=training_library.REQUESTED, training_note="Handled a cancellation well",
                                    proposed_by_ref=manager_ref, proposed_at=now - dt.timedelta(days=1)))
    session.add(SamplingPlan(practice_ref="p1", calls_per_staff=3, inbound_only=False, min_duration_seconds=0.0,
                             updated_by_ref=manager_ref, updated_at=now - dt.timedelta(days=60)))
    session.flush()

    manager = Actor(user=None, ref=manager_ref, name="Natalie Ballantyne", roles=frozenset({"manager"}),
                    practice_ref="p1")
    month = spot_checks.previous_month(now, settings_for("p1").zone)
    draw, _made = spot_checks.draw("p1", month, actor=manager)
    checks = spot_checks.checks_of(draw)
    criteria = rubric.criteria("p1")
    first_per_staff = list({check.staff_user_ref: check for check in reversed(checks)}.values())
    for check, courtesy in zip(first_per_staff[:2], (rubric.MEETS, rubric.PARTLY)):
        scores = {c.key: (rubric.MEETS, "") for c in criteria}
        scores["courtesy"] = (courtesy, "" if courtesy == rubric.MEETS else "Sounded rushed at the end")
        assessment = Assessment(recording_id=check.recording_id, practice_ref="p1", staff_user_ref=check.staff_user_ref,
                                assessor_ref=manager_ref, assessor_name=manager.name, created_at=now,
                                outcome=rubric.overall_outcome(score for score, _ in scores.values()),
                                notes="Thank you: a clear, polite call." if courtesy == rubric.MEETS else
                                      "Mostly good; take a moment before ending the call.")
        session.add(assessment)
        session.flush()
        rubric.snapshot_scores(assessment.id, criteria, scores)
        check.assessment_id = assessment.id
    session.commit()
    drawn = session.scalar(sa.select(sa.func.count()).select_from(SpotCheck).where(SpotCheck.draw_id == draw.id))
    echo(f"Training library: {consented} consented calls, 1 request waiting; spot checks for {month}: "
         f"{drawn} drawn, {min(2, drawn)} done.")
