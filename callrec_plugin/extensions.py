"""Keeping a call longer than its retention: never silent, never unbounded.

An extension needs a reason from a fixed list (``REASONS``; "other" needs words) and may reach at most
``extension_cap_months`` (per practice, six by default) past the call's own retention date, counted
from the date before the first extension. One owner or manager may extend up to the cap alone;
beyond it, or after a lawful erasure was approved, only a hold keeps the call (holds say why and for
whom, and the regulator's and police's need two people to release). Every extension is a row
(who, why, from and to when), shown on the call's page and the retention page, and an audit event.
"""
import sqlalchemy as sa

from callrec_plugin import audit, clock
from callrec_plugin.erasure import RetentionError
from callrec_plugin.forms import has_control_characters
from callrec_plugin.holds import lock_active
from callrec_plugin.models import ErasureRequest, RetentionExtension
from callrec_plugin.practice_settings import settings_for
from callrec_plugin.retention import months_after
from callrec_plugin.state import db_session

REASONS = {
    "complaint_expected": "A complaint is expected",
    "legal_advice": "Legal advice",
    "patient_request": "The patient asked",
    "other": "Other (say what)",
}
MAX_TEXT = 500


class ExtensionRefused(RetentionError):
    """An extension that was refused. ``field`` names the argument of :func:`extend` the person gave
    wrongly ("new_until", "reason_code" or "reason_text"), so that a form can say so beside what they
    typed; None when nothing they could type would change the answer (the call's state refuses)."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def extensions_of(recording_ids):
    """{recording id: [RetentionExtension, oldest first]} for the calls given."""
    ids = list(recording_ids)
    found = {}
    if not ids:
        return found
    rows = db_session().scalars(sa.select(RetentionExtension).where(RetentionExtension.recording_id.in_(ids))
                                .order_by(RetentionExtension.id))
    for row in rows:
        found.setdefault(row.recording_id, []).append(row)
    return found


def base_retention(recording, extensions):
    """The call's own retention date: before its first extension."""
    return extensions[0].previous_until if extensions else recording.retain_until


def extension_cap(recording, extensions=None):
    """The latest date one person may keep the call to (its practice's cap past its own retention)."""
    if extensions is None:
        extensions = extensions_of([recording.id]).get(recording.id, [])
    months = settings_for(recording.practice_ref).extension_cap_months
    return months_after(base_retention(recording, extensions), months, recording.practice_ref)


def reason_label(extension):
    label = REASONS.get(extension.reason_code, extension.reason_code)
    return f"{label}: {extension.reason_text}" if extension.reason_text else label


def extend(actor, recording, new_until, reason_code, reason_text=""):
    """Keep the call until ``new_until`` (aware) for a listed reason. Caller commits. ExtensionRefused (a
    RetentionError) if refused."""
    reason_text = (reason_text or "").strip()
    if reason_code not in REASONS:
        raise ExtensionRefused("choose the reason for keeping the call longer from the list", "reason_code")
    if has_control_characters(reason_text) or len(reason_text) > MAX_TEXT:
        raise ExtensionRefused(f"the reason must be plain text of at most {MAX_TEXT} characters", "reason_text")
    if reason_code == "other" and not reason_text:
        raise ExtensionRefused('say why the call is kept longer (the reason "other" needs words)', "reason_text")
    if not lock_active([recording]):  # a purge that got there first has already destroyed the audio
        raise ExtensionRefused("the call has been purged")
    session = db_session()
    if session.scalar(sa.select(ErasureRequest.id).where(ErasureRequest.recording_id == recording.id,
                                                         ErasureRequest.approved_at.is_not(None)).limit(1)):
        raise ExtensionRefused("a lawful erasure of this call was approved: only a hold can keep it now")
    if new_until <= recording.retain_until:
        raise ExtensionRefused(f"the call is already kept until {recording.retain_until:%d %b %Y}: choose a later "
                               "date (shortening needs the lawful erasure path)", "new_until")
    cap = extension_cap(recording)
    if new_until > cap:
        months = settings_for(recording.practice_ref).extension_cap_months
        raise ExtensionRefused(f"the practice lets one person keep a call at most {months} months past its "
                               f"retention (until {cap:%d %b %Y}); to keep it longer, place a hold", "new_until")
    row = RetentionExtension(recording_id=recording.id, practice_ref=recording.practice_ref, reason_code=reason_code,
                             reason_text=reason_text, previous_until=recording.retain_until, new_until=new_until,
                             extended_by_ref=actor.ref, extended_by_name=actor.name or actor.ref,
                             extended_at=clock.now())
    session.add(row)
    recording.retain_until = new_until
    audit.record("retention_extended", "done", actor=actor, recording=recording, object_type="retention_extension",
                 reason=f"{row.previous_until:%Y-%m-%d} -> {new_until:%Y-%m-%d}: {reason_label(row)}")
    session.flush()
    return row
