"""The practice's call log: every call findable by when, number, who and what happened.

A search is a ``CallSearch`` (validated filters); ``search_query`` turns it into one SELECT scoped to
the practice, newest first; ``page_of`` reads one page by keyset (the last row's ``(started_at, id)``),
so a page stays the same while calls arrive, in one statement with each row's hold and the search's
count, counted no further than ``COUNT_CAP`` + 1 rows, so no page counts a million.
"""
import datetime as dt
import functools
import re
from dataclasses import dataclass, field, fields
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event

from callrec_plugin.ingest.numbers import WITHHELD, InvalidNumber, normalise
from callrec_plugin.models import Hold, Recording, RecordingStatus
from callrec_plugin.people import display_name

PAGE_SIZE = 50
COUNT_CAP = 1000
# A time-of-day filter is a window on each day of the range: bounded so the query stays a short list
# of index ranges.
MAX_DAYS_WITH_TIME_OF_DAY = 92
MIN_ENDING_DIGITS = 3
FLAGS = {
    "short_call": "Very short call",
    "after_objection": "Recorded after the patient objected",
    "card_payment": "Card payment taken on the call",
}
DIRECTIONS = ("inbound", "outbound", "internal")
_ENDING_MARKERS = re.compile(r"^\s*(?:…|\.\.\.|\*|%)")


def reversed_digits(number):
    """The digits of a stored number, last first ("+441632960123" -> "3210692361441"); None if it has none."""
    digits = re.sub(r"\D", "", number or "")
    return digits[::-1] or None


@event.listens_for(Recording, "before_insert")
@event.listens_for(Recording, "before_update")
def _keep_reversed_number(mapper, connection, recording):
    recording.external_number_rev = None if recording.external_number in (None, WITHHELD) else \
        reversed_digits(recording.external_number)


class SearchError(ValueError):
    """A filter a person typed cannot be used; ``field`` names the filter, the message says why."""

    def __init__(self, field_name, message):
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class NumberFilter:
    """A number as typed, read as a whole E.164 number, an ending of digits, or "withheld"."""

    e164: str | None = None
    ending: str | None = None
    withheld: bool = False

    @classmethod
    def parse(cls, typed, region):
        typed = (typed or "").strip()
        if not typed:
            return None
        explicit_ending = bool(_ENDING_MARKERS.match(typed))
        digits = re.sub(r"\D", "", typed)
        if not explicit_ending:
            try:
                number = normalise(typed, region)
            except InvalidNumber:
                number = None
            if number == WITHHELD and not digits:
                return cls(withheld=True)
            if number and number.startswith("+"):
                return cls(e164=number)
        if len(digits) < MIN_ENDING_DIGITS:
            raise SearchError("number", f"Type the whole number, or at least {MIN_ENDING_DIGITS} digits of "
                                        "its ending (for example …0123), or “withheld”.")
        return cls(ending=digits)

    def describe(self):
        if self.withheld:
            return "withheld"
        return self.e164 or f"…{self.ending}"


@dataclass(frozen=True)
class CallSearch:
    """The filters of one search; every field None (or empty) means "any"."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    time_from: dt.time | None = None
    time_to: dt.time | None = None
    number: NumberFilter | None = None
    direction: str | None = None
    staff_ref: str | None = None
    patient_ref: str | None = None
    no_patient: bool = False
    min_seconds: int | None = None
    max_seconds: int | None = None
    held: bool | None = None
    flags: frozenset = field(default_factory=frozenset)

    def describe(self):
        """The filters in use, for the audit trail and the page ("number=…0123; direction=inbound")."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, False, frozenset()):
                continue
            if isinstance(value, NumberFilter):
                value = value.describe()
            elif isinstance(value, frozenset):
                value = ",".join(sorted(value))
            elif isinstance(value, (dt.date, dt.time)):
                value = value.isoformat(timespec="minutes") if isinstance(value, dt.time) else value.isoformat()
            parts.append(f"{f.name}={value}")
        return "; ".join(parts) or "no filters"


