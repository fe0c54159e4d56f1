"""What the patient and complaint panels show, assembled with a fixed number of queries per page."""
import datetime as dt
import math
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app, request

from callrec_plugin.extension import db_session, get_state
from callrec_plugin.models import ComplaintLink, Hold, PatientObjection, Recording, utcnow
from callrec_plugin.retention import eligibility, grace_period
from callrec_plugin.scoping import recordings_in


@dataclass
class CallRow:
    recording: Recording
    links: list
    holds: list
    eligibility: object
    days_left: int | None


@dataclass
class Page:
    rows: list
    number: int
    count: int
    size: int

    @property
    def pages(self):
        return max(1, math.ceil(self.count / self.size))


def requested_page(arg="callrec_page"):
    try:
        return max(1, int(request.args.get(arg, 1)))
    except ValueError:
        return 1


def call_rows(recordings):
    """Rows with their active complaint links, holds and retention, in two extra queries."""
    ids = [recording.id for recording in recordings]
    links, holds = {}, {}
    if ids:
        for link in db_session().scalars(
            sa.select(ComplaintLink).where(ComplaintLink.recording_id.in_(ids), ComplaintLink.unlinked_at.is_(None))
        ):
            links.setdefault(link.recording_id, []).append(link)
        for hold in db_session().scalars(sa.select(Hold).where(Hold.recording_id.in_(ids))):
            holds.setdefault(hold.recording_id, []).append(hold)
    now, grace = utcnow(), grace_period()
    rows = []
    for recording in recordings:
        answer = eligibility(recording, holds.get(recording.id, []), now, grace)
        active_holds = [hold for hold in holds.get(recording.id, []) if hold.released_at is None]
        rows.append(CallRow(recording, links.get(recording.id, []), active_holds, answer, answer.days_left(now)))
    return rows


def patient_calls(actor, patient_ref, page_number):
    size = current_app.config["CALLREC_PANEL_PAGE_SIZE"]
    query = recordings_in(actor.practice_ref).where(Recording.patient_ref == patient_ref)
    count = db_session().scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    pages = max(1, math.ceil(count / size))
    page_number = min(page_number, pages)
    recordings = db_session().scalars(
        query.order_by(Recording.started_at.desc(), Recording.id).limit(size).offset((page_number - 1) * size)
    ).all()
    return Page(call_rows(recordings), page_number, count, size)


def complaint_calls(actor, complaint_ref):
    linked = sa.select(ComplaintLink.recording_id).where(
        ComplaintLink.complaint_ref == complaint_ref, ComplaintLink.unlinked_at.is_(None)
    )
    recordings = db_session().scalars(
        recordings_in(actor.practice_ref).where(Recording.id.in_(linked)).order_by(Recording.started_at.desc())
    ).all()
    return call_rows(recordings)


def active_objections(actor, patient_ref):
    return db_session().scalars(
        sa.select(PatientObjection)
        .where(
            PatientObjection.practice_ref == actor.practice_ref,
            PatientObjection.patient_ref == patient_ref,
            PatientObjection.withdrawn_at.is_(None),
        )
        .order_by(PatientObjection.recorded_at.desc())
    ).all()


def complaint_titles(refs):
    hook = get_state().pm.hook
    titles = {}
    for ref in sorted(refs):
        summary = hook.callrec_complaint_summary(complaint_ref=ref) or {}
        titles[ref] = summary
    return titles


@dataclass
class Finder:
    number: str
    start: str
    end: str
    rows: list
    attach_form: object
    error: str | None = None


def _date_arg(name):
    text = request.args.get(name, "").strip()
    if not text:
        return "", None
    try:
        return text, dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return text, False


def evidence_finder(actor, complaint, patient_ref, linked_ids):
    """The complaint panel's search: the complainant's numbers by default, or a number and dates given."""
    from callrec_plugin.evidence import find_calls
    from callrec_plugin.forms import AttachForm
    from callrec_plugin.ingest.numbers import InvalidNumber, normalise

    number = request.args.get("callrec_number", "").strip()
    (start_text, start), (end_text, end) = _date_arg("callrec_from"), _date_arg("callrec_to")
    error = None
    if start is False or end is False:
        error, start, end = "Dates must be given as YYYY-MM-DD.", None, None
    if number:
        try:
            numbers = [normalise(number, current_app.config["CALLREC_PHONE_REGION"])]
        except InvalidNumber as exc:
            error, numbers = exc.reason, []
    else:
        ref = patient_ref or complaint.get("patient_ref")
        summary = get_state().pm.hook.callrec_patient_summary(patient_ref=ref) if ref else None
        numbers = list((summary or {}).get("phones", ()))
    found = [] if error or not numbers else find_calls(actor, numbers, start, end)
    rows = call_rows([r for r in found if r.id not in linked_ids])
    return Finder(number, start_text, end_text, rows, AttachForm(prefix="callrec-attach"), error)
