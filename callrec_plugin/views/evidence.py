"""Attach calls to a complaint as evidence, and detach them, from the complaint panel."""
from flask import abort, flash, redirect

from callrec_plugin import audit
from callrec_plugin.evidence import EvidenceError, link, unlink
from callrec_plugin.state import db_session
from callrec_plugin.forms import AttachForm, DetachForm
from callrec_plugin.identity import current_actor
from callrec_plugin.roles import Action
from callrec_plugin.scoping import complaint_in_practice, recording_or_404
from callrec_plugin.views import FormPage, allowed_or_403, blueprint, login_required, refused_409, submitted_or_shown_again

ROUTES = {"callrec.attach_call": Action.ATTACH, "callrec.detach_call": Action.ATTACH}


def _complaint_or_404(actor, complaint_ref):
    complaint = complaint_in_practice(actor, complaint_ref)
    if complaint is None:
        audit.record(Action.ATTACH, "denied", actor=actor, object_type="complaint", object_id=complaint_ref[:64],
                     reason="no such complaint in the user's practice")
        db_session().commit()
        abort(404)
    return complaint


def _change(complaint_ref, form, change, title, submit):
    actor = current_actor()
    complaint = _complaint_or_404(actor, complaint_ref)
    recording = recording_or_404(actor, form.recording_id.data, Action.ATTACH)
    allowed_or_403(actor, Action.ATTACH, recording, complaint=complaint, object_type="complaint",
                   object_id=complaint_ref)
    submitted_or_shown_again(form, FormPage(title, submit, complaint.get("url") or "/", "the complaint"))
    try:
        change(actor, recording, complaint)
    except EvidenceError as refusal:
        refused_409(actor, Action.ATTACH, refusal, recording=recording, object_type="complaint",
                    object_id=complaint_ref)
    db_session().commit()
    return redirect(complaint.get("url") or "/")


@blueprint.route("/complaints/<complaint_ref>/links", methods=["POST"])
@login_required
def attach_call(complaint_ref):
    form = AttachForm(prefix="callrec-attach")

    def attach(actor, recording, complaint):
        link(actor, recording, complaint, form.note.data)
        flash("The call is attached to the complaint as evidence.", "callrec-info")

    return _change(complaint_ref, form, attach, "Attach the call to the complaint", "Attach")


@blueprint.route("/complaints/<complaint_ref>/links/detach", methods=["POST"])
@login_required
def detach_call(complaint_ref):
    form = DetachForm(prefix="callrec-detach")

    def detach(actor, recording, complaint):
        unlink(actor, recording, complaint, form.reason.data)
        flash("The call is detached from the complaint.", "callrec-info")

    return _change(complaint_ref, form, detach, "Detach the call from the complaint", "Detach")
