"""The recording page (metadata and the purpose form), grants, and the audio stream."""
import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for
from wtforms.fields.choices import SelectChoice

from callrec_plugin import audit, training_library, visibility
from callrec_plugin.state import db_session, get_state
from callrec_plugin.forms import ErasureForm, ExtendRetentionForm, PurposeForm, TrainingForm
from callrec_plugin.identity import current_actor
from callrec_plugin.models import ComplaintLink, Hold, utcnow
from callrec_plugin.panels import call_rows, complaint_titles
from callrec_plugin.pbx_facts import pbx_facts
from callrec_plugin.grants import recording_with_grant, refusal_reason, rules_by_purpose, valid_grant
from callrec_plugin.playback import audio_response, issue_grant
from callrec_plugin.policy import ACTION_ROLES, authorize, handles
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
    history = db_session().scalars(
        sa.select(ComplaintLink).where(ComplaintLink.recording_id == recording.id).order_by(ComplaintLink.linked_at)
    ).all()
    holds = db_session().scalars(
        sa.select(Hold).where(Hold.recording_id == recording.id).order_by(Hold.placed_at)
    ).all()
    complaints = complaint_titles({link.complaint_ref for link in history}
                                  | {hold.complaint_ref for hold in holds if hold.complaint_ref})
    row = visibility.visible_call_rows(actor, call_rows([recording]), complaints)[0]
    patient = None
    if recording.patient_ref:
        patient = get_state().pm.hook.callrec_patient_summary(patient_ref=recording.patient_ref)
    complaint_choices = _complaint_choices(actor, history, complaints)
    choices = _purpose_choices(actor, recording, complaint_choices)
    form.purpose.choices = [SelectChoice("", "Choose the purpose…")] + [SelectChoice(p, PURPOSES[p]) for p in choices]
    links = [visibility.link_view(actor, link, complaints.get(link.complaint_ref)) for link in history]
    holds = [visibility.hold_view(actor, hold, complaints.get(hold.complaint_ref)) for hold in holds]
    return dict(
        recording=recording,
        pbx=pbx_facts(actor, recording),  # the CDR's facts and the other legs of the same call
        row=row,
        retention_reason=_retention_reason(actor, row),
        links=[link for link in links if link],
        holds=[hold for hold in holds if hold.kind],  # those whose kind is hidden are the badge's "Held"
        patient=patient,
        form=form,
        may_choose_purpose=bool(choices) and recording.status == "active",
        may_download=actor.has_any(ACTION_ROLES[Action.DOWNLOAD]) and recording.status == "active",
        complaint_purpose="complaint" in choices,
        complaint_choices=complaint_choices if "complaint" in choices else [],
        may_play_some=actor.has_any(ACTION_ROLES[Action.PLAY]),
        grant=valid_grant(actor, recording, Action.PLAY),
        download_grant=valid_grant(actor, recording, Action.DOWNLOAD),
        purposes=PURPOSES,
        now=utcnow(),
        **_management_forms(actor, recording),
    )


def _purpose_choices(actor, recording, complaint_choices):
    """The purposes the actor may use for this call, in the policy's order: those their roles allow,
    less a trainer's training on a call not approved for it and a handler's complaint with no open
    complaint of theirs attached (none: no form, and the page says why)."""
    if not actor.has_any(ACTION_ROLES[Action.PLAY]):
        return []
    usable = rules_by_purpose(actor)

    def offered(purpose):
        rules = usable.get(purpose, set())
        if rules - {"approved_for_training", "handles_linked_complaint"}:
            return True
        return ("approved_for_training" in rules and recording.approved_for_training) or \
            ("handles_linked_complaint" in rules and bool(complaint_choices))

    return [purpose for purpose in PURPOSES if offered(purpose)]


def _complaint_choices(actor, history, complaints):
    """Open complaints of the practice this call is attached to (and, for a complaint handler, that
    they handle): the only complaints the complaint purpose may name."""
    choices = []
    for link in history:
        complaint = complaints.get(link.complaint_ref) or {}
        if (link.unlinked_at is None and complaint.get("status") == "open"
                and str(complaint.get("practice_ref")) == actor.practice_ref and handles(actor, complaint)):
            choices.append((link.complaint_ref, complaint.get("title") or link.complaint_ref))
    return choices


def _retention_reason(actor, row):
    """Why the call is kept, without saying for whom to those who may only know that it is held."""
    reason = row.eligibility.reason
    if reason.startswith("held") and not all(hold.kind for hold in row.holds):
        return "held"
    return reason


def _management_forms(actor, recording):
    """The owner's and manager's forms for this call: hold, retention, training, assessment."""
    if recording.status != "active" or not actor.has_any(ACTION_ROLES[Action.CHANGE_RETENTION]):
        return {"manage": False}
    from callrec_plugin.extensions import extension_cap, extensions_of, reason_label

    extensions = extensions_of([recording.id]).get(recording.id, [])
    return {
        "manage": True,
        "extensions": extensions,
        "extension_cap": extension_cap(recording, extensions),
        "extension_reason": reason_label,
        "extend_form": ExtendRetentionForm(prefix="callrec-extend"),
        "erasure_form": ErasureForm(prefix="callrec-erasure"),
        "training_form": TrainingForm(prefix="callrec-training"),
        "may_assess": bool(recording.staff_user_ref),
        "training_consent": training_library.consent_for(recording.id),
        "training_refusal": training_library.proposal_refusal(recording),
        "training_status": training_library.STATUS_LABELS,
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
    if action == Action.DOWNLOAD:
        # One step: the browser follows to the file (an attachment, so the page stays where it is).
        return redirect(url_for("callrec.recording_download", recording_id=recording.id))
    flash(f"You may listen for the purpose: {PURPOSES[purpose]}.", "callrec-info")
    return redirect(url_for("callrec.recording_page", recording_id=recording.id) + "#player")


def _stream(recording_id, action):
    actor = current_actor()
    # One statement: the recording, and the grant only if what made it lawful still holds (grants.py).
    recording, granted = recording_with_grant(actor, recording_id, action)
    if recording is None:
        recording_or_404(actor, recording_id, action)  # the audited 404, same as every other lookup
    if not granted or recording.status != "active":
        audit.record(action, "denied", actor=actor, recording=recording,
                     reason=refusal_reason(actor, recording, action))
        db_session().commit()
        abort(403, "Choose a purpose on the recording page before listening: no purpose you chose for this "
                   "call applies now.")
    # Allowed requests are audited once, when the grant was issued; each refusal has its own event.
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
