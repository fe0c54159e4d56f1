"""Subject-access exports: request a bundle for a patient, watch it build, download it (requester only)."""
import sqlalchemy as sa
from flask import abort, current_app, flash, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response
from wtforms import HiddenField
from wtforms.validators import DataRequired, Length

from callrec_plugin import audit, exports, queueing, subject_access
from callrec_plugin.scoping import patient_in_practice
from callrec_plugin.state import db_session
from callrec_plugin.identity import current_actor
from callrec_plugin.models import Export, utcnow
from callrec_plugin.people import display_name
from callrec_plugin.playback import audit_tampering_while_streaming, served_from
from callrec_plugin.policy import authorize, decide
from callrec_plugin.roles import Action
from callrec_plugin.forms import CallrecForm
from callrec_plugin.views import UNREADABLE, FormPage, blueprint, login_required, shown_again, unreadable_500
from callrec_plugin.views.jobs import REFRESH_SECONDS, queue_unavailable, refresh_header, refuse

ROUTES = {
    "callrec.exports_page": Action.EXPORT,
    "callrec.request_export": Action.EXPORT,
    "callrec.export_page": Action.EXPORT,
    "callrec.export_download": Action.EXPORT,
    "callrec.export_status": Action.EXPORT,
}

# What each state means to the person waiting (the stored codes are for machines).
STATUS_LABELS = {"queued": "Waiting to be built", "building": "Being built", "ready": "Ready",
                 "failed": "Failed", "expired": "Expired"}
BUILDING = ("queued", "building")

PAGE_SIZE = 100


class SubjectAccessForm(CallrecForm):
    """Build the bundle of a registered subject-access request (the register page's button)."""

    subject_access_id = HiddenField("Subject access request", validators=[
        DataRequired(message="Register the subject access request first, then build its bundle from the register."),
        Length(max=32)])


def allowed(actor, **audit_fields):
    decision = authorize(actor, Action.EXPORT, **audit_fields)
    if not decision:
        abort(403, decision.reason)
    return decision


def export_or_404(actor, export_id):
    """The export in the actor's practice, or an audited 404 (another practice's looks the same as none)."""
    export = db_session().scalar(sa.select(Export).where(Export.id == export_id,
                                                         Export.practice_ref == actor.practice_ref))
    if export is None:
        audit.record(Action.EXPORT, "denied", actor=actor, object_type="export", object_id=str(export_id)[:64],
                     reason="no such export in the user's practice")
        db_session().commit()
        abort(404)
    return export


def _names(actor, rows):
    """What the export pages say instead of ids: who asked for each bundle, and whose calls it holds."""
    people = {row.id: display_name(row.practice_ref, row.requested_by_ref, row.requested_by_name) for row in rows}
    patients = {}
    for ref in {row.patient_ref for row in rows if row.patient_ref}:
        summary = patient_in_practice(actor, ref)
        patients[ref] = summary["name"] if summary and summary.get("name") else "a patient no longer on record"
    return {"requested_by": people, "patients": patients}


def _list_page(actor, form, status=200):
    exports_ = db_session().scalars(
        sa.select(Export).where(Export.practice_ref == actor.practice_ref)
        .order_by(Export.created_at.desc()).limit(PAGE_SIZE)).all()
    active = any(e.status in BUILDING for e in exports_)
    html = render_template("callrec/exports.html", exports=exports_, form=form, actor=actor, now=utcnow(),
                           labels=exports.KIND_LABELS, patient_ref=request.args.get("patient_ref", ""),
                           statuses=STATUS_LABELS, names=_names(actor, exports_))
    return refresh_header(make_response(html, status), active)


@blueprint.route("/exports")
@login_required
def exports_page():
    actor = current_actor()
    allowed(actor, object_type="exports", object_id="exports")
    db_session().commit()
    return _list_page(actor, SubjectAccessForm())


@blueprint.route("/exports", methods=["POST"])
@login_required
def request_export():
    actor = current_actor()
    form = SubjectAccessForm()
    if not form.validate_on_submit():
        audit.record(Action.EXPORT, "denied", actor=actor, object_type="exports", object_id="exports",
                     reason="invalid form: " + "; ".join(m for ms in form.errors.values() for m in ms))
        db_session().commit()
        shown_again(form, FormPage("Build the subject access bundle", "Build the bundle of the patient's calls",
                                   url_for("callrec.subject_access_page"), "the subject access register"))
    entry_id = form.subject_access_id.data.strip()
    allowed(actor, object_type="subject_access", object_id=entry_id[:64])
    try:
        export, job = exports.request_subject_access(actor, subject_access.entry_in_practice(actor, entry_id))
    except exports.ExportError as refusal:
        db_session().rollback()
        audit.record(Action.EXPORT, "denied", actor=actor, object_type="subject_access", object_id=entry_id[:64],
                     reason=str(refusal))
        db_session().commit()
        return refuse(refusal.status, str(refusal))
    export_id = export.id
    try:
        queueing.dispatch(job.id)
    except queueing.QueueUnavailable as exc:
        return queue_unavailable(exc, "Building a subject access bundle")
    db_session().expire_all()  # built in-process already when there is no queue: say so, honestly
    ready = db_session().get(Export, export_id).status == "ready"
    flash("The subject access bundle is ready to download." if ready
          else "The subject access bundle is being prepared. This page shows its progress.", "callrec-info")
    return redirect(url_for("callrec.export_page", export_id=export_id))


