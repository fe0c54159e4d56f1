"""The subject-access register: a request is recorded first, with its statutory deadline; bundles follow.

UK GDPR Article 12(3): the practice answers "without undue delay and in any event within one month
of receipt", extendable "by two further months where necessary", with the reason. The ICO counts
from the day of receipt to the corresponding calendar date of the next month, or the last day of
that month when it is shorter (received 31 January: due 28 February, or 29 in a leap year).

Every step is audited: registering, extending, building the bundle (exports.request_subject_access)
and delivering it (its first download marks the request responded).
"""
import calendar
import datetime as dt

import sqlalchemy as sa

from callrec_plugin import audit
from callrec_plugin.forms import has_control_characters
from callrec_plugin.models import Export, SubjectAccessRequest, utcnow
from callrec_plugin.scoping import patient_in_practice
from callrec_plugin.state import db_session

MAX_EXTENSION_MONTHS = 2
MIN_REASON_CHARS = 10


class SubjectAccessError(ValueError):
    """A register entry could not be made or changed; ``status`` is the HTTP answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def add_months(day, months):
    """The same day ``months`` calendar months later, or the last day of a shorter month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date(received_on, extension_months=0):
    """One calendar month from receipt, plus the extension (months counted from receipt too)."""
    return add_months(received_on, 1 + extension_months)


def is_overdue(entry, today):
    return entry.responded_at is None and entry.due_on < today


def days_left(entry, today):
    return (entry.due_on - today).days


def _plain(text, what, minimum=1, maximum=2000):
    text = (text or "").strip()
    if len(text) < minimum:
        raise SubjectAccessError(f"Give {what}." if minimum == 1 else f"Give {what} (at least {minimum} characters).")
    if len(text) > maximum or has_control_characters(text):
        raise SubjectAccessError(f"{what[0].upper()}{what[1:]} must be plain text of at most {maximum} characters.")
    return text


def register(actor, *, patient_ref, received_on, identity_method, identity_verified_by, requester_reference=""):
    """Record a subject-access request (committed, audited). Returns the register entry."""
    patient_ref = (patient_ref or "").strip()
    if patient_in_practice(actor, patient_ref) is None:
        raise SubjectAccessError("There is no such patient in your practice.", status=404)
    today = utcnow().date()
    if not isinstance(received_on, dt.date) or received_on > today:
        raise SubjectAccessError("The date the request was received cannot be in the future.")
    entry = SubjectAccessRequest(
        practice_ref=actor.practice_ref, patient_ref=patient_ref, received_on=received_on,
        identity_method=_plain(identity_method, "how the requester's identity was verified", MIN_REASON_CHARS),
        identity_verified_by=_plain(identity_verified_by, "who verified the requester's identity", 1, 128),
        requester_reference=(requester_reference or "").strip()[:128], due_on=due_date(received_on),
        extension_months=0, registered_by_ref=actor.ref, registered_by_name=actor.name, registered_at=utcnow())
    if has_control_characters(entry.requester_reference):
        raise SubjectAccessError("The requester's reference must be plain text.")
    session = db_session()
    session.add(entry)
    session.flush()
    audit.record("subject_access_registered", "done", actor=actor, object_type="subject_access",
                 object_id=entry.id, patient_ref=patient_ref,
                 reason=f"received {received_on.isoformat()}, due {entry.due_on.isoformat()}; identity verified "
                        f"by {entry.identity_verified_by}")
    session.commit()
    return entry


def extend(actor, entry, months, reason):
    """Extend the deadline to ``months`` further months (1 or 2, never shortened), with the reason."""
    if entry.responded_at is not None:
        raise SubjectAccessError("This request has been answered already.", status=409)
    if months not in range(1, MAX_EXTENSION_MONTHS + 1):
        raise SubjectAccessError("The deadline may be extended by one or two further months only.")
    if months <= entry.extension_months:
        raise SubjectAccessError(f"The deadline is already extended by {entry.extension_months} months.", status=409)
    reason = _plain(reason, "the reason for the extension", MIN_REASON_CHARS)
    entry.extension_months, entry.extension_reason = months, reason
    entry.extended_by_ref, entry.extended_at = actor.ref, utcnow()
    entry.due_on = due_date(entry.received_on, months)
    audit.record("subject_access_extended", "done", actor=actor, object_type="subject_access", object_id=entry.id,
                 patient_ref=entry.patient_ref,
                 reason=f"extended by {months} further month{'s' if months > 1 else ''} to {entry.due_on.isoformat()}: "
                        f"{reason[:300]}")
    db_session().commit()
    return entry


def entry_in_practice(actor, entry_id):
    """The register entry in the actor's practice, or None (another practice's looks the same as none)."""
    return db_session().scalar(sa.select(SubjectAccessRequest).where(
        SubjectAccessRequest.id == entry_id, SubjectAccessRequest.practice_ref == actor.practice_ref))


def register_entries(actor):
    """The practice's requests: unanswered first, earliest deadline first."""
    return db_session().scalars(
        sa.select(SubjectAccessRequest).where(SubjectAccessRequest.practice_ref == actor.practice_ref)
        .order_by(SubjectAccessRequest.responded_at.is_not(None), SubjectAccessRequest.due_on,
                  SubjectAccessRequest.registered_at)).all()


def bundles_of(entry):
    return db_session().scalars(sa.select(Export).where(Export.subject_access_id == entry.id)
                                .order_by(Export.created_at.desc())).all()


def mark_responded(actor, export):
    """The registrar downloaded a bundle of the request: the request is answered (once). Caller commits."""
    if not export.subject_access_id:
        return
    entry = db_session().get(SubjectAccessRequest, export.subject_access_id)
    if entry is None or entry.responded_at is not None:
        return
    entry.responded_at = utcnow()
    late = entry.responded_at.date() > entry.due_on
    audit.record("subject_access_answered", "done", actor=actor, object_type="subject_access", object_id=entry.id,
                 patient_ref=entry.patient_ref,
                 reason=f"bundle {export.id} delivered{' after the deadline' if late else ''} "
                        f"(due {entry.due_on.isoformat()})")
