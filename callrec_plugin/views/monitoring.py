"""The owner's and manager's monitoring pages: the spot-check queue and sampling plan, the rubric,
and the monthly summary. All confidential to owner and manager (Action.ASSESS)."""
import datetime as dt

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for

from callrec_plugin import audit, monitoring_summary, rubric, spot_checks
from callrec_plugin.forms import ConfirmForm
from callrec_plugin.identity import current_actor
from callrec_plugin.models import Assessment, Recording
from callrec_plugin.monitoring_forms import RUBRIC_EDITS, RubricEditForm, SamplingPlanForm
from callrec_plugin.playback import issue_grant
from callrec_plugin.policy import authorize, decide
from callrec_plugin.roles import Action
from callrec_plugin.scoping import recording_or_404
from callrec_plugin.state import db_session
from callrec_plugin.views import (
    FormPage, allowed_or_403, blueprint, login_required, refused, shown_again, submitted_or_shown_again,
)

ROUTES = {
    "callrec.spot_checks_page": Action.ASSESS,
    "callrec.open_spot_check": Action.ASSESS,
    "callrec.sampling_plan": Action.ASSESS,
    "callrec.rubric_page": Action.ASSESS,
    "callrec.edit_rubric": Action.ASSESS,
    "callrec.monitoring_summary_page": Action.ASSESS,
}
SPOT_CHECK = "spot_check"
LAST = dt.datetime.max.replace(tzinfo=dt.timezone.utc)  # sorts a drawn call whose row is gone after the rest


def _allowed(actor, what):
    allowed_or_403(actor, Action.ASSESS, object_type=what, object_id=actor.practice_ref)


@blueprint.route("/spot-checks")
@login_required
def spot_checks_page():
    actor = current_actor()
    _allowed(actor, spot_checks.OBJECT_TYPE_DRAW)
    draws = spot_checks.draws_of(actor.practice_ref)
    wanted = request.args.get("month", "")
    current = next((d for d in draws if d.month == wanted), draws[0] if draws else None)
    checks = spot_checks.checks_of(current) if current else []
    recordings = {r.id: r for r in db_session().scalars(sa.select(Recording).where(
        Recording.practice_ref == actor.practice_ref, Recording.id.in_([c.recording_id for c in checks])))}
    checks = sorted(checks, key=lambda c: (c.staff_name.lower(), c.staff_user_ref, getattr(
        recordings.get(c.recording_id), "started_at", LAST)))
    outcomes = dict(db_session().execute(sa.select(Assessment.id, Assessment.outcome).where(
        Assessment.practice_ref == actor.practice_ref,
        Assessment.id.in_([c.assessment_id for c in checks if c.assessment_id]))).all())
    plan = spot_checks.plan_for(actor.practice_ref)
    db_session().commit()
    form = SamplingPlanForm(obj=plan, formdata=None)
    return render_template("callrec/spot_checks.html", draws=draws, current=current, checks=checks,
                           recordings=recordings, outcomes=outcomes, plan=plan, form=form,
                           describe_plan=spot_checks.describe_plan, month_label=spot_checks.month_label,
                           open_form=ConfirmForm(), done=sum(c.assessment_id is not None for c in checks))


@blueprint.route("/recordings/<recording_id>/spot-check", methods=["POST"])
@login_required
def open_spot_check(recording_id):
    """Open a call for a spot check: the purpose spot_check, decided and audited like any playback."""
    actor = current_actor()
    recording = recording_or_404(actor, recording_id, Action.ASSESS)
    may_assess = decide(actor, Action.ASSESS, recording)
    if not may_assess:  # one audited refusal; the playback decision below is the audited one otherwise
        refused(403, actor, Action.ASSESS, may_assess.reason, recording=recording)
    submitted_or_shown_again(ConfirmForm(), FormPage("Listen for this spot check", "Listen for this spot check",
                                                     url_for("callrec.spot_checks_page"), "the spot checks"))
    decision = authorize(actor, Action.PLAY, recording, purpose=SPOT_CHECK)
    if not decision:
        abort(403, decision.reason)
    issue_grant(actor, recording, Action.PLAY, SPOT_CHECK, None, None, decision.event.seq)
    db_session().commit()
    return redirect(url_for("callrec.assess_page", recording_id=recording.id) + "#player")


@blueprint.route("/spot-checks/plan", methods=["POST"])
@login_required
def sampling_plan():
    actor = current_actor()
    form = SamplingPlanForm()
    _allowed(actor, spot_checks.OBJECT_TYPE_PLAN)
    page = FormPage("The sampling plan", "Save the plan", url_for("callrec.spot_checks_page"), "the spot checks")
    submitted_or_shown_again(form, page)
    try:
        spot_checks.save_plan(actor, form.calls_per_staff.data, form.inbound_only.data,
                              float(form.min_duration_seconds.data or 0))
    except spot_checks.SpotCheckError as refusal:
        form.calls_per_staff.errors = [*form.calls_per_staff.errors, str(refusal)]
        shown_again(form, page)
    db_session().commit()
    flash("Sampling plan saved: it applies from the next draw.", "callrec-info")
    return redirect(url_for("callrec.spot_checks_page"))


@blueprint.route("/rubric")
@login_required
def rubric_page():
    actor = current_actor()
    _allowed(actor, "rubric")
    criteria = rubric.criteria(actor.practice_ref)
    retired = [c for c in rubric.criteria(actor.practice_ref, include_retired=True) if c.retired_at]
    db_session().commit()
    return render_template("callrec/rubric.html", criteria=criteria, retired=retired, form=RubricEditForm(),
                           score_labels=rubric.SCORES)


@blueprint.route("/rubric", methods=["POST"])
@login_required
def edit_rubric():
    actor = current_actor()
    form = RubricEditForm()
    _allowed(actor, "rubric")
    page = FormPage("Change the rubric", RUBRIC_EDITS.get(form.op.data, "Change"), url_for("callrec.rubric_page"),
                    "the rubric")
    submitted_or_shown_again(form, page)
    practice, key, label = actor.practice_ref, form.key.data or "", form.label.data or ""
    edits = {
        "add": lambda: rubric.add_criterion(practice, label),
        "reword": lambda: rubric.reword_criterion(practice, key, label),
        "retire": lambda: rubric.retire_criterion(practice, key),
        "up": lambda: rubric.move_criterion(practice, key, -1),
        "down": lambda: rubric.move_criterion(practice, key, +1),
    }
    try:
        changed = edits[form.op.data]()
    except rubric.RubricError as refusal:
        form.label.errors = [*form.label.errors, str(refusal)]
        shown_again(form, page)
    audit.record("rubric_changed", "done", actor=actor, object_type="rubric", object_id=practice,
                 reason=f"{form.op.data}: {changed.label}"[:500])
    db_session().commit()
    flash("Rubric changed. Past assessments keep the criteria they were made with.", "callrec-info")
    return redirect(url_for("callrec.rubric_page"))


@blueprint.route("/monitoring-summary")
@login_required
def monitoring_summary_page():
    actor = current_actor()
    _allowed(actor, "monitoring_summary")
    summary = monitoring_summary.summarise(actor.practice_ref)
    db_session().commit()
    return render_template("callrec/monitoring_summary.html", summary=summary, score_labels=rubric.SCORES,
                           series=monitoring_summary.SCORE_SERIES)
