"""Spot-check assessments with the practice's rubric: confidential to the owner, the manager and the
member of staff assessed (visibility.Field.ASSESSMENT), who acknowledges, answers and sees who read it.

The same page is the member of staff's "My call assessments": their assessments and the training
requests about their calls (views/training.py answers those).
"""
import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for

from callrec_plugin import audit, audit_labels, clock, rubric, spot_checks, training_library
from callrec_plugin.forms import AssessmentForm, ConfirmForm, ResponseForm, has_control_characters
from callrec_plugin.grants import valid_grant
from callrec_plugin.identity import current_actor
from callrec_plugin.models import Assessment, AuditEvent, Recording
from callrec_plugin.monitoring_forms import ConsentAnswerForm
from callrec_plugin.people import display_name
from callrec_plugin.roles import MONITORING_ROLES, PURPOSES, Action
from callrec_plugin.scoping import recording_or_404
from callrec_plugin.state import db_session
from callrec_plugin.views import (
    FormPage, allowed_or_403, blueprint, login_required, refused, refused_409, shown_again, submitted_or_shown_again,
)
from callrec_plugin.visibility import ASSESSMENT_RECORDED, Field, may_see

ROUTES = {
    "callrec.assessments_page": Action.VIEW_ASSESSMENTS,
    "callrec.assess_page": Action.ASSESS,
    "callrec.create_assessment": Action.ASSESS,
    "callrec.acknowledge_assessment": Action.VIEW_ASSESSMENTS,
    "callrec.respond_to_assessment": Action.VIEW_ASSESSMENTS,
}

OUTCOMES = {"meets": "Meets the standard", "partly": "Partly meets the standard",
            "does_not_meet": "Does not meet the standard"}
STANCES = {"agree": "Agrees", "disagree": "Disagrees"}
MAX_NOTE = 2000
# Audit actions that mean someone read an assessment (shown to the member of staff as "read by").
READ_ACTIONS = ("assessment_viewed", "assessment_acknowledged")


def visible_assessments(actor):
    """Owner and manager see every assessment of the practice; anyone else only those about them."""
    query = sa.select(Assessment).where(Assessment.practice_ref == actor.practice_ref)
    if not actor.has_any(MONITORING_ROLES):
        query = query.where(Assessment.staff_user_ref == actor.ref)
    found = db_session().scalars(query.order_by(Assessment.created_at.desc())).all()
    return [a for a in found if may_see(actor, Field.ASSESSMENT, staff_ref=a.staff_user_ref)]


def _audit_trails(assessments):
    ids = [str(a.id) for a in assessments]
    trails = {}
    if ids:
        for event in db_session().scalars(sa.select(AuditEvent).where(
                AuditEvent.object_type == "assessment", AuditEvent.object_id.in_(ids)).order_by(AuditEvent.seq)):
            trails.setdefault(event.object_id, []).append(event)
    return trails


def readers(trail):
    """Who has read the assessment: each person once, with when they first did."""
    first = {}
    for event in trail:
        if event.action in READ_ACTIONS and event.outcome == "done" and event.actor_ref not in first:
            first[event.actor_ref] = (display_name(event.practice_ref, event.actor_ref, event.actor_name),
                                      event.occurred_at)
    return list(first.values())


@blueprint.route("/assessments")
@login_required
def assessments_page():
    actor = current_actor()
    allowed_or_403(actor, Action.VIEW_ASSESSMENTS, object_type="assessments", object_id="list")
    assessments = visible_assessments(actor)
    for assessment in assessments:
        audit.record("assessment_viewed", "done", actor=actor, object_type="assessment",
                     object_id=str(assessment.id), recording_id=assessment.recording_id)
    db_session().commit()
    recordings = {r.id: r for r in db_session().scalars(
        sa.select(Recording).where(Recording.practice_ref == actor.practice_ref,
                                   Recording.id.in_([a.recording_id for a in assessments])))}
    trails = _audit_trails(assessments)
    return render_template(
        "callrec/assessments.html", assessments=assessments, recordings=recordings, trails=trails,
        readers={a.id: readers(trails.get(str(a.id), [])) for a in assessments},
        scores=rubric.scores_of([a.id for a in assessments]), score_labels=rubric.SCORES, outcomes=OUTCOMES,
        stances=STANCES, me=actor.ref, monitoring=actor.has_any(MONITORING_ROLES),
        requests=training_library.requests_for(actor), consent_labels=training_library.STATUS_LABELS,
        response_form=ResponseForm(prefix="callrec-response"), confirm_form=ConfirmForm(),
        consent_form=ConsentAnswerForm(), action_label=audit_labels.label,
        name_of=lambda ref, kept=None: display_name(actor.practice_ref, ref, kept))


@blueprint.route("/recordings/<recording_id>/assess")
@login_required
def assess_page(recording_id):
    """The spot check of one call: the player (once the spot-check purpose is chosen) and the rubric."""
    actor = current_actor()
    recording = recording_or_404(actor, recording_id, Action.ASSESS)
    allowed_or_403(actor, Action.ASSESS, recording)
    criteria = rubric.criteria(actor.practice_ref)
    db_session().commit()
    return render_template("callrec/assess.html", recording=recording, criteria=criteria,
                           score_labels=rubric.SCORES, form=AssessmentForm(prefix="callrec-assess"),
                           grant=valid_grant(actor, recording, Action.PLAY), purposes=PURPOSES,
                           open_form=ConfirmForm(), errors={}, answers={})


