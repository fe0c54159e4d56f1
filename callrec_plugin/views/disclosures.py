"""The disclosure register: every disclosure ever requested, approved or refused, and the two-person approval.

A disclosure (recordings leaving the practice) goes only to a regulator or to law enforcement, with a
legal basis and the recipient's reference. One person (owner, manager or data protection lead)
requests it; a second, different person (owner or manager) approves it, and only then is the bundle
queued, for the requester to download and deliver.
"""
import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from callrec_plugin import audit, exports, queueing
from callrec_plugin.state import db_session
from callrec_plugin.formatting import call_label
from callrec_plugin.identity import current_actor
from callrec_plugin.models import AuditEvent, Disclosure, DisclosureItem, Export, Recording
from callrec_plugin.people import display_name
from callrec_plugin.roles import Action
from callrec_plugin.forms import CallrecForm
from callrec_plugin.views import FormPage, blueprint, login_required, submitted_or_shown_again
from callrec_plugin.views.exports import allowed
from callrec_plugin.views.jobs import queue_unavailable, refuse

ROUTES = {
    "callrec.disclosures_page": Action.EXPORT,
    "callrec.request_disclosure": Action.EXPORT,
    "callrec.disclosure_page": Action.EXPORT,
    "callrec.approve_disclosure": Action.EXPORT,
    "callrec.refuse_disclosure": Action.EXPORT,
}


class DisclosureForm(CallrecForm):
    recipient = StringField("Recipient (organisation and officer)", validators=[
        DataRequired(message="Name the recipient."), Length(max=200)])
    recipient_kind = SelectField("Kind of recipient", choices=[SelectChoice("", "Choose…")] + [
        SelectChoice(key, label) for key, label in exports.RECIPIENT_KINDS.items()],
        validators=[DataRequired(message="Choose regulator or law enforcement.")])
    legal_basis = TextAreaField("Legal basis", validators=[
        DataRequired(message="State the legal basis for the disclosure."), Length(max=2000)],
        description="For example: UK GDPR Article 6(1)(c) and the Data Protection Act 2018 Schedule 2 paragraph 2 "
                    "(crime), with the request's date.")
    reference = StringField("Recipient's reference", validators=[
        DataRequired(message="Give the recipient's reference."), Length(max=128)])
    recordings = TextAreaField("Calls to disclose (one recording id or recording page link per line)",
                               validators=[DataRequired(message="Select at least one call."), Length(max=20000)])


class DecisionForm(CallrecForm):
    reason = TextAreaField("Reason (for a refusal)", validators=[Optional(), Length(max=500)])


def disclosure_or_404(actor, disclosure_id):
    disclosure = db_session().scalar(sa.select(Disclosure).where(Disclosure.id == disclosure_id,
                                                                 Disclosure.practice_ref == actor.practice_ref))
    if disclosure is None:
        audit.record(Action.EXPORT, "denied", actor=actor, object_type="disclosure",
                     object_id=str(disclosure_id)[:64], reason="no such disclosure in the user's practice")
        db_session().commit()
        abort(404)
    return disclosure


def _names(actor, disclosures):
    """A function ref -> the name to show for the people named in these entries: as the audit trail
    recorded them acting on the entry, else their latest name in the trail, never the ref."""
    ids = [d.id for d in disclosures]
    rows = db_session().execute(
        sa.select(AuditEvent.actor_ref, AuditEvent.actor_name)
        .where(AuditEvent.object_type == "disclosure", AuditEvent.object_id.in_(ids))).all() if ids else []
    known = {ref: name for ref, name in rows if ref and name}
    return lambda ref: display_name(actor.practice_ref, ref, known.get(ref))


def _calls(actor, recording_ids):
    """(recording id, when it started or None) of the disclosed calls, oldest first: a call is named
    by its date, its id only in the link."""
    started = dict(db_session().execute(
        sa.select(Recording.id, Recording.started_at).where(Recording.id.in_(recording_ids),
                                                            Recording.practice_ref == actor.practice_ref)).all()
    ) if recording_ids else {}
    return sorted(((rid, started.get(rid)) for rid in recording_ids),
                  key=lambda call: (call[1] is None, call[1] or 0, call[0]))


def _register_page(actor, form, status=200, error=None):
    session = db_session()
    entries = session.scalars(sa.select(Disclosure).where(Disclosure.practice_ref == actor.practice_ref)
                              .order_by(Disclosure.requested_at.desc())).all()
    counts = dict(session.execute(
        sa.select(DisclosureItem.disclosure_id, sa.func.count()).join(
            Disclosure, Disclosure.id == DisclosureItem.disclosure_id)
        .where(Disclosure.practice_ref == actor.practice_ref).group_by(DisclosureItem.disclosure_id)).all())
    html = render_template("callrec/disclosures.html", entries=entries, counts=counts, names=_names(actor, entries),
                           form=form, kinds=exports.RECIPIENT_KINDS, error=error)
    return html, status


