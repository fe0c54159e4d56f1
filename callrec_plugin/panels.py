"""What the patient and complaint panels show, assembled with a fixed number of queries per page."""
import datetime as dt
import math
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app, request

from callrec_plugin.state import db_session, get_state
from callrec_plugin.formatting import days_left_text, direction_label, duration_text, when_text
from callrec_plugin.models import ComplaintLink, Hold, PatientObjection, Recording, RecordingStatus, utcnow
from callrec_plugin.retention import days_until, eligibility, grace_period, purge_after_summary
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
    """One page of the patient's calls. The panel reads one row past the page instead of counting the
    patient's calls, so the total is known only on the last page (``count``; None before it)."""

    rows: list
    number: int
    has_more: bool
    size: int
    objections: list = ()  # the patient's objections, newest first, read by the same statement

    @property
    def count(self):
        return None if self.has_more else (self.number - 1) * self.size + len(self.rows)

    @property
    def count_text(self):
        return str(self.count) if self.count is not None else f"more than {self.number * self.size}"


@dataclass(frozen=True)
class ObjectionRow:
    """A patient's objection as the panel shows it (the attributes of a PatientObjection it reads)."""

    id: int
    recorded_at: dt.datetime
    recorded_by_name: str
    method: str | None
    note: str
    withdrawn_at: dt.datetime | None
    withdrawn_by_name: str | None
    withdrawal_reason: str | None


# Far past any practice's calls; a larger number would overflow the database's OFFSET (a 500, not a page).
MAX_PAGE = 100_000


def requested_page(arg="callrec_page"):
    """The page a panel was asked for, clamped to 1..MAX_PAGE (a panel inside the host's page cannot
    answer 400 for it, so a nonsense number shows an empty page rather than breaking the host's)."""
    try:
        return min(MAX_PAGE, max(1, int(request.args.get(arg, 1))))
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
    now = utcnow()
    rows = []
    for recording in recordings:
        answer = eligibility(recording, holds.get(recording.id, []), now)  # its practice's grace
        active_holds = [hold for hold in holds.get(recording.id, []) if hold.released_at is None]
        rows.append(CallRow(recording, links.get(recording.id, []), active_holds, answer, answer.days_left(now)))
    return rows


@dataclass(frozen=True)
class PanelRow:
    """One line of the patient panel, its texts already worked out (the panel is on a hot path)."""

    id: str
    started_at: dt.datetime
    iso: str
    when: str
    direction: str
    duration: str
    handler: str
    complaint_refs: tuple
    hold_kinds: tuple
    retention: str  # "" when hold_kinds or purged say it
    purged: bool
    short_call: bool
    recorded_despite_objection: bool


def _aggregate(column, *conditions):
    return sa.select(sa.func.aggregate_strings(column, ",")).where(*conditions).scalar_subquery()


# The patient panel renders inside every patient page, so it is one prebuilt statement: a page of
# the patient's calls read in index order (practice, patient, started_at, id) with one row past the
# page (whether an older page exists, without counting the patient's calls), and for the rows shown
# only, their active hold kinds, latest hold release and linked complaints; then, by UNION ALL, the
# patient's objections (few: the banner and the history). Each branch fills its own columns and NULLs
# the other's; the "kind" column tells them apart. Scoped to the practice like scoping.recordings_in.
_IN_PATIENT = (Recording.practice_ref == sa.bindparam("practice_ref"),
               Recording.patient_ref == sa.bindparam("patient_ref"))
_PATIENT_TOTAL = sa.select(sa.func.count()).select_from(Recording).where(*_IN_PATIENT)
_CALLS = (
    sa.select(
        Recording.id, Recording.started_at, Recording.direction, Recording.duration_seconds, Recording.staff_name,
        Recording.staff_extension, Recording.status, Recording.retain_until, Recording.short_call,
        Recording.recorded_despite_objection,
        _aggregate(Hold.kind, Hold.recording_id == Recording.id, Hold.released_at.is_(None)).label("hold_kinds"),
        sa.select(sa.func.max(Hold.released_at)).where(Hold.recording_id == Recording.id)
        .scalar_subquery().label("last_release"),
        _aggregate(ComplaintLink.complaint_ref, ComplaintLink.recording_id == Recording.id,
                   ComplaintLink.unlinked_at.is_(None)).label("complaints"),
    )
    .where(*_IN_PATIENT)
    .order_by(Recording.started_at.desc(), Recording.id.desc())
    .limit(sa.bindparam("limit"))
    .offset(sa.bindparam("offset"))
    .subquery("calls")
)
_OBJECTION_COLUMNS = (PatientObjection.id, PatientObjection.recorded_at, PatientObjection.recorded_by_name,
                      PatientObjection.method, PatientObjection.note, PatientObjection.withdrawn_at,
                      PatientObjection.withdrawn_by_name, PatientObjection.withdrawal_reason)


