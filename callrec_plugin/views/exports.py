"""Subject-access exports: request a bundle for a patient, watch it build, download it (requester only)."""
import sqlalchemy as sa
from flask import abort, current_app, flash, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from callrec_plugin import audit, exports, queueing
from callrec_plugin.state import db_session
from callrec_plugin.identity import current_actor
from callrec_plugin.models import Export, utcnow
from callrec_plugin.playback import audit_tampering_while_streaming
from callrec_plugin.policy import authorize, decide
from callrec_plugin.roles import Action
from callrec_plugin.forms import CallrecForm
from callrec_plugin.views import UNREADABLE, blueprint, login_required, unreadable_500
from callrec_plugin.views.jobs import REFRESH_SECONDS, queue_unavailable, refresh_header, refuse

ROUTES = {
    "callrec.exports_page": Action.EXPORT,
    "callrec.request_export": Action.EXPORT,
    "callrec.export_page": Action.EXPORT,
    "callrec.export_download": Action.EXPORT,
}

PAGE_SIZE = 100


class SubjectAccessForm(CallrecForm):
    patient_ref = StringField("Patient reference", validators=[
        DataRequired(message="Give the patient's reference (as in the patient record)."), Length(max=64)])


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


def _list_page(actor, form, status=200):
    exports_ = db_session().scalars(
        sa.select(Export).where(Export.practice_ref == actor.practice_ref)
        .order_by(Export.created_at.desc()).limit(PAGE_SIZE)).all()
    active = any(e.status in ("queued", "building") for e in exports_)
    html = render_template("callrec/exports.html", exports=exports_, form=form, actor=actor, now=utcnow(),
                           labels=exports.KIND_LABELS, patient_ref=request.args.get("patient_ref", ""))
    return refresh_header(make_response(html, status), active)


@blueprint.route("/exports")
@login_required
def exports_page():
    actor = current_actor()
    allowed(actor, object_type="exports", object_id="exports")
    db_session().commit()
    form = SubjectAccessForm()
    if request.args.get("patient_ref") and not form.patient_ref.data:
        form.patient_ref.data = request.args["patient_ref"][:64]
    return _list_page(actor, form)


@blueprint.route("/exports", methods=["POST"])
@login_required
def request_export():
    actor = current_actor()
    form = SubjectAccessForm()
    if not form.validate_on_submit():
        audit.record(Action.EXPORT, "denied", actor=actor, object_type="exports", object_id="exports",
                     reason="invalid form: " + "; ".join(m for ms in form.errors.values() for m in ms))
        db_session().commit()
        return _list_page(actor, form, status=400)
    patient_ref = form.patient_ref.data.strip()
    allowed(actor, object_type="patient", object_id=patient_ref, patient_ref=patient_ref)
    try:
        export, job = exports.request_subject_access(actor, patient_ref)
    except exports.ExportError as refusal:
        db_session().rollback()
        audit.record(Action.EXPORT, "denied", actor=actor, object_type="patient", object_id=patient_ref[:64],
                     reason=str(refusal))
        db_session().commit()
        return refuse(refusal.status, str(refusal))
    export_id = export.id
    try:
        queueing.dispatch(job.id)
    except queueing.QueueUnavailable as exc:
        return queue_unavailable(exc, "Building a subject access bundle")
    flash("The subject access bundle is being prepared. This page shows its progress.", "callrec-info")
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
    building = export.status in ("queued", "building")
    html = render_template("callrec/export.html", export=export, job=job, refusal=refusal, labels=exports.KIND_LABELS,
                           building=building, refreshing=building and request.args.get("refresh") != "off",
                           refresh_seconds=REFRESH_SECONDS, now=utcnow(),
                           redis=bool(current_app.config.get("CALLREC_REDIS_URL")))
    return refresh_header(make_response(html), building)


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
    reader.on_tamper = audit_tampering_while_streaming(actor, "export_download", practice_ref=export.practice_ref,
                                                       **about)
    audit.record("export_download", "done", actor=actor, **about,
                 reason=f"{exports.KIND_LABELS.get(export.kind, export.kind)} downloaded ({length} bytes)")
    db_session().commit()
    response = Response(reader, mimetype="application/zip", direct_passthrough=True)
    response.content_length = length
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.download_name(export)}"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if export.sha256:
        response.headers["X-Callrec-Bundle-SHA256"] = export.sha256
    return response
