"""The retention page, and changing one call's retention: extend, lawful erasure, training approval."""
import datetime as dt

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for

from callrec_plugin import audit, clock, training_library
from callrec_plugin import retention_report as report
from callrec_plugin.charts import bar_chart
from callrec_plugin.people import display_name
from callrec_plugin.erasure import RetentionError, approval_refusal, approve_erasure, request_erasure
from callrec_plugin.extensions import ExtensionRefused, extend, extension_cap, reason_label
from callrec_plugin.forms import ConfirmForm, ErasureForm, ExtendRetentionForm, TrainingForm
from callrec_plugin.import_runs import plaintext_left_on_pbx
from callrec_plugin.identity import current_actor
from callrec_plugin.models import ErasureRequest
from callrec_plugin.policy import decide
from callrec_plugin.practice_settings import settings_for
from callrec_plugin.retention import local_to_utc
from callrec_plugin.roles import Action
from callrec_plugin.scoping import patient_in_practice, recording_or_404
from callrec_plugin.state import db_session
from callrec_plugin.views import (
    FormPage, allowed_or_403, blueprint, login_required, refused_409, shown_again, submitted_or_shown_again,
)

ROUTES = {
    "callrec.retention_page": Action.VIEW_RETENTION,
    "callrec.extend_retention_view": Action.CHANGE_RETENTION,
    "callrec.request_erasure_view": Action.CHANGE_RETENTION,
    "callrec.approve_erasure_view": Action.CHANGE_RETENTION,
    "callrec.training_approval": Action.APPROVE_TRAINING,
}


@blueprint.route("/retention")
@login_required
def retention_page():
    actor = current_actor()
    allowed_or_403(actor, Action.VIEW_RETENTION, object_type="retention", object_id="report")
    db_session().commit()
    now = clock.now()
    patient_ref = request.args.get("patient") or None
    patient = patient_in_practice(actor, patient_ref) if patient_ref else None
    if patient_ref and patient is None:
        abort(404)  # another practice's patient and an unknown one look the same
    weeks, held = report.due_and_held(actor.practice_ref, now, patient_ref)
    deleted = report.deleted_per_month(actor.practice_ref, now)
    holds_by_kind = report.active_holds_by_kind(actor.practice_ref)
    pending_erasures = db_session().scalars(sa.select(ErasureRequest).where(
        ErasureRequest.practice_ref == actor.practice_ref, ErasureRequest.approved_at.is_(None),
        ErasureRequest.withdrawn_at.is_(None))).all()
    return render_template(
        "callrec/retention.html", now=now, settings=settings_for(actor.practice_ref),
        status=report.purge_status(actor.practice_ref, now), weeks=weeks, held=held, patient=patient,
        extensions=report.extensions_in(actor.practice_ref), extension_reason=reason_label,
        deleted=deleted, deleted_chart=bar_chart(deleted, "Calls deleted per month"),
        holds_by_kind=holds_by_kind,
        holds_chart=bar_chart(holds_by_kind, "Active holds by kind", horizontal=True, empty_text="No active holds."),
        erasures=pending_erasures, confirm=ConfirmForm(), may_change=decide(actor, Action.CHANGE_RETENTION).allowed,
        erasure_refusal=lambda erasure: approval_refusal(actor, erasure),
        person_name=lambda ref: display_name(actor.practice_ref, ref),
        pbx_originals=plaintext_left_on_pbx(actor.practice_ref))


def _back(recording):
    return redirect(_page_of(recording))


def _page_of(recording):
    return url_for("callrec.recording_page", recording_id=recording.id) + "#callrec-retention"


def _again(recording, title, submit):
    """Where an invalid form of the recording page's "Manage this call" section is shown again."""
    return FormPage(title, submit, _page_of(recording), "the call's page")