def _rubric_answers(criteria):
    """key -> (score, note) from the posted form, and the errors beside each criterion (key -> message:
    every criterion must be scored)."""
    answers, errors = {}, {}
    for criterion in criteria:
        score = request.form.get(f"callrec-assess-score-{criterion.key}", "")
        note = request.form.get(f"callrec-assess-note-{criterion.key}", "").strip()
        problems = []
        if score not in rubric.SCORES:
            problems.append(f"Score “{criterion.label}”.")
        if len(note) > MAX_NOTE or has_control_characters(note):
            problems.append(f"The note on “{criterion.label}” is too long or has characters that are not allowed.")
        if problems:
            errors[criterion.key] = " ".join(problems)
        answers[criterion.key] = (score, note)
    return answers, errors


def _assess_page_again(actor, recording, form, criteria, answers, errors):
    """The assessment page again, what was entered kept, each error beside its criterion or field."""
    return render_template("callrec/assess.html", recording=recording, criteria=criteria, score_labels=rubric.SCORES,
                           form=form, grant=valid_grant(actor, recording, Action.PLAY), purposes=PURPOSES,
                           open_form=ConfirmForm(), errors=errors, answers=answers), 400


@blueprint.route("/recordings/<recording_id>/assessments", methods=["POST"])
@login_required
def create_assessment(recording_id):
    actor = current_actor()
    form = AssessmentForm(prefix="callrec-assess")
    recording = recording_or_404(actor, recording_id, Action.ASSESS)
    allowed_or_403(actor, Action.ASSESS, recording)
    criteria = rubric.criteria(actor.practice_ref)
    answers, errors = _rubric_answers(criteria)
    if not form.validate_on_submit():
        db_session().rollback()  # nothing is decided about a form that says nothing valid
        return _assess_page_again(actor, recording, form, criteria, answers, errors)
    if not recording.staff_user_ref:
        refused_409(actor, Action.ASSESS, "This call has no member of staff on record, so it cannot be assessed.",
                    recording=recording)
    if errors:
        db_session().rollback()
        audit.record(Action.ASSESS, "denied", actor=actor, recording=recording, reason="incomplete rubric")
        db_session().commit()
        return _assess_page_again(actor, recording, form, criteria, answers, errors)
    assessment = Assessment(recording_id=recording.id, practice_ref=recording.practice_ref,
                            staff_user_ref=recording.staff_user_ref, assessor_ref=actor.ref,
                            assessor_name=actor.name, notes=(form.notes.data or "").strip(), created_at=clock.now(),
                            outcome=rubric.overall_outcome(score for score, _ in answers.values()))
    db_session().add(assessment)
    db_session().flush()
    rubric.snapshot_scores(assessment.id, criteria, answers)
    spot_checks.mark_done(recording, assessment)
    audit.record("assessment_created", "done", actor=actor, recording=recording, object_type="assessment",
                 object_id=str(assessment.id), reason=ASSESSMENT_RECORDED)  # never the outcome: see visibility.py
    db_session().commit()
    flash("Spot-check assessment recorded. Only you, the owner or manager, and the member of staff can see it.",
          "callrec-info")
    return redirect(url_for("callrec.spot_checks_page"))


def _back_to_assessments(title, submit):
    return FormPage(title, submit, url_for("callrec.assessments_page"), "your call assessments")


def _own_assessment_or_404(actor, assessment_id, action):
    """The assessment if it is about the actor; else one audited 404, the same as a missing one."""
    assessment = db_session().scalar(sa.select(Assessment).where(Assessment.id == assessment_id,
                                                                 Assessment.practice_ref == actor.practice_ref))
    if assessment is None or assessment.staff_user_ref != actor.ref:
        refused(404, actor, action, "only the member of staff assessed may do this", object_type="assessment",
                object_id=str(assessment_id))
    return assessment


@blueprint.route("/assessments/<int:assessment_id>/acknowledge", methods=["POST"])
@login_required
def acknowledge_assessment(assessment_id):
    actor = current_actor()
    allowed_or_403(actor, Action.VIEW_ASSESSMENTS, object_type="assessment", object_id=str(assessment_id))
    assessment = _own_assessment_or_404(actor, assessment_id, "assessment_acknowledged")
    submitted_or_shown_again(ConfirmForm(), _back_to_assessments("Acknowledge the assessment",
                                                                 "I have read this assessment"))
    assessment.acknowledged_at = assessment.acknowledged_at or clock.now()
    audit.record("assessment_acknowledged", "done", actor=actor, object_type="assessment",
                 object_id=str(assessment.id), recording_id=assessment.recording_id)
    db_session().commit()
    flash("Acknowledged: the owner and manager can see that you have read it.", "callrec-info")
    return redirect(url_for("callrec.assessments_page") + f"#assessment-{assessment.id}")


@blueprint.route("/assessments/<int:assessment_id>/response", methods=["POST"])
@login_required
def respond_to_assessment(assessment_id):
    actor = current_actor()
    form = ResponseForm(prefix="callrec-response")
    allowed_or_403(actor, Action.VIEW_ASSESSMENTS, object_type="assessment", object_id=str(assessment_id))
    assessment = _own_assessment_or_404(actor, assessment_id, "assessment_response")
    page = _back_to_assessments("Respond to the assessment", "Send response")
    submitted_or_shown_again(form, page)
    comment = (form.response.data or "").strip()
    if form.stance.data == "disagree" and not comment:
        form.response.errors = [*form.response.errors, "Say why you disagree."]
        shown_again(form, page)
    assessment.response_stance, assessment.response, assessment.responded_at = form.stance.data, comment, clock.now()
    assessment.acknowledged_at = assessment.acknowledged_at or assessment.responded_at
    audit.record("assessment_response", "done", actor=actor, object_type="assessment", object_id=str(assessment.id),
                 recording_id=assessment.recording_id)
    db_session().commit()
    flash("Your response is recorded.", "callrec-info")
    return redirect(url_for("callrec.assessments_page") + f"#assessment-{assessment.id}")
