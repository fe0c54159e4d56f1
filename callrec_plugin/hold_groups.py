"""Holds as people think of them: one request (a call, a patient's calls, a date range) is one group.

Each hold row keeps its own call (retention is decided per call); the rows one request placed share a
``group_id`` (a disclosure's holds use the disclosure id). The holds page lists groups and releases a
group as one (holds.approve_group_release).
"""
import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa
from wtforms import Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from callrec_plugin import visibility
from callrec_plugin.forms import has_control_characters
from callrec_plugin.holds import PLACEABLE_KINDS
from callrec_plugin.models import Hold, HoldKind, Recording
from callrec_plugin.patient_matching import find_candidates
from callrec_plugin.state import db_session, get_state

KIND_LABELS = {HoldKind.COMPLAINT: "Complaint", HoldKind.DISCLOSURE: "Disclosure", **PLACEABLE_KINDS}
ACTIVE, RELEASE_REQUESTED, RELEASED = "active", "release_requested", "released"
STATUS_LABELS = {ACTIVE: "Active", RELEASE_REQUESTED: "Release requested", RELEASED: "Released"}
# Released holds only matter recently: the list shows at most this many released rows (newest first).
MAX_RELEASED_ROWS = 1000


@dataclass
class HoldGroup:
    """The holds one request placed, with their calls, as the holds page shows them."""

    key: str
    holds: list = field(default_factory=list)  # Hold rows
    calls: list = field(default_factory=list)  # their Recordings, by start time

    @property
    def first(self):
        return self.holds[0]

    @property
    def active(self):
        return [hold for hold in self.holds if hold.released_at is None]

    @property
    def status(self):
        active = self.active
        if not active:
            return RELEASED
        return RELEASE_REQUESTED if any(hold.release_requested_by_ref for hold in active) else ACTIVE

    @property
    def first_approval(self):
        """The active hold carrying the first of two approvals, if any."""
        return next((hold for hold in self.active if hold.release_requested_by_ref), None)

    @property
    def patient_refs(self):
        return sorted({call.patient_ref for call in self.calls if call.patient_ref})

    @property
    def two_approvers(self):
        return self.first.kind in HoldKind.TWO_APPROVER


class HoldFilterForm(Form):
    """The holds page's filters (GET: they change nothing)."""

    kind = SelectField("Kind", choices=[SelectChoice("", "Any kind")] + [
        SelectChoice(key, text) for key, text in KIND_LABELS.items()], validators=[Optional()])
    status = SelectField("Status", choices=[SelectChoice("", "Active or release requested")] + [
        SelectChoice(key, text) for key, text in STATUS_LABELS.items()], validators=[Optional()])
    patient = StringField("Patient (name or number)", validators=[Optional(), Length(max=100)])

    def __init__(self, formdata, actor):
        super().__init__(formdata)
        self.actor, self.patients = actor, []

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        if has_control_characters(self.patient.data):
            self.patient.errors = [*self.patient.errors, "The patient contains characters that are not allowed."]
            valid = False
        if valid and (self.patient.data or "").strip():
            self.patients = find_candidates(self.actor, self.patient.data)
            if not self.patients:
                self.patient.errors = [*self.patient.errors, "No patient of your practice matches this."]
                valid = False
        return valid


def hold_groups(actor, kind=None, status=None, patient_refs=None):
    """The practice's hold groups, newest first, narrowed by kind, status and patients."""
    query = (sa.select(Hold, Recording).join(Recording, Recording.id == Hold.recording_id)
             .where(Hold.practice_ref == actor.practice_ref))
    if kind:
        query = query.where(Hold.kind == kind)
    if status == RELEASED:
        query = query.where(Hold.released_at.is_not(None)).limit(MAX_RELEASED_ROWS)
    else:
        query = query.where(Hold.released_at.is_(None))
    groups = {}
    for hold, recording in db_session().execute(query.order_by(Hold.placed_at.desc(), Hold.id)):
        group = groups.setdefault(hold.group_id or f"hold-{hold.id}", HoldGroup(hold.group_id or f"hold-{hold.id}"))
        group.holds.append(hold)
        group.calls.append(recording)
    wanted = set(patient_refs) if patient_refs is not None else None
    found = []
    for group in groups.values():
        group.calls.sort(key=lambda call: call.started_at)
        if status and group.status != status:
            continue
        if wanted is not None and not wanted & set(group.patient_refs):
            continue
        found.append(group)
    return found


def patient_names(refs):
    """{patient_ref: name} through the host's summary hook (one call per distinct patient)."""
    hook, names = get_state().pm.hook, {}
    for ref in set(refs):
        summary = hook.callrec_patient_summary(patient_ref=ref)
        if isinstance(summary, dict) and summary.get("name"):
            names[ref] = summary["name"]
    return names


def person(actor, name, ref):
    """Who did it, as this actor may read it: the name kept on the row, else the audit trail's (never the ref)."""
    if not visibility.may_see(actor, visibility.Field.HOLD_PEOPLE):
        return None
    from callrec_plugin.people import display_name  # here, so this change stays within this function

    return display_name(actor.practice_ref, ref, name) if (name or ref) else None


def calls_for_patient(actor, patient_ref, day=None):
    """The active calls of one patient of the actor's practice (on ``day`` if given), newest first."""
    from callrec_plugin.scoping import recordings_in
    from callrec_plugin.models import RecordingStatus

    query = recordings_in(actor.practice_ref).where(Recording.status == RecordingStatus.ACTIVE,
                                                    Recording.patient_ref == patient_ref)
    if day is not None:
        start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
        query = query.where(Recording.started_at >= start, Recording.started_at < start + dt.timedelta(days=1))
    return db_session().scalars(query.order_by(Recording.started_at.desc()).limit(50)).all()
