"""The holds page: one row per hold request, filtered by kind, status and patient; place holds found
by patient and date; release a request's calls as one (two different people for regulator and police)."""
import datetime as dt

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for

from callrec_plugin import audit, holds, visibility
from callrec_plugin.forms import ConfirmForm, HoldForm
from callrec_plugin.hold_groups import (
    KIND_LABELS, STATUS_LABELS, HoldFilterForm, calls_for_patient, hold_groups, patient_names, person,
)
from callrec_plugin.holds import HoldError, approve_group_release, place_holds, recordings_for_hold
from callrec_plugin.identity import current_actor
from callrec_plugin.models import Hold
from callrec_plugin.patient_matching import find_candidates
from callrec_plugin.policy import decide
from callrec_plugin.practice_settings import settings_for
from callrec_plugin.roles import Action
from callrec_plugin.scoping import find_recording, patient_in_practice
from callrec_plugin.state import db_session, get_state
from callrec_plugin.views import (
    FormPage, allowed_or_403, blueprint, login_required, refused_409, submitted_or_shown_again,
)

ROUTES = {"callrec.holds_page": Action.HOLD, "callrec.place_hold": Action.HOLD, "callrec.release_hold": Action.RELEASE}

FIND_BUTTON = "callrec-hold-find"


def _finder(actor, form):
    """The patient and calls the place-hold form has found so far (a person never types an id)."""
    found = {"patients": [], "patient": None, "calls": [], "call": None}
    ref = (form.patient_ref.data or "").strip()
    if ref:
        found["patient"] = patient_in_practice(actor, ref)
    name = (form.patient_name.data or "").strip()
    if found["patient"] is None and name:
        matches = find_candidates(actor, name)
        if len(matches) == 1:
            found["patient"] = matches[0]
            form.patient_ref.data = str(matches[0]["ref"])
        else:
            found["patients"] = matches
            message = "Several patients match: choose one." if matches else "No patient of your practice matches this."
            form.patient_name.errors = [*form.patient_name.errors, message]
    if found["patient"] is not None and form.scope.data == "recording":
        found["calls"] = calls_for_patient(actor, str(found["patient"]["ref"]), form.call_date.data)
    recording_id = (form.recording_id.data or "").strip()
    if recording_id:
        found["call"] = find_recording(actor, recording_id)
    return found


def _render(actor, form, found, status=200):
    filters = HoldFilterForm(request.args, actor)
    groups = []
    if filters.validate():
        patient_refs = [str(p["ref"]) for p in filters.patients] if filters.patients else None
        groups = hold_groups(actor, filters.kind.data or None, filters.status.data or None, patient_refs)
    elif request.method == "GET":
        status = 400
    names = patient_names([ref for group in groups for ref in group.patient_refs])
    return render_template(
        "callrec/holds.html", groups=groups, filters=filters, form=form, found=found, confirm=ConfirmForm(),
        kinds=KIND_LABELS, statuses=STATUS_LABELS, patient_names=names, actor=actor,
        # The release button is offered by the rule that judges its POST (holds.release_refusal).
        may_release=decide(actor, Action.RELEASE).allowed,
        release_refusal=lambda group: holds.release_refusal(actor, group),
        view=lambda hold: visibility.hold_view(actor, hold), person=lambda name, ref: person(actor, name, ref),
        grace_days=settings_for(actor.practice_ref).grace_days), status


@blueprint.route("/holds")
@login_required
def holds_page():
    actor = current_actor()
    allowed_or_403(actor, Action.HOLD, object_type="holds", object_id="list")
    db_session().commit()
    form = HoldForm(prefix="callrec-hold")
    if request.args.get("recording_id"):
        form.scope.data, form.recording_id.data = "recording", request.args["recording_id"][:32]
        call = find_recording(actor, form.recording_id.data)
        if call is not None and call.patient_ref:
            form.patient_ref.data = call.patient_ref
    if request.args.get("patient_ref"):
        form.scope.data, form.patient_ref.data = "patient", request.args["patient_ref"][:64]
    return _render(actor, form, _finder(actor, form))


