"""The training library page (trainer, owner, manager) and the member of staff's answer to a training
request. Proposing a call is the recording page's training form (views/retention.py)."""
from flask import abort, flash, redirect, render_template, request, url_for

from callrec_plugin import training_library
from callrec_plugin.forms import ConfirmForm
from callrec_plugin.grants import valid_grant
from callrec_plugin.identity import current_actor
from callrec_plugin.monitoring_forms import ConsentAnswerForm
from callrec_plugin.playback import issue_grant
from callrec_plugin.policy import authorize, decide
from callrec_plugin.roles import Action
from callrec_plugin.scoping import recording_or_404
from callrec_plugin.state import db_session
from callrec_plugin.views import (
    FormPage, allowed_or_403, blueprint, login_required, refused, refused_409, submitted_or_shown_again,
)

ROUTES = {
    "callrec.training_library_page": Action.VIEW_TRAINING_LIBRARY,
    "callrec.training_listen": Action.VIEW_TRAINING_LIBRARY,
    "callrec.answer_training_request": Action.VIEW_ASSESSMENTS,
}
TRAINING = "training"


@blueprint.route("/training")
@login_required
def training_library_page():
    actor = current_actor()
    allowed_or_403(actor, Action.VIEW_TRAINING_LIBRARY, object_type="training_library", object_id=actor.practice_ref)
    entries = training_library.library(actor.practice_ref)
    db_session().commit()
    playing = request.args.get("playing", "")
    grant = None
    for recording, _consent in entries:
        if recording.id == playing:
            grant = valid_grant(actor, recording, Action.PLAY)
    # Consent requests and refusals are the staff member's and the monitoring roles' business only.
    requests = training_library.requests_of_practice(actor.practice_ref) if decide(actor, Action.ASSESS) else []
    return render_template("callrec/training_library.html", entries=entries, playing=playing if grant else None,
                           listen_form=ConfirmForm(), requests=requests, consent_labels=training_library.STATUS_LABELS)


@blueprint.route("/training/<recording_id>/listen", methods=["POST"])
@login_required
def training_listen(recording_id):
    """Play a library call for the purpose training: decided and audited like every playback."""
    actor = current_actor()
    recording = recording_or_404(actor, recording_id, Action.PLAY)
    may_use_library = decide(actor, Action.VIEW_TRAINING_LIBRARY, recording)
    if not may_use_library:  # one audited refusal; the playback decision below is the audited one otherwise
        refused(403, actor, Action.PLAY, may_use_library.reason, recording=recording, purpose=TRAINING)
    submitted_or_shown_again(ConfirmForm(), FormPage("Listen to a training call", "Listen",
                                                     url_for("callrec.training_library_page"), "the training library"))
    if not recording.approved_for_training:
        refused(403, actor, Action.PLAY, "the call is not in the training library", recording=recording,
                purpose=TRAINING)
    decision = authorize(actor, Action.PLAY, recording, purpose=TRAINING)
    if not decision:
        abort(403, decision.reason)
    issue_grant(actor, recording, Action.PLAY, TRAINING, None, None, decision.event.seq)
    db_session().commit()
    return redirect(url_for("callrec.training_library_page", playing=recording.id) + f"#call-{recording.id}")


@blueprint.route("/training/<recording_id>/answer", methods=["POST"])
@login_required
def answer_training_request(recording_id):
    """The member of staff on the call consents, declines or withdraws consent (at any time)."""
    actor = current_actor()
    form = ConsentAnswerForm()
    recording = recording_or_404(actor, recording_id, Action.VIEW_ASSESSMENTS)
    allowed_or_403(actor, Action.VIEW_ASSESSMENTS, recording)
    consent = training_library.consent_for(recording.id)
    if not training_library.is_staff_on_call(actor, recording, consent):
        # The same answer as a missing call: a request about someone else's call is not theirs to know of.
        refused(404, actor, "training_consent", "only the member of staff on the call may answer",
                recording=recording)
    # The answer is the button pressed: shown again (an expired form), the same buttons come back.
    submitted_or_shown_again(form, FormPage("Answer the training request", [
        {"label": choice.label, "name": "decision", "value": choice.value} for choice in form.decision.choices],
        url_for("callrec.assessments_page") + "#training-requests", "your call assessments"))
    try:
        consent = training_library.answer(actor, recording, form.decision.data)
    except training_library.TrainingError as refusal:
        refused_409(actor, "training_consent", refusal, recording=recording)
    db_session().commit()
    flash({"consented": "Thank you: the call is in the training library. You can withdraw at any time.",
           "declined": "Declined: the call will not be used for training.",
           "withdrawn": "Consent withdrawn: the call has left the training library."}[consent.status], "callrec-info")
    return redirect(url_for("callrec.assessments_page") + "#training-requests")