@blueprint.route("/exports/<export_id>")
@login_required
def export_page(export_id):
    actor = current_actor()
    export = export_or_404(actor, export_id)
    allowed(actor, object_type="export", object_id=export.id, patient_ref=export.patient_ref)
    db_session().commit()
    job = exports.job_for(export.id)
    refusal = exports.download_refusal(actor, export)
    building = export.status in BUILDING
    # On RQ the page's script polls the status endpoint and the bar moves without a reload; without a
    # queue the bundle is built in-process and the page refreshes itself (or is refreshed by hand).
    queued_on_rq = bool(current_app.config.get("CALLREC_REDIS_URL"))
    refreshing = building and not queued_on_rq and request.args.get("refresh") != "off"
    html = render_template("callrec/export.html", export=export, job=job, refusal=refusal, labels=exports.KIND_LABELS,
                           building=building, refreshing=refreshing, polling=building and queued_on_rq,
                           refresh_seconds=REFRESH_SECONDS, now=utcnow(), redis=queued_on_rq,
                           statuses=STATUS_LABELS, names=_names(actor, [export]))
    return refresh_header(make_response(html), refreshing)


@blueprint.route("/exports/<export_id>/status")
@login_required
def export_status(export_id):
    """The bundle's state for the page's progress bar: {"status", "done", "total"} (no patient data).

    Audited like the page, as a page view of the progress (audit_labels hides those unless asked)."""
    actor = current_actor()
    export = export_or_404(actor, export_id)
    allowed(actor, object_type="export_status", object_id=export.id)
    db_session().commit()
    response = jsonify(status=export.status, label=STATUS_LABELS.get(export.status, export.status),
                       done=export.progress_done or 0, total=export.progress_total or 0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blueprint.route("/exports/<export_id>/download")
@login_required
def export_download(export_id):
    actor = current_actor()
    export = export_or_404(actor, export_id)
    about = dict(object_type="export", object_id=export.id, patient_ref=export.patient_ref)
    # One audit event for the whole decision: the policy's role rule, then the bundle's own rules.
    decision = decide(actor, Action.EXPORT)
    refusal = exports.download_refusal(actor, export) if decision else (403, decision.reason)
    if refusal is not None:
        status, reason = refusal
        audit.record("export_download", "denied", actor=actor, reason=reason, **about)
        db_session().commit()
        return refuse(status, reason)
    try:
        reader = exports.open_bundle(export)
    except UNREADABLE as damage:
        return unreadable_500(actor, "export_download", damage, **about)
    try:
        length = reader.length  # verifies the final segment: a damaged bundle is refused, not half-sent
    except UNREADABLE as damage:
        reader.close()
        return unreadable_500(actor, "export_download", damage, **about)
    except Exception:
        reader.close()
        raise
    response = Response(reader, mimetype="application/zip", direct_passthrough=True)
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.download_name(export)}"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if export.sha256:
        response.headers["X-Callrec-Bundle-SHA256"] = export.sha256
    try:  # Range and If-Range, so a download of a large bundle that broke off can be resumed
        response = served_from(response, reader, length, f"{export.id}-{length}-{(export.sha256 or '')[:32]}")
    except UNREADABLE as damage:  # the first segment asked for is damaged: an error page, not a cut
        return unreadable_500(actor, "export_download", damage, **about)
    requested = request.headers.get("Range", "")
    audit.record("export_download", "done", actor=actor, **about,
                 reason=f"{exports.KIND_LABELS.get(export.kind, export.kind)} downloaded ({length} bytes"
                        + (f", {requested[:60]!r} asked for, answered {response.status_code})" if requested else ")"))
    exports.mark_delivered(actor, export)  # a subject-access request answered; a disclosure's hold period starts
    db_session().commit()
    reader.on_tamper = audit_tampering_while_streaming(actor, "export_download", practice_ref=export.practice_ref,
                                                       **about)
    return response