def day_windows(search, zone, today):
    """The UTC [start, end) intervals the date range and time of day select, or [] for "any time".

    Dates and times of day are the practice's local ones (a call at 23:30 UTC in summer is on the
    next day in London)."""
    if not (search.date_from or search.date_to or search.time_from or search.time_to):
        return []
    time_of_day = search.time_from or search.time_to
    last = search.date_to or today
    first = search.date_from or (last - dt.timedelta(days=MAX_DAYS_WITH_TIME_OF_DAY - 1) if time_of_day else None)
    if not time_of_day:
        start = _utc(first, dt.time(0), zone) if first else None
        return [(start, _utc(last + dt.timedelta(days=1), dt.time(0), zone))]
    windows = []
    day = first
    while day <= last:
        start = _utc(day, search.time_from or dt.time(0), zone)
        overnight = bool(search.time_from and search.time_to and search.time_to < search.time_from)  # 22:00-02:00
        end = (_utc(day + dt.timedelta(days=overnight), search.time_to, zone) + dt.timedelta(minutes=1)
               if search.time_to else _utc(day + dt.timedelta(days=1), dt.time(0), zone))
        windows.append((start, end))
        day += dt.timedelta(days=1)
    return windows


def _utc(day, time_of_day, zone):
    return dt.datetime.combine(day, time_of_day, tzinfo=zone).astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class SearchQuery:
    """A search as SQL: its ``shape`` (which filters, how many day windows) picks a statement built once
    and cached; ``params`` are the values bound to it. Building a statement per request costs more
    than running it (SQLAlchemy derives each new statement's cache key), so the log reuses them."""

    shape: tuple
    params: dict

    @property
    def statement(self):
        return _statement(self.shape)


_VALUED = ("direction", "staff_ref", "patient_ref", "min_seconds", "max_seconds")


def search_query(practice_ref, search, zone, today):
    """The practice's recordings matching the search, newest first (purged calls too: the log says
    they were deleted)."""
    params = {"practice_ref": practice_ref}
    windows = day_windows(search, ZoneInfo(zone) if isinstance(zone, str) else zone, today)
    for i, (start, end) in enumerate(windows):
        params[f"window_{i}_start"], params[f"window_{i}_end"] = start, end
    number_kind = None
    if search.number is not None:
        number_kind = "withheld" if search.number.withheld else "e164" if search.number.e164 else "ending"
        params["number"] = (WITHHELD if search.number.withheld else search.number.e164
                            or _escape_like(search.number.ending[::-1]) + "%")
    for name in _VALUED:
        value = getattr(search, name)
        if value is not None and not (name == "patient_ref" and search.no_patient):
            params[name] = value + 1 if name == "max_seconds" else value
    shape = (len(windows), bool(windows) and windows[0][0] is None, number_kind,
             tuple(name for name in _VALUED if name in params), search.no_patient, search.held,
             tuple(sorted(search.flags)))
    return SearchQuery(shape, params)


@functools.lru_cache(maxsize=256)
def _statement(shape):
    window_count, open_start, number_kind, valued, no_patient, held, flags = shape
    query = sa.select(Recording).where(Recording.practice_ref == sa.bindparam("practice_ref"))
    if window_count:
        query = query.where(sa.or_(*[_window(i, open_start and i == 0) for i in range(window_count)]))
    if number_kind == "ending":
        # An ending of the number is a prefix of its reversed digits: a range an index serves.
        query = query.where(Recording.external_number_rev.like(sa.bindparam("number"), escape="\\"))
    elif number_kind:
        query = query.where(Recording.external_number == sa.bindparam("number"))
    conditions = {"direction": Recording.direction == sa.bindparam("direction"),
                  "staff_ref": Recording.staff_user_ref == sa.bindparam("staff_ref"),
                  "patient_ref": Recording.patient_ref == sa.bindparam("patient_ref"),
                  "min_seconds": Recording.duration_seconds >= sa.bindparam("min_seconds"),
                  "max_seconds": Recording.duration_seconds < sa.bindparam("max_seconds")}
    query = query.where(*[conditions[name] for name in valued])
    if no_patient:
        query = query.where(Recording.patient_ref.is_(None))
    if held is not None:
        query = query.where(_active_hold() if held else ~_active_hold())
    query = query.where(*[flag_condition(flag) for flag in flags])
    return query.order_by(Recording.started_at.desc(), Recording.id.desc())


def _window(i, open_start):
    end = Recording.started_at < sa.bindparam(f"window_{i}_end")
    return end if open_start else sa.and_(Recording.started_at >= sa.bindparam(f"window_{i}_start"), end)


