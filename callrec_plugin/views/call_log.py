"""The call log page and its CSV, and linking a call no number matched to a patient."""
import csv
import io
from dataclasses import replace

import sqlalchemy as sa
from flask import Response, abort, current_app, flash, redirect, render_template, request, stream_with_context, url_for

from wtforms.fields.choices import SelectChoice

from callrec_plugin import audit, call_log, clock, patient_matching
from callrec_plugin.call_log_forms import CallSearchForm, MatchDecisionForm, MatchForm
from callrec_plugin.csv_cells import safe_cell
from callrec_plugin.ingest.numbers import number_for_spreadsheet
from callrec_plugin.formatting import direction_label, duration_text
from callrec_plugin.identity import current_actor
from callrec_plugin.models import PatientMatch
from callrec_plugin.patient_matching import MatchError
from callrec_plugin.policy import decide
from callrec_plugin.practice_settings import settings_for
from callrec_plugin.roles import Action
from callrec_plugin.scoping import patient_in_practice, recording_or_404
from callrec_plugin.state import db_session
from callrec_plugin.views import (
    FORM_EXPIRED, FormPage, allowed_or_403, blueprint, form_errors, login_required, refused, shown_again,
)
from callrec_plugin.visibility import Field, may_see

ROUTES = {
    "callrec.call_log_page": Action.VIEW_CALL_LOG,
    "callrec.call_log_csv": Action.VIEW_CALL_LOG,
    "callrec.match_page": Action.MATCH_CALL,
    "callrec.match_call_view": Action.MATCH_CALL,
    "callrec.undo_match_view": Action.MATCH_CALL,
    "callrec.confirm_match_view": Action.MATCH_CALL,
    "callrec.reject_match_view": Action.MATCH_CALL,
}

# Columns of the log and its CSV: (key, heading, the visibility field that decides who sees it).
COLUMNS = (
    ("when", "Date and time", Field.CALL_DATE),
    ("direction", "Direction", Field.CALL_DIRECTION),
    ("number", "Number", Field.CALL_NUMBER),
    ("duration", "Duration", Field.CALL_DURATION),
    ("handled_by", "Handled by", Field.CALL_HANDLED_BY),
    ("patient", "Patient", Field.CALL_PATIENT),
    ("held", "Held", Field.CALL_HELD),
)


def visible_columns(actor):
    return [(key, heading) for key, heading, field in COLUMNS if may_see(actor, field)]


def _search_form(actor, args):
    settings = settings_for(actor.practice_ref)
    today = clock.now().astimezone(settings.zone).date()
    form = CallSearchForm(args, region=current_app.config["CALLREC_PHONE_REGION"], today=today)
    form.staff.choices = [SelectChoice("", "Anyone")] + [
        SelectChoice(ref, name) for ref, name in call_log.staff_on_calls(db_session(), actor.practice_ref)]
    return form, settings.zone, today


def _patient_names(actor, rows):
    names = {}
    for ref in {row.patient_ref for row in rows if row.patient_ref}:
        summary = patient_in_practice(actor, ref)
        names[ref] = summary.get("name") if summary else None
    return names


def _row(recording, zone, held_ids, patient_names):
    local = recording.started_at.astimezone(zone)
    return {
        "id": recording.id,
        "iso": recording.started_at.isoformat(),
        "when": local.strftime("%a %d %b %Y %H:%M"),
        "direction": direction_label(recording.direction),
        "number": recording.external_number or "—",
        "duration": duration_text(recording.duration_seconds),
        "handled_by": recording.staff_name or recording.staff_extension or "—",
        "patient": patient_names.get(recording.patient_ref) or ("—" if recording.patient_ref is None else
                                                                 "Patient not found"),
        "patient_ref": recording.patient_ref,
        "held": "Held" if recording.id in held_ids else "",
        "purged": recording.status == "purged",
        "short_call": recording.short_call,
        "after_objection": recording.recorded_despite_objection,
    }


