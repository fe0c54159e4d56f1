"""Spot-check assessments: confidential to the owner, the manager and the member of staff assessed."""
import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for

from callrec_plugin import audit, clock
from callrec_plugin.state import db_session
from callrec_plugin.forms import AssessmentForm, ResponseForm
from callrec_plugin.identity import current_actor
from callrec_plugin.models import Assessment, AuditEvent, Recording
from callrec_plugin.roles import MONITORING_ROLES, Action
from callrec_plugin.scoping import recording_or_404
from callrec_plugin.views import allowed_or_403, blueprint, login_required, refused_409, submitted_or_400

ROUTES = {
    "callrec.assessments_page": Action.VIEW_ASSESSMENTS,
    "callrec.create_assessment": Action.ASSESS,
    "callrec.respond_to_assessment": Action.VIEW_ASSESSMENTS,
}

OUTCOMES = {"meets": "Meets the standard", "partly": "Partly meets the standard",
            "does_not_meet": "Does not meet the standard"}


def visible_assessments(actor):
    """Owner and manager see every assessment of the practice; anyone else only those about them."""
    query = sa.select(Assessment).where(Assessment.practice_ref == actor.practice_ref)
    if not actor.has_any(MONITORING_ROLES):
        query = query.where(Assessment.staff_user_ref == actor.ref)
    return db_session().scalars(query.order_by(Assessment.created_at.desc())).all()


def _audit_trails(assessments):
    ids = [str(a.id) for a in assessments]
    trails = {}
    if ids:
        for event in db_session().scalars(sa.select(AuditEvent).where(
                AuditEvent.object_type == "assessment", AuditEvent.object_id.in_(ids)).order_by(AuditEvent.seq)):
            trails.setdefault(event.object_id, []).append(event)
    return trails


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
        sa.select(Recording).where(Recording.id.in_([a.recording_id for a in assessments])))}
    return render_template("callrec/assessments.html", assessments=assessments, recordings=recordings,
                           trails=_audit_trails(assessments), outcomes=OUTCOMES, me=actor.ref,
                           response_form=ResponseForm(prefix="callrec-response"))


@blueprint.route("/recordings/<recording_id>/assessments", methods=["POST"])
@login_required
def create_assessment(recording_id):
    actor = current_actor()
    form = AssessmentForm(prefix="callrec-assess")
    recording = recording_or_404(actor, recording_id, Action.ASSESS)
    allowed_or_403(actor, Action.ASSESS, recording)
    submitted_or_400(form)
    if not recording.staff_user_ref:
        refused_409(actor, Action.ASSESS, "This call has no member of staff on record, so it cannot be assessed.",
                    recording=recording)
    assessment = Assessment(recording_id=recording.id, practice_ref=recording.practice_ref,
                            staff_user_ref=recording.staff_user_ref, assessor_ref=actor.ref,
                            assessor_name=actor.name, outcome=form.outcome.data, notes=form.notes.data or "",
                            created_at=clock.now())
    db_session().add(assessment)
    db_session().flush()
    audit.record("assessment_created", "done", actor=actor, recording=recording, object_type="assessment",
                 object_id=str(assessment.id), reason=OUTCOMES[assessment.outcome])
    db_session().commit()
    flash("Spot-check assessment recorded. Only you, the owner or manager, and the member of staff can see it.",
          "callrec-info")
    return redirect(url_for("callrec.assessments_page"))


@blueprint.route("/assessments/<int:assessment_id>/response", methods=["POST"])
@login_required
def respond_to_assessment(assessment_id):
    actor = current_actor()
    form = ResponseForm(prefix="callrec-response")
    assessment = next((a for a in visible_assessments(actor) if a.id == assessment_id), None)
    if assessment is None or assessment.staff_user_ref != actor.ref:
        audit.record("assessment_response", "denied", actor=actor, object_type="assessment",
                     object_id=str(assessment_id), reason="only the member of staff assessed may respond")
        db_session().commit()
        abort(404)
    submitted_or_400(form)
    assessment.response, assessment.responded_at = form.response.data.strip(), clock.now()
    audit.record("assessment_response", "done", actor=actor, object_type="assessment", object_id=str(assessment.id),
                 recording_id=assessment.recording_id)
    db_session().commit()
    flash("Your response is recorded.", "callrec-info")
    return redirect(url_for("callrec.assessments_page"))
