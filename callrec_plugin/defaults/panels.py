"""Built-in slot content: the patient panel, the complaint panel, the stylesheet and menu links."""
from flask import current_app, url_for
from markupsafe import Markup

from callrec_plugin import visibility
from callrec_plugin.defaults.objections import objection_context
from callrec_plugin.forms import DetachForm, ObjectionForm
from callrec_plugin.hooks import hookimpl
from callrec_plugin.identity import actor_for, current_actor
from callrec_plugin.panels import (
    complaint_calls,
    complaint_titles,
    evidence_finder,
    patient_calls,
    requested_page,
)
from callrec_plugin.policy import decide
from callrec_plugin.roles import Action
from callrec_plugin.scoping import complaint_in_practice, patient_in_practice


def render_fragment(template_name, **context):
    """Render a panel without the host's context processors: a panel needs none of them, and a
    host's processor may query its database on every render (the panel is in every patient page)."""
    return Markup(current_app.jinja_env.get_template(template_name).render(**context))


def _actor(user):
    actor = current_actor()
    return actor if actor.user is user else actor_for(user)


@hookimpl(trylast=True)
def callrec_slot_patient_panel(patient_ref, user):
    actor = _actor(user)
    if patient_ref is None or not decide(actor, Action.VIEW_METADATA):
        return None
    if patient_in_practice(actor, str(patient_ref)) is None:
        return None  # another practice's patient, or one the host does not know: nothing to show
    page = patient_calls(actor, str(patient_ref), requested_page())
    objection_form = None
    if decide(actor, Action.RECORD_OBJECTION):
        # The call <select> is written by the template from the rows: WTForms' widget costs more
        # than the rest of the panel, and the view checks the call belongs to the patient anyway.
        objection_form = ObjectionForm(prefix="callrec-objection")
    refs = {ref for row in page.rows for ref in row.complaint_refs}
    complaints = complaint_titles(refs)
    return render_fragment(
        "callrec/patient_panel.html",
        patient_ref=str(patient_ref),
        page=page,
        recording_url=url_for("callrec.recording_page", recording_id="x")[:-1],
        # The objection history came with the calls (one statement); the banner shows only one that stands.
        **objection_context(actor, str(patient_ref), objection_form, list(page.objections)),
        complaints=complaints,
        # Need to know (visibility.py): which holds and complaints this user may know of.
        hold_labels={row.id: visibility.panel_hold_labels(
            actor, row.hold_kinds, [complaints[ref] for ref in row.complaint_refs if complaints.get(ref)])
            for row in page.rows},
        shown_complaints={row.id: visibility.visible_complaint_refs(actor, row.complaint_refs, complaints)
                          for row in page.rows},
        complaints_column=visibility.may_see_some(actor, visibility.Field.COMPLAINT_LINK),
    )


@hookimpl(trylast=True)
def callrec_slot_complaint_panel(complaint_ref, patient_ref, user):
    actor = _actor(user)
    if complaint_ref is None or not decide(actor, Action.VIEW_METADATA):
        return None
    complaint = complaint_in_practice(actor, str(complaint_ref))
    if complaint is None:
        return None
    rows = complaint_calls(actor, complaint["ref"])
    # The calls attached to a complaint, their notes and holds are for those who handle it (and the
    # owner and manager); anyone else who opens the complaint sees nothing of callrec's.
    if not visibility.may_see(actor, visibility.Field.COMPLAINT_LINK, complaint=complaint):
        return None
    rows = visibility.visible_call_rows(actor, rows, complaint_titles(visibility.complaint_refs_of(rows)))
    context = {"complaint": complaint, "complaint_ref": complaint["ref"], "rows": rows, "finder": None}
    if decide(actor, Action.ATTACH, complaint=complaint):
        context["finder"] = evidence_finder(actor, complaint, patient_ref, {row.recording.id for row in rows})
        context["detach_form"] = DetachForm(prefix="callrec-detach")
    return render_fragment("callrec/complaint_panel.html", **context)


@hookimpl(trylast=True)
def callrec_slot_head():
    return Markup('<link rel="stylesheet" href="{}">').format(url_for("callrec.stylesheet"))


@hookimpl(trylast=True)
def callrec_menu_links(user):
    actor = _actor(user)
    pages = [
        (Action.VIEW_CALL_LOG, "callrec.call_log_page", "Call log"),
        (Action.HOLD, "callrec.holds_page", "Holds"),
        (Action.VIEW_RETENTION, "callrec.retention_page", "Retention"),
        # Owner and manager see every assessment there; anyone else their own ("My call assessments").
        (Action.VIEW_ASSESSMENTS, "callrec.assessments_page",
         "Call assessments" if decide(actor, Action.ASSESS) else "My call assessments"),
        (Action.ASSESS, "callrec.spot_checks_page", "Spot checks"),
        (Action.ASSESS, "callrec.monitoring_summary_page", "Monitoring summary"),
        (Action.VIEW_TRAINING_LIBRARY, "callrec.training_library_page", "Training library"),
        (Action.VIEW_AUDIT, "callrec.audit_log", "Call audit"),
        (Action.EXPORT, "callrec.subject_access_page", "Subject access register"),
        (Action.EXPORT, "callrec.exports_page", "Call exports"),
        (Action.EXPORT, "callrec.disclosures_page", "Disclosure register"),
        (Action.MANAGE_JOBS, "callrec.jobs_page", "Call jobs"),
        (Action.VIEW_STAFF_MAPPING, "callrec.unmapped_extensions_page", "Unmapped extensions"),
    ]
    return [{"href": url_for(endpoint), "label": label} for action, endpoint, label in pages if decide(actor, action)]
