"""Built-in slot content: the patient panel, the complaint panel, the stylesheet and menu links."""
from flask import render_template, url_for
from markupsafe import Markup
from wtforms.fields.choices import SelectChoice

from callrec_plugin.forms import ObjectionForm
from callrec_plugin.hooks import hookimpl
from callrec_plugin.identity import actor_for, current_actor
from callrec_plugin.evidence import complaint_in_practice, handles
from callrec_plugin.forms import DetachForm
from callrec_plugin.panels import (
    active_objections,
    complaint_calls,
    complaint_titles,
    evidence_finder,
    patient_calls,
    requested_page,
)
from callrec_plugin.policy import decide
from callrec_plugin.roles import Action


def _actor(user):
    actor = current_actor()
    return actor if actor.user is user else actor_for(user)


@hookimpl(trylast=True)
def callrec_slot_patient_panel(patient_ref, user):
    actor = _actor(user)
    if patient_ref is None or not decide(actor, Action.VIEW_METADATA):
        return None
    page = patient_calls(actor, str(patient_ref), requested_page())
    objection_form = None
    if decide(actor, Action.RECORD_OBJECTION):
        objection_form = ObjectionForm(prefix="callrec-objection")
        objection_form.recording_id.choices = [SelectChoice("", "No particular call")] + [
            SelectChoice(row.recording.id, row.recording.started_at.strftime("%d %b %Y %H:%M")) for row in page.rows
        ]
    refs = {link.complaint_ref for row in page.rows for link in row.links}
    return Markup(render_template(
        "callrec/patient_panel.html",
        patient_ref=str(patient_ref),
        page=page,
        objections=active_objections(actor, str(patient_ref)),
        objection_form=objection_form,
        complaints=complaint_titles(refs),
    ))


@hookimpl(trylast=True)
def callrec_slot_complaint_panel(complaint_ref, patient_ref, user):
    actor = _actor(user)
    if complaint_ref is None or not decide(actor, Action.VIEW_METADATA):
        return None
    complaint = complaint_in_practice(actor, str(complaint_ref))
    if complaint is None:
        return None
    rows = complaint_calls(actor, complaint["ref"])
    context = {"complaint": complaint, "complaint_ref": complaint["ref"], "rows": rows, "finder": None}
    if decide(actor, Action.ATTACH) and handles(actor, complaint):
        context["finder"] = evidence_finder(actor, complaint, patient_ref, {row.recording.id for row in rows})
        context["detach_form"] = DetachForm(prefix="callrec-detach")
    return Markup(render_template("callrec/complaint_panel.html", **context))


@hookimpl(trylast=True)
def callrec_slot_head():
    return Markup('<link rel="stylesheet" href="{}">').format(url_for("callrec.stylesheet"))


@hookimpl(trylast=True)
def callrec_menu_links(user):
    actor = _actor(user)
    pages = [
        (Action.HOLD, "callrec.holds_page", "Holds"),
        (Action.VIEW_RETENTION, "callrec.retention_page", "Retention"),
        (Action.VIEW_ASSESSMENTS, "callrec.assessments_page", "Call assessments"),
        (Action.VIEW_AUDIT, "callrec.audit_log", "Call audit"),
    ]
    return [{"href": url_for(endpoint), "label": label} for action, endpoint, label in pages if decide(actor, action)]