def _active_hold():
    return sa.exists().where(Hold.recording_id == Recording.id, Hold.released_at.is_(None))


def flag_condition(flag):
    """The SQL condition of one flag of FLAGS."""
    if flag == "short_call":
        return Recording.short_call.is_(True)
    if flag == "after_objection":
        return Recording.recorded_despite_objection.is_(True)
    if flag == "card_payment":
        return Recording.card_payment_flagged_at.is_not(None)
    raise ValueError(f"unknown flag {flag!r}")


def _escape_like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: just after this (started_at, id), in newest-first order."""

    started_at: dt.datetime
    recording_id: str

    def token(self):
        return f"{self.started_at.strftime('%Y%m%dT%H%M%S%fZ')}.{self.recording_id}"

    @classmethod
    def parse(cls, token):
        if not token:
            return None
        moment, _, recording_id = token.partition(".")
        try:
            started_at = dt.datetime.strptime(moment, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            raise SearchError("after", "The page link is not valid: start again from the newest calls.") from None
        if not recording_id.isalnum() or len(recording_id) > 32:
            raise SearchError("after", "The page link is not valid: start again from the newest calls.")
        return cls(started_at, recording_id)


@dataclass(frozen=True)
class Page:
    rows: list
    next_cursor: Cursor | None
    held_ids: frozenset  # the page's calls an active hold keeps
    count: int  # calls the whole search finds, counted no further than COUNT_CAP + 1


def page_of(session, search, cursor=None, size=PAGE_SIZE):
    """One page of a SearchQuery in newest-first order after ``cursor`` (rows inserted meanwhile never
    shift it), with each row's hold and the search's capped count, in one statement."""
    params = dict(search.params, page_limit=size + 1, count_limit=COUNT_CAP + 1)
    if cursor is not None:
        params.update(after_started_at=cursor.started_at, after_id=cursor.recording_id)
    rows = session.execute(_page_statement(search.shape, cursor is not None), params).all()
    more = len(rows) > size
    rows = rows[:size]
    count = rows[0].total if rows else session.scalar(sa.select(_capped_count(search.statement)), params)
    recordings = [row[0] for row in rows]
    return Page(recordings, Cursor(recordings[-1].started_at, recordings[-1].id) if more else None,
                frozenset(row[0].id for row in rows if row.held), count)


@functools.lru_cache(maxsize=256)
def _page_statement(shape, after_cursor):
    query = _statement(shape)
    page = query.add_columns(_active_hold().label("held"), _capped_count(query).label("total"))
    if after_cursor:
        started_at, recording_id = sa.bindparam("after_started_at"), sa.bindparam("after_id")
        page = page.where(sa.or_(Recording.started_at < started_at,
                                 sa.and_(Recording.started_at == started_at, Recording.id < recording_id)))
    return page.limit(sa.bindparam("page_limit", type_=sa.Integer))


def _capped_count(query):
    # A scalar subquery: the database counts at most COUNT_CAP + 1 rows, once per statement.
    limited = query.order_by(None).with_only_columns(Recording.id).limit(sa.bindparam("count_limit", type_=sa.Integer)).subquery()
    return sa.select(sa.func.count()).select_from(limited).scalar_subquery()


def active_hold_ids(session, recording_ids):
    """The ids among these recordings that an active hold keeps (one query for a CSV chunk)."""
    if not recording_ids:
        return set()
    return set(session.scalars(sa.select(Hold.recording_id).where(
        Hold.recording_id.in_(list(recording_ids)), Hold.released_at.is_(None))))


def staff_on_calls(session, practice_ref):
    """(staff_user_ref, staff_name) of everyone who handled a call of the practice, by name."""
    rows = session.execute(
        sa.select(Recording.staff_user_ref, sa.func.max(Recording.staff_name))
        .where(Recording.practice_ref == practice_ref, Recording.staff_user_ref.is_not(None),
               Recording.status == RecordingStatus.ACTIVE)
        .group_by(Recording.staff_user_ref)).all()
    # A member of staff no call names (or who has left) reads by the audit trail's name, never by the ref.
    named = [(ref, display_name(practice_ref, ref, name)) for ref, name in rows]
    return sorted(named, key=lambda row: row[1].lower())
