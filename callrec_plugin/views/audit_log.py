"""The audit page for owner, manager and data protection lead: filters, numbered pages and a CSV export."""
import csv
import io

import sqlalchemy as sa
from flask import Response, abort, render_template, request, stream_with_context, url_for

from callrec_plugin import audit_labels, visibility
from callrec_plugin.audit_filters import ARGUMENTS, AuditFilterForm
from callrec_plugin.csv_cells import safe_cell
from callrec_plugin.identity import current_actor
from callrec_plugin.models import AuditEvent
from callrec_plugin.page_numbers import page_numbers
from callrec_plugin.panels import MAX_PAGE
from callrec_plugin.roles import PURPOSES, Action
from callrec_plugin.state import db_session, get_state
from callrec_plugin.views import allowed_or_403, blueprint, login_required

ROUTES = {"callrec.audit_log": Action.VIEW_AUDIT, "callrec.audit_csv": Action.VIEW_AUDIT}

PAGE_SIZE = 50
CSV_COLUMNS = ("seq", "occurred_at", "actor_ref", "actor_name", "roles", "action", "action_label", "object_type",
               "object_id", "recording_id", "patient_ref", "purpose", "justification", "outcome", "reason", "ip",
               "request_id", "hash")


def _page():
    text = request.args.get("page", "1").strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        abort(400, f"page must be a whole number from 1 to {MAX_PAGE}.")
    return int(text)


def _allowed(actor):
    allowed_or_403(actor, Action.VIEW_AUDIT, object_type="audit", object_id="audit")
    db_session().commit()


def _filters():
    # Only the filters themselves go back into the links: any other argument (``endpoint``, ``_method``,
    # ``_external``) would be taken by url_for as its own.
    return {key: request.args[key] for key in ARGUMENTS if request.args.get(key)}


def _patient_names(events):
    """Patient names for the refs on this page, through the host (one call per distinct patient)."""
    hook = get_state().pm.hook
    names = {}
    for ref in {event.patient_ref for event in events if event.patient_ref}:
        summary = hook.callrec_patient_summary(patient_ref=ref)
        if isinstance(summary, dict) and summary.get("name"):
            names[ref] = summary["name"]
    return names


MAX_PEOPLE_OFFERED = 300


def _people(actor):
    """The names of the people in this practice's trail, offered as the person filter's suggestions."""
    return db_session().scalars(
        sa.select(AuditEvent.actor_name).where(AuditEvent.practice_ref == actor.practice_ref,
                                               visibility.audit_events_visible(actor),
                                               AuditEvent.actor_name.is_not(None))
        .group_by(AuditEvent.actor_name).order_by(AuditEvent.actor_name).limit(MAX_PEOPLE_OFFERED)).all()


@blueprint.route("/audit")
@login_required
def audit_log():
    actor = current_actor()
    _allowed(actor)
    page = _page()
    form = AuditFilterForm(request.args, actor)
    filters = _filters()
    events, count, status = [], 0, 200
    if form.validate():
        query = form.query()
        count = db_session().scalar(sa.select(sa.func.count()).select_from(query.subquery()))
        events = db_session().scalars(
            query.order_by(AuditEvent.seq.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
        ).all()
    else:
        status = 400  # the page says what is wrong, beside the field; nothing was searched

    def page_url(number):
        return url_for("callrec.audit_log", page=number, **filters)

    pages = max(1, -(-count // PAGE_SIZE))
    return render_template("callrec/audit.html", form=form, events=events, count=count, page=page,
                           page_url=page_url, pages=pages, page_numbers=page_numbers(page, pages),
                           searched=not form.errors, patient_names=_patient_names(events), people=_people(actor),
                           label=audit_labels.label, describe=audit_labels.describe_object,
                           outcomes=audit_labels.OUTCOMES,
                           reason_of=lambda event: visibility.audit_reason(actor, event),
                           justification_of=lambda event: visibility.audit_justification(actor, event),
                           purposes=PURPOSES, args=filters), status


def _shown(actor, event, column):
    """A column of an event as this actor may read it (reasons and justifications through visibility)."""
    if column == "reason":
        return visibility.audit_reason(actor, event)
    if column == "justification":
        return visibility.audit_justification(actor, event)
    if column == "action_label":
        return audit_labels.label(event.action)
    return getattr(event, column)


def csv_safe(value):
    return safe_cell("" if value is None else str(value))


@blueprint.route("/audit.csv")
@login_required
def audit_csv():
    actor = current_actor()
    _allowed(actor)
    form = AuditFilterForm(request.args, actor)
    if not form.validate():
        abort(400, f"The filters are not valid ({form.first_error()}): correct them on the audit page, "
                   "then download again.")
    query = form.query().order_by(AuditEvent.seq)

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for event in db_session().scalars(query.execution_options(yield_per=500)):
            writer.writerow([csv_safe(_shown(actor, event, column)) for column in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="callrec-audit.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
