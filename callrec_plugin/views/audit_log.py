"""The audit page for owner, manager and data protection lead: filters, pages and a CSV export."""
import csv
import datetime as dt
import io

import sqlalchemy as sa
from flask import Response, abort, render_template, request, stream_with_context, url_for

from callrec_plugin.csv_cells import safe_cell
from callrec_plugin.state import db_session
from callrec_plugin.identity import current_actor
from callrec_plugin.models import AuditEvent
from callrec_plugin.panels import requested_page
from callrec_plugin.roles import PURPOSES, Action
from callrec_plugin.views import allowed_or_403, blueprint, login_required

ROUTES = {"callrec.audit_log": Action.VIEW_AUDIT, "callrec.audit_csv": Action.VIEW_AUDIT}

PAGE_SIZE = 50
FILTERS = ("patient_ref", "recording_id", "actor_ref", "purpose", "outcome")
CSV_COLUMNS = ("seq", "occurred_at", "actor_ref", "actor_name", "roles", "action", "object_type", "object_id",
               "recording_id", "patient_ref", "purpose", "justification", "outcome", "reason", "ip",
               "request_id", "hash")


def _parse_date(name):
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        abort(400, f"{name} must be a date as YYYY-MM-DD.")


def filtered_events(actor):
    query = sa.select(AuditEvent).where(AuditEvent.practice_ref == actor.practice_ref)
    for name in FILTERS:
        value = request.args.get(name, "").strip()
        if value:
            query = query.where(getattr(AuditEvent, name) == value)
    start, end = _parse_date("from"), _parse_date("to")
    if start:
        query = query.where(AuditEvent.occurred_at >= start)
    if end:
        query = query.where(AuditEvent.occurred_at < end + dt.timedelta(days=1))
    return query


def _allowed(actor):
    allowed_or_403(actor, Action.VIEW_AUDIT, object_type="audit", object_id="audit")
    db_session().commit()


@blueprint.route("/audit")
@login_required
def audit_log():
    actor = current_actor()
    _allowed(actor)
    query = filtered_events(actor)
    count = db_session().scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    page = requested_page("page")
    events = db_session().scalars(
        query.order_by(AuditEvent.seq.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    filters = {key: value for key, value in request.args.items() if key != "page"}

    def page_url(number):
        return url_for("callrec.audit_log", page=number, **filters)

    return render_template("callrec/audit.html", events=events, count=count, page=page, page_url=page_url,
                           pages=max(1, -(-count // PAGE_SIZE)), purposes=PURPOSES, args=request.args)


def csv_safe(value):
    return safe_cell("" if value is None else str(value))


@blueprint.route("/audit.csv")
@login_required
def audit_csv():
    actor = current_actor()
    _allowed(actor)
    query = filtered_events(actor).order_by(AuditEvent.seq)

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for event in db_session().scalars(query.execution_options(yield_per=500)):
            writer.writerow([csv_safe(getattr(event, column)) for column in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="callrec-audit.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