@blueprint.route("/disclosures")
@login_required
def disclosures_page():
    actor = current_actor()
    allowed(actor, object_type="disclosures", object_id="register")
    db_session().commit()
    form = DisclosureForm()
    preselected = [value for value in request.args.getlist("recording") if value]
    if preselected and not form.recordings.data:
        form.recordings.data = "\n".join(preselected[:200])
    return _register_page(actor, form)


@blueprint.route("/disclosures", methods=["POST"])
@login_required
def request_disclosure():
    actor = current_actor()
    form = DisclosureForm()
    if not form.validate_on_submit():
        reason = "; ".join(m for ms in form.errors.values() for m in ms)
        audit.record(Action.EXPORT, "denied", actor=actor, object_type="disclosures", object_id="register",
                     reason=f"invalid form: {reason}")
        db_session().commit()
        return _register_page(actor, form, 400)
    allowed(actor, object_type="disclosures", object_id="register")
    try:
        disclosure = exports.request_disclosure(
            actor, recipient=form.recipient.data, recipient_kind=form.recipient_kind.data,
            legal_basis=form.legal_basis.data, reference=form.reference.data,
            recording_ids=exports.parse_recording_ids(form.recordings.data))
    except exports.ExportError as refusal:
        db_session().rollback()
        audit.record("disclosure_requested", "denied", actor=actor, object_type="disclosures", object_id="register",
                     reason=str(refusal))
        db_session().commit()
        return _register_page(actor, form, refusal.status, error=str(refusal))
    flash("The disclosure was entered in the register. A second person (the practice owner or manager) "
          "must approve it before the bundle is made.", "callrec-info")
    return redirect(url_for("callrec.disclosure_page", disclosure_id=disclosure.id))


@blueprint.route("/disclosures/<disclosure_id>")
@login_required
def disclosure_page(disclosure_id):
    actor = current_actor()
    disclosure = disclosure_or_404(actor, disclosure_id)
    allowed(actor, object_type="disclosure", object_id=disclosure.id)
    db_session().commit()
    items = db_session().scalars(sa.select(DisclosureItem.recording_id)
                                 .where(DisclosureItem.disclosure_id == disclosure.id)).all()
    export = db_session().get(Export, disclosure.export_id) if disclosure.export_id else None
    # The same rules the approve and refuse handlers apply: a button only for whoever may press it.
    approval_refusal = exports.approval_refusal(actor, disclosure)
    may_refuse = exports.refusal_refusal(actor, disclosure) is None
    return render_template("callrec/disclosure.html", disclosure=disclosure, items=_calls(actor, items),
                           export=export, names=_names(actor, [disclosure]), call_label=call_label,
                           kinds=exports.RECIPIENT_KINDS, form=DecisionForm(),
                           may_approve=approval_refusal is None, may_refuse=may_refuse,
                           approval_refusal=approval_refusal, actor=actor,
                           redis=bool(current_app.config.get("CALLREC_REDIS_URL")))


def _decision(disclosure_id, decide, title, submit, only=None):
    actor = current_actor()
    form = DecisionForm()
    back = url_for("callrec.disclosure_page", disclosure_id=disclosure_id)
    submitted_or_shown_again(form, FormPage(title, submit, back, "the disclosure", only))
    disclosure = disclosure_or_404(actor, disclosure_id)
    allowed(actor, object_type="disclosure", object_id=disclosure.id)
    try:
        return actor, disclosure, decide(actor, disclosure, form)
    except exports.ExportError as refusal:
        db_session().rollback()
        audit.record("disclosure_decision", "denied", actor=actor, object_type="disclosure", object_id=disclosure_id,
                     reason=str(refusal))
        db_session().commit()
        return actor, disclosure, refuse(refusal.status, str(refusal))


@blueprint.route("/disclosures/<disclosure_id>/approve", methods=["POST"])
@login_required
def approve_disclosure(disclosure_id):
    actor, disclosure, outcome = _decision(
        disclosure_id, lambda actor, disclosure, form: exports.approve_disclosure(actor, disclosure),
        "Approve the disclosure", "Approve the disclosure", only=())
    if not isinstance(outcome, tuple) or len(outcome) != 2 or not isinstance(outcome[0], Export):
        return outcome
    export, job = outcome
    export_id = export.id
    try:
        queueing.dispatch(job.id)
    except queueing.QueueUnavailable as exc:
        return queue_unavailable(exc, "Building the disclosure bundle")
    flash("Approved. The disclosure bundle is being prepared for the person who requested it.", "callrec-info")
    return redirect(url_for("callrec.export_page", export_id=export_id))


@blueprint.route("/disclosures/<disclosure_id>/refuse", methods=["POST"])
@login_required
def refuse_disclosure(disclosure_id):
    actor, disclosure, outcome = _decision(
        disclosure_id, lambda actor, disclosure, form: exports.refuse_disclosure(actor, disclosure, form.reason.data),
        "Refuse the disclosure", "Refuse the disclosure")
    if outcome is not None:
        return outcome
    flash("The disclosure was refused; the register keeps the entry.", "callrec-info")
    return redirect(url_for("callrec.disclosure_page", disclosure_id=disclosure_id))