def _nulls(columns):
    return [sa.cast(sa.null(), column.type).label(f"{column.table.name}_{column.name}") for column in columns]


_PATIENT_PAGE = sa.union_all(
    sa.select(sa.literal("call").label("kind"), *_CALLS.c, *_nulls(_OBJECTION_COLUMNS)),
    sa.select(sa.literal("objection"), *_nulls(_CALLS.c), *_OBJECTION_COLUMNS).where(
        PatientObjection.practice_ref == sa.bindparam("practice_ref"),
        PatientObjection.patient_ref == sa.bindparam("patient_ref")),
)
_CALL_WIDTH = len(_CALLS.c)


def _panel_rows(actor, patient_ref, size, page_number):
    """(call rows, up to size + 1, newest first; objections, newest first), in one statement."""
    rows = db_session().execute(_PATIENT_PAGE, {
        "practice_ref": actor.practice_ref, "patient_ref": patient_ref, "limit": size + 1,
        "offset": (page_number - 1) * size,
    }).all()
    calls = [row[1:1 + _CALL_WIDTH] for row in rows if row[0] == "call"]
    # UNION ALL keeps no order: put each kind back in its own (newest first, ties by id).
    calls.sort(key=lambda call: (call[1], call[0]), reverse=True)
    objections = sorted((ObjectionRow(*row[1 + _CALL_WIDTH:]) for row in rows if row[0] == "objection"),
                        key=lambda objection: (objection.recorded_at, objection.id), reverse=True)
    return calls, objections


def _panel_row(row, now, grace):
    (recording_id, started_at, direction, duration, staff_name, extension, status, retain_until, short,
     after_objection, hold_kinds, last_release, complaints) = row
    purged = status == RecordingStatus.PURGED
    held = bool(hold_kinds)
    after = None if purged else purge_after_summary(retain_until, held, _released(last_release, held), grace)
    return PanelRow(recording_id, started_at, started_at.isoformat(), when_text(started_at),
                    direction_label(direction), duration_text(duration), staff_name or extension or "—",
                    tuple(sorted(set((complaints or "").split(",")) - {""})),
                    tuple(sorted(kind.replace("_", " ") for kind in set((hold_kinds or "").split(",")) - {""})),
                    days_left_text(days_until(after, now)), purged, short, after_objection)


def _released(last_release, held):
    # max(released_at) also sees NULLs as absent; with an active hold the value does not matter.
    return None if held else last_release


def patient_calls(actor, patient_ref, page_number):
    """One page of the patient's calls, newest first, and the patient's objections, in one statement (a
    page past the end, only reached by an edited URL, costs two more: it shows the last page)."""
    size = current_app.config["CALLREC_PANEL_PAGE_SIZE"]
    if actor.practice_ref is None:
        return Page([], 1, False, size)
    calls, objections = _panel_rows(actor, patient_ref, size, page_number)
    if not calls and page_number > 1:
        total = db_session().execute(_PATIENT_TOTAL, {"practice_ref": actor.practice_ref,
                                                      "patient_ref": patient_ref}).scalar()
        page_number = max(1, math.ceil(total / size))
        calls, objections = _panel_rows(actor, patient_ref, size, page_number)
    now, grace = utcnow(), grace_period(actor.practice_ref)
    return Page([_panel_row(row, now, grace) for row in calls[:size]], page_number, len(calls) > size, size,
                objections)


def complaint_calls(actor, complaint_ref):
    linked = sa.select(ComplaintLink.recording_id).where(
        ComplaintLink.complaint_ref == complaint_ref, ComplaintLink.unlinked_at.is_(None)
    )
    recordings = db_session().scalars(
        recordings_in(actor.practice_ref).where(Recording.id.in_(linked)).order_by(Recording.started_at.desc())
    ).all()
    return call_rows(recordings)


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
    errors: dict  # "number" / "start" / "end" -> what is wrong, shown beside that field

    @property
    def error(self):
        return " ".join(self.errors.values()) or None


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
    errors = {name: "Give the date as YYYY-MM-DD." for name, value in (("start", start), ("end", end))
              if value is False}
    if start and end and end < start:
        errors["end"] = "The end date is before the start date."
    if number:
        try:
            numbers = [normalise(number, current_app.config["CALLREC_PHONE_REGION"])]
        except InvalidNumber as exc:
            errors["number"], numbers = exc.reason, []
    else:
        ref = patient_ref or complaint.get("patient_ref")
        summary = get_state().pm.hook.callrec_patient_summary(patient_ref=ref) if ref else None
        numbers = list((summary or {}).get("phones", ()))
    found = [] if errors or not numbers else find_calls(actor, numbers, start, end)
    rows = call_rows([r for r in found if r.id not in linked_ids])
    return Finder(number, start_text, end_text, rows, AttachForm(prefix="callrec-attach"), errors)
