"""The subject-access register: record a request first (owner, manager, data protection lead), see
every request with its deadline (overdue ones marked), extend a deadline with a reason, and build the
bundle that answers it (the person who registered the request builds and downloads it)."""
from flask import abort, flash, redirect, render_template, url_for
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from callrec_plugin import audit, subject_access
from callrec_plugin.forms import CallrecForm
from callrec_plugin.hold_groups import patient_names
from callrec_plugin.identity import current_actor
from callrec_plugin.models import utcnow
from callrec_plugin.patient_matching import find_candidates
from callrec_plugin.roles import Action
from callrec_plugin.scoping import patient_in_practice
from callrec_plugin.state import db_session
from callrec_plugin.views import blueprint, form_errors, login_required
from callrec_plugin.views.exports import SubjectAccessForm, allowed

ROUTES = {
    "callrec.subject_access_page": Action.EXPORT,
    "callrec.register_subject_access": Action.EXPORT,
    "callrec.subject_access_entry": Action.EXPORT,
    "callrec.extend_subject_access": Action.EXPORT,
}


class RegisterForm(CallrecForm):
    patient_ref = StringField("Patient (their name, or the reference in their record)", validators=[
        DataRequired(message="Name the patient."), Length(max=100)])
    received_on = DateField("Date the request was received", validators=[
        DataRequired(message="Give the date the request was received (YYYY-MM-DD).")])
    identity_method = TextAreaField("How the requester's identity was verified", validators=[
        DataRequired(message="Say how the requester's identity was verified."), Length(max=2000)])
    identity_verified_by = StringField("Identity verified by", validators=[
        DataRequired(message="Say who verified the requester's identity."), Length(max=128)])
    requester_reference = StringField("Requester's reference (optional)", validators=[Optional(), Length(max=128)])


class ExtendForm(CallrecForm):
    months = SelectField("Extend by", choices=[SelectChoice("1", "one further month"),
                                               SelectChoice("2", "two further months")])
    reason = TextAreaField("Reason for the extension", validators=[
        DataRequired(message="Give the reason for the extension."), Length(max=2000)])


def _entry_or_404(actor, entry_id):
    entry = subject_access.entry_in_practice(actor, entry_id)
    if entry is None:
        audit.record(Action.EXPORT, "denied", actor=actor, object_type="subject_access",
                     object_id=str(entry_id)[:64], reason="no such subject access request in the user's practice")
        db_session().commit()
        abort(404)
    return entry


def _patient_named(actor, form):
    """The patient the person named: a reference of their practice, or what finds exactly one patient
    through the host's search (a name, a date of birth). None, with the reason beside the field, else."""
    text = form.patient_ref.data.strip()
    if patient_in_practice(actor, text) is not None:
        return text
    matches = find_candidates(actor, text)
    if len(matches) == 1:
        return str(matches[0]["ref"])
    form.patient_ref.errors = [*form.patient_ref.errors, (
        f"{len(matches)} patients match: give the full name and date of birth, or the reference in the record."
        if matches else "No patient of your practice matches this.")]
    return None


def _register_page(actor, form, status=200, error=None):
    today = utcnow().date()
    entries = subject_access.register_entries(actor)
    return render_template("callrec/subject_access.html", entries=entries, form=form, error=error, today=today,
                           patient_names=patient_names(e.patient_ref for e in entries),
                           overdue={e.id for e in entries if subject_access.is_overdue(e, today)},
                           days_left=lambda e: subject_access.days_left(e, today)), status


@blueprint.route("/subject-access")
@login_required
def subject_access_page():
    actor = current_actor()
    allowed(actor, object_type="subject_access", object_id="register")
    db_session().commit()
    return _register_page(actor, RegisterForm())


@blueprint.route("/subject-access", methods=["POST"])
@login_required
def register_subject_access():
    actor = current_actor()
    form = RegisterForm()
    if not form.validate_on_submit():
        audit.record(Action.EXPORT, "denied", actor=actor, object_type="subject_access", object_id="register",
                     reason=f"invalid form: {form_errors(form)}"[:500])
        db_session().commit()
        return _register_page(actor, form, 400)
    patient_ref = _patient_named(actor, form)
    if patient_ref is None:
        audit.record("subject_access_registered", "denied", actor=actor, object_type="subject_access",
                     object_id="register", reason=f"no single patient found: {form.patient_ref.errors[-1]}"[:500])
        db_session().commit()
        return _register_page(actor, form, 404)
    allowed(actor, object_type="subject_access", object_id="register", patient_ref=patient_ref)
    try:
        entry = subject_access.register(
            actor, patient_ref=patient_ref, received_on=form.received_on.data,
            identity_method=form.identity_method.data, identity_verified_by=form.identity_verified_by.data,
            requester_reference=form.requester_reference.data)
    except subject_access.SubjectAccessError as refusal:
        db_session().rollback()
        audit.record("subject_access_registered", "denied", actor=actor, object_type="subject_access",
                     object_id="register", reason=str(refusal))
        db_session().commit()
        return _register_page(actor, form, refusal.status, error=str(refusal))
    flash(f"The request is registered; the answer is due by {entry.due_on:%d %B %Y}.", "callrec-info")
    return redirect(url_for("callrec.subject_access_entry", subject_access_id=entry.id))


def _entry_page(actor, entry, extend_form, status=200, error=None):
    today = utcnow().date()
    return render_template("callrec/subject_access_entry.html", entry=entry, extend_form=extend_form,
                           build_form=SubjectAccessForm(), error=error,
                           patient_name=patient_names([entry.patient_ref]).get(entry.patient_ref, entry.patient_ref),
                           bundles=subject_access.bundles_of(entry), actor=actor,
                           overdue=subject_access.is_overdue(entry, today),
                           days_left=subject_access.days_left(entry, today),
                           may_build=entry.registered_by_ref == actor.ref and entry.responded_at is None), status


@blueprint.route("/subject-access/<subject_access_id>")
@login_required
def subject_access_entry(subject_access_id):
    actor = current_actor()
    entry = _entry_or_404(actor, subject_access_id)
    allowed(actor, object_type="subject_access", object_id=entry.id, patient_ref=entry.patient_ref)
    db_session().commit()
    return _entry_page(actor, entry, ExtendForm())


@blueprint.route("/subject-access/<subject_access_id>/extension", methods=["POST"])
@login_required
def extend_subject_access(subject_access_id):
    actor = current_actor()
    form = ExtendForm()
    entry = _entry_or_404(actor, subject_access_id)
    about = dict(object_type="subject_access", object_id=entry.id, patient_ref=entry.patient_ref)
    allowed(actor, **about)
    if not form.validate_on_submit():
        db_session().rollback()
        audit.record("subject_access_extended", "denied", actor=actor, reason=f"invalid form: {form_errors(form)}"[:500],
                     **about)
        db_session().commit()
        return _entry_page(actor, entry, form, 400)
    try:
        subject_access.extend(actor, entry, int(form.months.data), form.reason.data)
    except subject_access.SubjectAccessError as refusal:
        db_session().rollback()
        audit.record("subject_access_extended", "denied", actor=actor, reason=str(refusal), **about)
        db_session().commit()
        return _entry_page(actor, entry, form, refusal.status, error=str(refusal))
    flash(f"The deadline is now {entry.due_on:%d %B %Y}.", "callrec-info")
    return redirect(url_for("callrec.subject_access_entry", subject_access_id=entry.id))