def _refused(actor, action, refusal, field, form, page, **audit_fields):
    """A refusal of the service, audited once. Of what was typed in ``field``: the form shown again, the
    reason beside the field, the input kept. Of the call's state (``field`` None: nothing typed would
    change it): a 409 that says why."""
    if field is None:
        refused_409(actor, action, refusal, **audit_fields)
    db_session().rollback()
    audit.record(action, "denied", actor=actor, reason=str(refusal), **audit_fields)
    db_session().commit()
    text = str(refusal)
    field.errors = [*field.errors, text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")]
    shown_again(form, page)


@blueprint.route("/recordings/<recording_id>/retention", methods=["POST"])
@login_required
def extend_retention_view(recording_id):
    actor = current_actor()
    form = ExtendRetentionForm(prefix="callrec-extend")
    recording = recording_or_404(actor, recording_id, Action.CHANGE_RETENTION)
    allowed_or_403(actor, Action.CHANGE_RETENTION, recording)
    page = _again(recording, "Keep the call longer", "Keep longer")
    submitted_or_shown_again(form, page)
    # Kept to the end of the chosen day on the practice's calendar.
    day_end = dt.datetime.combine(form.retain_until.data + dt.timedelta(days=1), dt.time())
    zone = settings_for(recording.practice_ref).zone
    until = local_to_utc(day_end, zone) - dt.timedelta(seconds=1)
    cap = extension_cap(recording)
    if cap.astimezone(zone).date() == form.retain_until.data:
        until = min(until, cap)  # "until 1 September", the cap's day: up to the cap's moment that day
    try:
        extend(actor, recording, until, form.reason_code.data, form.reason.data)
    except ExtensionRefused as refusal:
        field = {"new_until": form.retain_until, "reason_code": form.reason_code,
                 "reason_text": form.reason}.get(refusal.field)
        _refused(actor, Action.CHANGE_RETENTION, refusal, field, form, page, recording=recording)
    db_session().commit()
    flash(f"The call is kept until {until:%d %b %Y}.", "callrec-info")
    return _back(recording)


@blueprint.route("/recordings/<recording_id>/erasure", methods=["POST"])
@login_required
def request_erasure_view(recording_id):
    actor = current_actor()
    form = ErasureForm(prefix="callrec-erasure")
    recording = recording_or_404(actor, recording_id, Action.CHANGE_RETENTION)
    allowed_or_403(actor, Action.CHANGE_RETENTION, recording)
    submitted_or_shown_again(form, _again(recording, "Request erasure of the call",
                                          "Request erasure (a second person must approve)"))
    try:
        request_erasure(actor, recording, form.reason.data)
    except RetentionError as refusal:
        refused_409(actor, Action.CHANGE_RETENTION, refusal, recording=recording)
    db_session().commit()
    flash("Erasure requested: a second, different person must approve it on the retention page.", "callrec-info")
    return _back(recording)


@blueprint.route("/erasure/<int:request_id>/approve", methods=["POST"])
@login_required
def approve_erasure_view(request_id):
    actor = current_actor()
    erasure = db_session().scalar(sa.select(ErasureRequest).where(
        ErasureRequest.id == request_id, ErasureRequest.practice_ref == actor.practice_ref))
    if erasure is None:
        audit.record(Action.CHANGE_RETENTION, "denied", actor=actor, object_type="erasure_request",
                     object_id=str(request_id), reason="no such erasure request in the user's practice")
        db_session().commit()
        abort(404)
    recording = recording_or_404(actor, erasure.recording_id, Action.CHANGE_RETENTION)
    allowed_or_403(actor, Action.CHANGE_RETENTION, recording)
    submitted_or_shown_again(ConfirmForm(), FormPage("Approve the erasure", "Approve erasure",
                                                     url_for("callrec.retention_page"), "the retention page"))
    try:
        approve_erasure(actor, erasure, recording)
    except RetentionError as refusal:
        refused_409(actor, Action.CHANGE_RETENTION, refusal, recording=recording)
    db_session().commit()
    flash("Erasure approved: the call goes at the next purge unless a hold keeps it.", "callrec-info")
    return redirect(url_for("callrec.retention_page"))


@blueprint.route("/recordings/<recording_id>/training", methods=["POST"])
@login_required
def training_approval(recording_id):
    actor = current_actor()
    form = TrainingForm(prefix="callrec-training")
    recording = recording_or_404(actor, recording_id, Action.APPROVE_TRAINING)
    allowed_or_403(actor, Action.APPROVE_TRAINING, recording)
    page = _again(recording, "Training use of the call",
                  "Propose for training" if form.approve.data == "yes" else "Take out of the training library")
    submitted_or_shown_again(form, page)
    # Proposing asks the member of staff on the call; only their consent puts it in the library.
    try:
        if form.approve.data == "yes":
            consent = training_library.propose(actor, recording, form.note.data)
            message = ("Already in the training library." if consent.status == training_library.CONSENTED else
                       "Proposed for training: the member of staff on the call is asked for consent.")
        else:
            training_library.remove(actor, recording)
            message = "Taken out of the training library."
    except training_library.TrainingError as refusal:
        field = {"note": form.note}.get(refusal.field)
        _refused(actor, Action.APPROVE_TRAINING, refusal, field, form, page, recording=recording)
    db_session().commit()
    flash(message, "callrec-info")
    return _back(recording)
