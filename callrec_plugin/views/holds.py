"""The holds page: place investigation, regulator and law-enforcement holds; approve their release."""
import datetime as dt

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for

from callrec_plugin import audit
from callrec_plugin.state import db_session, get_state
from callrec_plugin.forms import ConfirmForm, HoldForm
from callrec_plugin.holds import HoldError, PLACEABLE_KINDS, approve_release, place_holds, recordings_for_hold
from callrec_plugin.identity import current_actor
from callrec_plugin.models import Hold, HoldKind, Recording
from callrec_plugin.roles import Action
from callrec_plugin.views import allowed_or_403, blueprint, login_required, refused_409, submitted_or_400

ROUTES = {"callrec.holds_page": Action.HOLD, "callrec.place_hold": Action.HOLD, "callrec.release_hold": Action.RELEASE}

KIND_LABELS = {HoldKind.COMPLAINT: "Complaint", **PLACEABLE_KINDS}


def _active_holds(actor):
    return db_session().execute(
        sa.select(Hold, Recording).join(Recording, Recording.id == Hold.recording_id)
        .where(Hold.practice_ref == actor.practice_ref, Hold.released_at.is_(None))
        .order_by(Hold.placed_at.desc())
    ).all()


def _render(actor, form, status=200):
    return render_template("callrec/holds.html", holds=_active_holds(actor), form=form, confirm=ConfirmForm(),
                           kinds=KIND_LABELS, two_approver=HoldKind.TWO_APPROVER), status


@blueprint.route("/holds")
@login_required
def holds_page():
    actor = current_actor()
    allowed_or_403(actor, Action.HOLD, object_type="holds", object_id="list")
    db_session().commit()
    form = HoldForm(prefix="callrec-hold")
    if request.args.get("recording_id"):
        form.scope.data, form.recording_id.data = "recording", request.args["recording_id"]
    if request.args.get("patient_ref"):
        form.scope.data, form.patient_ref.data = "patient", request.args["patient_ref"]
    return _render(actor, form)


def _day(value):
    return None if value is None else dt.datetime.combine(value, dt.time(), dt.timezone.utc)


@blueprint.route("/holds", methods=["POST"])
@login_required
def place_hold():
    actor = current_actor()
    form = HoldForm(prefix="callrec-hold")
    allowed_or_403(actor, Action.HOLD, object_type="holds", object_id="place")
    if not form.validate_on_submit():
        db_session().rollback()  # nothing was decided about a form that says nothing valid
        return _render(actor, form, 400)
    try:
        end = _day(form.end.data) + dt.timedelta(days=1) if form.end.data else None
        recordings = recordings_for_hold(actor, form.scope.data, (form.recording_id.data or "").strip(),
                                         (form.patient_ref.data or "").strip(), _day(form.start.data), end)
        if not recordings:
            raise HoldError("no calls of your practice match; nothing was held")
        placed = place_holds(actor, recordings, form.kind.data, form.reason.data, form.external_reference.data)
    except HoldError as refusal:
        db_session().rollback()
        form.reason.errors = [*form.reason.errors, str(refusal)]
        return _render(actor, form, 400)
    db_session().commit()
    for hold in placed:
        get_state().pm.hook.callrec_hold_changed(recording_id=hold.recording_id, hold_id=hold.id, change="placed")
    flash(f"Held {len(placed)} call{'s' if len(placed) != 1 else ''}.", "callrec-info")
    return redirect(url_for("callrec.holds_page"))


@blueprint.route("/holds/<int:hold_id>/release", methods=["POST"])
@login_required
def release_hold(hold_id):
    actor = current_actor()
    hold = db_session().scalar(sa.select(Hold).where(Hold.id == hold_id, Hold.practice_ref == actor.practice_ref))
    if hold is None:
        audit.record(Action.RELEASE, "denied", actor=actor, object_type="hold", object_id=str(hold_id),
                     reason="no such hold in the user's practice")
        db_session().commit()
        abort(404)
    allowed_or_403(actor, Action.RELEASE, object_type="hold", object_id=str(hold.id))
    submitted_or_400(ConfirmForm())
    try:
        released = approve_release(actor, hold)
    except HoldError as refusal:
        refused_409(actor, Action.RELEASE, refusal, object_type="hold", object_id=str(hold.id),
                    recording_id=hold.recording_id)
    db_session().commit()
    flash("The hold is released; the grace period has started." if released
          else "Your approval is recorded; a second, different person must approve the release.", "callrec-info")
    return redirect(url_for("callrec.holds_page"))