def _day(value):
    return None if value is None else dt.datetime.combine(value, dt.time(), dt.timezone.utc)


def _recordings(actor, form, found):
    """The calls the form asks to hold; a HoldError names what is missing, set beside its field."""
    scope = form.scope.data
    if scope == "recording" and found["call"] is None:
        form.recording_id.errors = [*form.recording_id.errors,
                                    "Choose the call: find the patient, then pick one of their calls."]
        return None
    if scope == "patient" and not (form.patient_ref.data or "").strip():
        if not form.patient_name.errors:
            form.patient_name.errors = [*form.patient_name.errors, "Find the patient whose calls to hold."]
        return None
    end = _day(form.end.data) + dt.timedelta(days=1) if form.end.data else None
    recordings = recordings_for_hold(actor, scope, (form.recording_id.data or "").strip(),
                                     (form.patient_ref.data or "").strip(), _day(form.start.data), end)
    if not recordings:
        field = {"recording": form.recording_id, "patient": form.patient_name}.get(scope, form.end)
        field.errors = [*field.errors, "No calls of your practice match; nothing was held."]
        return None
    return recordings


@blueprint.route("/holds", methods=["POST"])
@login_required
def place_hold():
    actor = current_actor()
    form = HoldForm(prefix="callrec-hold")
    allowed_or_403(actor, Action.HOLD, object_type="holds", object_id="place")
    if FIND_BUTTON in request.form:  # "Find": show the patients and calls found; nothing is held
        db_session().rollback()
        token = ConfirmForm(prefix="callrec-hold")
        if not token.validate_on_submit():  # expired: the page says so above the form, the input kept
            form.csrf_token.errors = token.csrf_token.errors
            return _render(actor, form, _finder(actor, form), 400)
        return _render(actor, form, _finder(actor, form))
    valid = form.validate_on_submit()
    found = _finder(actor, form)
    recordings = _recordings(actor, form, found) if valid else None
    if recordings is None:
        db_session().rollback()  # nothing was decided about a form that says nothing valid
        return _render(actor, form, found, 400)
    try:
        placed = place_holds(actor, recordings, form.kind.data, form.reason.data, form.external_reference.data)
    except HoldError as refusal:
        db_session().rollback()
        form.reason.errors = [*form.reason.errors, str(refusal)]
        return _render(actor, form, found, 400)
    db_session().commit()
    for hold in placed:
        get_state().pm.hook.callrec_hold_changed(recording_id=hold.recording_id, hold_id=hold.id, change="placed")
    flash(f"Held {len(placed)} call{'s' if len(placed) != 1 else ''}.", "callrec-info")
    return redirect(url_for("callrec.holds_page"))


@blueprint.route("/holds/<int:hold_id>/release", methods=["POST"])
@login_required
def release_hold(hold_id):
    """Approve releasing the request ``hold_id`` belongs to: all its calls at once."""
    actor = current_actor()
    hold = db_session().scalar(sa.select(Hold).where(Hold.id == hold_id, Hold.practice_ref == actor.practice_ref))
    if hold is None:
        audit.record(Action.RELEASE, "denied", actor=actor, object_type="hold", object_id=str(hold_id),
                     reason="no such hold in the user's practice")
        db_session().commit()
        abort(404)
    allowed_or_403(actor, Action.RELEASE, object_type="hold", object_id=str(hold.id))
    submitted_or_shown_again(ConfirmForm(), FormPage("Approve the release of the hold", "Approve release",
                                                     url_for("callrec.holds_page"), "the holds page"))
    try:
        released = approve_group_release(actor, hold)
    except HoldError as refusal:
        refused_409(actor, Action.RELEASE, refusal, object_type="hold", object_id=str(hold.id),
                    recording_id=hold.recording_id)
    db_session().commit()
    flash("The hold is released; the grace period has started." if released
          else "Your approval is recorded; a second, different person must approve the release.", "callrec-info")
    return redirect(url_for("callrec.holds_page"))