@blueprint.route("/calls")
@login_required
def call_log_page():
    actor = current_actor()
    form, zone, today = _search_form(actor, request.args)
    valid = form.validate()
    search = form.search() if valid else None
    patient_choices = []
    if valid and form.patient_name.data and not (search.patient_ref or search.no_patient):
        search, patient_choices = _patient_by_name(actor, form, search)
        valid = search is not None
    allowed_or_403(actor, Action.VIEW_CALL_LOG, object_type="call_log", object_id="search",
                   detail=f"search: {search.describe()}" if valid else "search: filters not valid, nothing searched")
    db_session().commit()
    session = db_session()
    page, count, rows = None, None, []
    if valid:
        query = call_log.search_query(actor.practice_ref, search, zone, today)
        page = call_log.page_of(session, query, form.cursor())
        count = page.count
        names = _patient_names(actor, page.rows)
        rows = [_row(r, zone, page.held_ids, names) for r in page.rows]
    may_match = decide(actor, Action.MATCH_CALL).allowed
    proposals = patient_matching.open_proposals(actor.practice_ref) if may_match else []
    return render_template(
        "callrec/call_log.html", form=form, rows=rows, page=page, count=count, cap=call_log.COUNT_CAP,
        columns=visible_columns(actor), may_match=may_match, zone=zone, proposals=proposals,
        patient_choices=[(p, _args_with(request.args, after=None, patient_name=None, patient=str(p["ref"])))
                         for p in patient_choices],
        patient_shown=patient_in_practice(actor, search.patient_ref) if valid and search.patient_ref else None,
        proposal_names=_patient_names(actor, [m for m, _ in proposals]), decision_form=_decision_form("callrec-proposal"),
        proposal_refusals={m.id: patient_matching.proposal_refusal(actor, m, r) for m, r in proposals},
        next_args=_args_with(request.args, after=page.next_cursor.token()) if page and page.next_cursor else None,
        first_args=_args_with(request.args, after=None) if form.after.data else None,
        csv_args=_args_with(request.args, after=None),
        all_patients_args=_args_with(request.args, after=None, patient=None, patient_name=None),
    ), 200 if valid else 400


def _patient_by_name(actor, form, search):
    """(search for the one patient the name finds, []) or (None, the patients to choose from)."""
    found = patient_matching.find_candidates(actor, form.patient_name.data)
    if len(found) == 1:
        return replace(search, patient_ref=str(found[0]["ref"])), []
    form.patient_name.errors = [*form.patient_name.errors, "No patient of the practice matches this." if not found
                                else "Several patients match: choose one below."]
    return None, found


def _args_with(args, **changes):
    merged = {key: value for key, value in args.items(multi=False)}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


