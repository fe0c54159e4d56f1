"""The recording page (metadata and the purpose form), grants, and the audio stream."""
import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for

from callrec_plugin import audit
from callrec_plugin.state import db_session, get_state
from callrec_plugin.forms import AssessmentForm, ErasureForm, ExtendRetentionForm, PurposeForm, TrainingForm
from callrec_plugin.identity import current_actor
from callrec_plugin.models import ComplaintLink, Hold, utcnow
from callrec_plugin.panels import call_rows
from callrec_plugin.playback import audio_response, issue_grant, recording_with_grant, valid_grant
from callrec_plugin.policy import ACTION_ROLES, authorize
from callrec_plugin.roles import PURPOSES, Action
from callrec_plugin.scoping import recording_or_404
from callrec_plugin.views import UNREADABLE, blueprint, login_required, unreadable_500

ROUTES = {
    "callrec.recording_page": Action.VIEW_METADATA,
    "callrec.create_grant": Action.PLAY,
    "callrec.recording_audio": Action.PLAY,
    "callrec.recording_download": Action.DOWNLOAD,
}


def _page_context(actor, recording, form):
    row = call_rows([recording])[0]
    history = db_session().scalars(
        sa.select(ComplaintLink).where(ComplaintLink.recording_id == recording.id).order_by(ComplaintLink.linked_at)
    ).all()
    holds = db_session().scalars(
        sa.select(Hold).where(Hold.recording_id == recording.id).order_by(Hold.placed_at)
    ).all()
    patient = None
    if recording.patient_ref:
        patient = get_state().pm.hook.callrec_patient_summary(patient_ref=recording.patient_ref)
    return dict(
        recording=recording,
        row=row,
        links=history,
        holds=holds,
        patient=patient,
        form=form,
        may_choose_purpose=actor.has_any(ACTION_ROLES[Action.PLAY]) and recording.status == "active",
        may_download=actor.has_any(ACTION_ROLES[Action.DOWNLOAD]) and recording.status == "active",
        grant=valid_grant(actor, recording, Action.PLAY),
        download_grant=valid_grant(actor, recording, Action.DOWNLOAD),
        purposes=PURPOSES,
        now=utcnow(),
        **_management_forms(actor, recording),
    )


def _management_forms(actor, recording):
    """The owner's and manager's forms for this call: hold, retention, training, assessment."""
    if recording.status != "active" or not actor.has_any(ACTION_ROLES[Action.CHANGE_RETENTION]):
        return {"manage": False}
    return {
        "manage": True,
        "extend_form": ExtendRetentionForm(prefix="callrec-extend"),
        "erasure_form": ErasureForm(prefix="callrec-erasure"),
        "training_form": TrainingForm(prefix="callrec-training"),
        "assessment_form": AssessmentForm(prefix="callrec-assess") if recording.staff_user_ref else None,
    }


@blueprint.route("/recordings/<recording_id>")
@login_required
def recording_page(recording_id):
    actor = current_actor()
    recording = recording_or_404(actor, recording_id, Action.VIEW_METADATA)
    decision = authorize(actor, Action.VIEW_METADATA, recording)
    if not decision:
        abort(403, decision.reason)
    db_session().commit()
    return render_template("callrec/recording.html", **_page_context(actor, recording, PurposeForm()))


@blueprint.route("/recordings/<recording_id>/grants", methods=["POST"])
@login_required
def create_grant(recording_id):
    actor = current_actor()
    form = PurposeForm()
    action = Action.DOWNLOAD if form.action.data == Action.DOWNLOAD else Action.PLAY
    recording = recording_or_404(actor, recording_id, action)
    if not form.validate_on_submit():
        reason = "; ".join(msg for messages in form.errors.values() for msg in messages)
        audit.record(action, "denied", actor=actor, recording=recording, reason=f"invalid form: {reason}"[:500],
                     purpose=form.purpose.data if form.purpose.data in PURPOSES else None)
        db_session().commit()
        page = render_template("callrec/recording.html", **_page_context(actor, recording, form))
        return page, 400
    purpose, complaint_ref = form.purpose.data, (form.complaint_ref.data or "").strip()
    justification = (form.justification.data or "").strip()
    decision = authorize(actor, action, recording, purpose=purpose, complaint_ref=complaint_ref or None,
                         justification=justification or None)
    if not decision:
        page = render_template("callrec/recording.html", denial=decision.reason,
                               **_page_context(actor, recording, form))
        return page, 403
    # The decision's audit event is the grant's: one event per grant, none per Range request.
    issue_grant(actor, recording, action, purpose, complaint_ref, justification, decision.event.seq)
    db_session().commit()
    get_state().pm.hook.callrec_recording_played(recording_id=recording.id, user_ref=actor.ref, purpose=purpose)
    flash(f"You may listen for the purpose: {PURPOSES[purpose]}.", "callrec-info")
    return redirect(url_for("callrec.recording_page", recording_id=recording.id) + "#player")


def _stream(recording_id, action):
    actor = current_actor()
    recording, granted = recording_with_grant(actor, recording_id, action)
    if recording is None:
        recording_or_404(actor, recording_id, action)  # the audited 404, same as every other lookup
    if not granted or recording.status != "active":
        audit.record(action, "denied", actor=actor, recording=recording,
                     reason="no valid access grant: choose a purpose on the recording page first")
        db_session().commit()
        abort(403, "Choose a purpose on the recording page before listening.")
    # Audited once, when the grant was issued; Range requests within it are not events of their own.
    try:
        return audio_response(recording, as_attachment=(action == Action.DOWNLOAD), actor=actor, action=action)
    except UNREADABLE as damage:
        return unreadable_500(actor, action, damage, recording=recording)


@blueprint.route("/recordings/<recording_id>/audio")
@login_required
def recording_audio(recording_id):
    return _stream(recording_id, Action.PLAY)


@blueprint.route("/recordings/<recording_id>/download")
@login_required
def recording_download(recording_id):
    return _stream(recording_id, Action.DOWNLOAD)