@blueprint.route("/calls.csv")
@login_required
def call_log_csv():
    actor = current_actor()
    form, zone, today = _search_form(actor, request.args)
    if not form.validate():
        allowed_or_403(actor, Action.VIEW_CALL_LOG, object_type="call_log", object_id="csv",
                       detail="CSV export: filters not valid, nothing exported")
        db_session().commit()
        abort(400, "The filters are not valid: correct them on the call log page, then download again.")
    search = form.search()
    allowed_or_403(actor, Action.VIEW_CALL_LOG, object_type="call_log", object_id="csv",
                   detail=f"CSV export of the call log: {search.describe()}")
    db_session().commit()
    columns = visible_columns(actor)
    query = call_log.search_query(actor.practice_ref, search, zone, today)
    return Response(stream_with_context(_csv_lines(actor, query, zone, columns)), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="calls.csv"',
                             "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})


def _csv_lines(actor, query, zone, columns):
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flushed():
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([heading for _key, heading in columns])
    yield flushed()
    region = current_app.config["CALLREC_PHONE_REGION"]
    session = db_session()
    for chunk in session.execute(query.statement.execution_options(yield_per=500), query.params).scalars().partitions():
        held = call_log.active_hold_ids(session, [r.id for r in chunk])
        names = _patient_names(actor, chunk)
        for recording in chunk:
            row = _row(recording, zone, held, names)
            # As a spreadsheet keeps it without an apostrophe in front (ingest/numbers.py).
            row["number"] = number_for_spreadsheet(recording.external_number, region) or "—"
            writer.writerow([safe_cell(str(row[key] or "")) for key, _heading in columns])
        yield flushed()


# -- linking a call to a patient ------------------------------------------------------------------------


# What the reason of each match decision is asked as (the forms share one class).
REASON_LABELS = {"callrec-undo": "Why is this link wrong?", "callrec-proposal": "Why not"}


def _decision_form(prefix):
    form = MatchDecisionForm(prefix=prefix)
    form.reason.label.text = REASON_LABELS[prefix]
    return form


def _render_match(actor, recording, form, query, status=200):
    candidates = patient_matching.find_candidates(actor, query) if query else []
    return render_template("callrec/match.html", recording=recording, form=form, query=query,
                           candidates=candidates, matches=patient_matching.matches_of(recording.id),
                           undo_form=_decision_form("callrec-undo"),
                           patient_name=_patient_names(actor, [recording]).get(recording.patient_ref),
                           zone=settings_for(actor.practice_ref).zone), status


@blueprint.route("/recordings/<recording_id>/match")
@login_required
def match_page(recording_id):
    actor = current_actor()
    recording = recording_or_404(actor, recording_id, Action.MATCH_CALL)
    allowed_or_403(actor, Action.MATCH_CALL, recording)
    db_session().commit()
    query = (request.args.get("q") or "").strip()[:100]
    return _render_match(actor, recording, MatchForm(prefix="callrec-match"), query)


@blueprint.route("/recordings/<recording_id>/match", methods=["POST"])
@login_required
def match_call_view(recording_id):
    actor = current_actor()
    recording = recording_or_404(actor, recording_id, Action.MATCH_CALL)
    allowed_or_403(actor, Action.MATCH_CALL, recording)
    form = MatchForm(prefix="callrec-match")
    query = (request.form.get("q") or "").strip()[:100]
    if not form.validate_on_submit():
        db_session().rollback()
        return _render_match(actor, recording, form, query, 400)
    try:
        patient_matching.match_call(actor, recording, form.patient_ref.data, form.reason.data)
    except MatchError as error:
        db_session().rollback()
        # Beside what the person chose or typed (400); the call's state (409) is said above the form.
        field = {"reason": form.reason}.get(error.field, form.patient_ref)
        field.errors = [*field.errors, str(error)]
        audit.record(Action.MATCH_CALL, "denied", actor=actor, recording=recording, reason=str(error))
        db_session().commit()
        return _render_match(actor, recording, form, query, 400 if error.field else 409)
    flash("The call is now on the patient's record.", "callrec-success")
    return redirect(url_for("callrec.match_page", recording_id=recording.id))


def _match_or_404(actor, match_id):
    match = db_session().scalar(sa.select(PatientMatch).where(PatientMatch.id == match_id,
                                                              PatientMatch.practice_ref == actor.practice_ref))
    if match is None:
        refused(404, actor, Action.MATCH_CALL, "no such match in the user's practice", object_type="match",
                object_id=str(match_id))
    return match, recording_or_404(actor, match.recording_id, Action.MATCH_CALL)


def _decide_match(match_id, change, prefix, back, page, asks_reason=False):
    """Confirm, reject or undo a match. A form that is not valid (too long, an expired token) or a reason
    the service refuses (patient_matching: none given) is a refusal, audited once, and the form comes
    back with the reason beside its field; what the match's state refuses is a 409 that says why."""
    actor = current_actor()
    match, recording = _match_or_404(actor, match_id)
    allowed_or_403(actor, Action.MATCH_CALL, recording)
    form = _decision_form(prefix)
    title, submit, back_label = page
    again = FormPage(title, submit, back(recording), back_label, None if asks_reason else ())
    if not form.validate_on_submit():
        _decision_refused(actor, recording, form, again, (form_errors(form) or FORM_EXPIRED)[:500])
    try:
        change(actor, match, recording, form.reason.data)
    except MatchError as error:
        if error.field != "reason" or not asks_reason:
            refused(409, actor, Action.MATCH_CALL, error, recording=recording)
        form.reason.errors = [*form.reason.errors, str(error)]
        _decision_refused(actor, recording, form, again, str(error))
    return redirect(back(recording))


def _decision_refused(actor, recording, form, again, reason):
    """A refusal of what was typed, audited once; the form shown again, the reason beside its field."""
    db_session().rollback()
    audit.record(Action.MATCH_CALL, "denied", actor=actor, recording=recording, reason=reason)
    db_session().commit()
    shown_again(form, again)


@blueprint.route("/matches/<int:match_id>/undo", methods=["POST"])
@login_required
def undo_match_view(match_id):
    def undo(actor, match, recording, reason):
        patient_matching.undo_match(actor, match, recording, reason)
        flash("The link was undone: the call has no patient again.", "callrec-success")

    return _decide_match(match_id, undo, "callrec-undo", lambda r: url_for("callrec.match_page", recording_id=r.id),
                         ("Undo the link to the patient", "Undo the link", "the call's patient links"),
                         asks_reason=True)


@blueprint.route("/matches/<int:match_id>/confirm", methods=["POST"])
@login_required
def confirm_match_view(match_id):
    def confirm(actor, match, recording, _reason):
        patient_matching.confirm_proposal(actor, match, recording)
        flash("Confirmed: the call is now on the patient's record.", "callrec-success")

    return _decide_match(match_id, confirm, "callrec-proposal", lambda r: url_for("callrec.call_log_page"),
                         ("Confirm the proposed patient", "Confirm: this is their call", "the call log"))


@blueprint.route("/matches/<int:match_id>/reject", methods=["POST"])
@login_required
def reject_match_view(match_id):
    def reject(actor, match, recording, reason):
        patient_matching.reject_proposal(actor, match, recording, reason)
        flash("Rejected: this call will not be proposed for that patient again.", "callrec-success")

    return _decide_match(match_id, reject, "callrec-proposal", lambda r: url_for("callrec.call_log_page"),
                         ("Reject the proposed patient", "Reject", "the call log"), asks_reason=True)
