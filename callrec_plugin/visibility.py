"""Need to know: what each actor may *see* of a call and of everything around it.

The policy keeps monitoring results "in strict confidence" and retrieves recordings only for its
purposes, so whether a person may *play* a call (``policy.decide``) is not enough: every page, panel,
CSV, export and the audit page asks this module which fields it may show. Deny by default: a field
missing from ``FIELDS``, or a role missing from a field's row, is not shown.

Public API (use these, never test role names in a template or view):

    may_see(actor, field, *, complaint=None, staff_ref=None) -> bool
        ``complaint``: the host's complaint summary (``callrec_complaint_summary``) for fields scoped
        to the complaints a handler handles; ``staff_ref``: the member of staff assessed, for
        assessment fields.
    may_see_some(actor, field) -> bool: of some objects at least (whether a page has the column)
    hold_view(actor, hold, complaint=None) -> HoldView
        what may be shown of one hold: always that the call is held; kind, reason, reference, who
        placed it and when only to those allowed.
    link_view(actor, link, complaint) -> LinkView | None
        a complaint link (and its note) for those who may see it, else None.
    visible_call_rows(actor, rows, complaints) -> panels.CallRow list with HoldViews and LinkViews
    panel_hold_labels(actor, kinds, complaints), visible_complaint_refs(actor, refs, complaints):
        the patient panel's badges and complaint column.
    audit_events_visible(actor) -> SQL condition on AuditEvent (assessment events only for owner
        and manager; nothing for roles without audit fields).
    audit_reason(actor, event), audit_justification(actor, event) -> str: those columns as this
        actor may read them.
    assessment_event_condition() -> SQL condition: the event reveals an assessment (exports use it).
    is_assessment_event(event) -> bool
    role_term(roles) -> "practice manager": who, in role terms (for the data subject).

Scopes in the table: ``ALL`` (every such object), ``HANDLED`` (objects of complaints the actor
handles, per the host's ``handler_refs``), ``ASSESSED`` (the assessment is about the actor).

To add a field (a new column, CSV column, export line or audit reason another feature shows), add a
row to ``FIELDS`` naming the roles that may see it, and ask ``may_see`` where it is rendered.
"""
from dataclasses import dataclass, replace

import sqlalchemy as sa

from callrec_plugin.models import AuditEvent, HoldKind
from callrec_plugin.people import display_name
from callrec_plugin.roles import COMPLAINT_HANDLER, DPO, MANAGER, OWNER, ROLE_LABELS, STAFF, TRAINER

ALL, HANDLED, ASSESSED = "all", "handled", "assessed"


class Field:
    """The fields whose visibility the policy decides. Names are ``object.field``."""

    # A call's facts: everyone who may see the call at all.
    CALL_DATE = "call.date"
    CALL_DIRECTION = "call.direction"
    CALL_DURATION = "call.duration"
    CALL_NUMBER = "call.number"
    CALL_HANDLED_BY = "call.handled_by"
    CALL_RETENTION = "call.retention"  # days until deletion
    CALL_PATIENT = "call.patient"
    CALL_TRAINING = "call.training_approved"
    CALL_HELD = "call.held"  # that it is held: never why, by whom or for which authority
    # Holds: what kind (which authority), why, the external reference, who placed / released it.
    HOLD_KIND = "hold.kind"
    HOLD_REASON = "hold.reason"
    HOLD_REFERENCE = "hold.reference"
    HOLD_PEOPLE = "hold.people"
    # Complaints: the link of a call to a complaint, its note, who attached or detached it and why.
    COMPLAINT_LINK = "complaint.link"
    COMPLAINT_NOTE = "complaint.note"
    # The disclosure register: recipient, legal basis, reference, approvers.
    DISCLOSURE = "disclosure"
    # The audit trail: access events (who retrieved what, for which purpose), their justification text.
    ACCESS_EVENTS = "audit.access_events"
    ACCESS_JUSTIFICATION = "audit.justification"
    # Spot-check assessments: existence, outcome, notes, responses. Everywhere, the audit trail included.
    ASSESSMENT = "assessment"
    # Subject-access requests: the register (patient, identity check, deadlines).
    SUBJECT_ACCESS = "subject_access"
    # Card payments (issue 14): which ranges of a call are silenced and why, and that a payment was
    # taken on it, are facts of the call; who redacted or flagged it is a member of staff's name.
    REDACTION = "redaction"
    REDACTION_PEOPLE = "redaction.people"


_EVERYONE = {OWNER: ALL, MANAGER: ALL, COMPLAINT_HANDLER: ALL, TRAINER: ALL, STAFF: ALL, DPO: ALL}
_MONITORING = {OWNER: ALL, MANAGER: ALL}
_HOLDS = {OWNER: ALL, MANAGER: ALL, DPO: ALL, COMPLAINT_HANDLER: HANDLED}

# field -> {role: scope}. The policy's defaults (issue 9; DESIGN.md §2.5).
FIELDS = {
    Field.CALL_DATE: _EVERYONE,
    Field.CALL_DIRECTION: _EVERYONE,
    Field.CALL_DURATION: _EVERYONE,
    Field.CALL_NUMBER: _EVERYONE,
    Field.CALL_HANDLED_BY: _EVERYONE,
    Field.CALL_RETENTION: _EVERYONE,
    Field.CALL_PATIENT: _EVERYONE,
    Field.CALL_TRAINING: _EVERYONE,
    Field.CALL_HELD: _EVERYONE,
    Field.HOLD_KIND: _HOLDS,
    Field.HOLD_REASON: _HOLDS,
    Field.HOLD_REFERENCE: _HOLDS,
    Field.HOLD_PEOPLE: _HOLDS,
    Field.COMPLAINT_LINK: {OWNER: ALL, MANAGER: ALL, COMPLAINT_HANDLER: HANDLED},
    Field.COMPLAINT_NOTE: {OWNER: ALL, MANAGER: ALL, COMPLAINT_HANDLER: HANDLED},
    Field.DISCLOSURE: {OWNER: ALL, MANAGER: ALL, DPO: ALL},
    Field.ACCESS_EVENTS: {OWNER: ALL, MANAGER: ALL, DPO: ALL},
    Field.ACCESS_JUSTIFICATION: {OWNER: ALL, MANAGER: ALL, DPO: ALL},
    # Any role: the member of staff assessed reads their own assessment, whatever their role.
    Field.ASSESSMENT: {OWNER: ALL, MANAGER: ALL, COMPLAINT_HANDLER: ASSESSED, TRAINER: ASSESSED,
                       STAFF: ASSESSED, DPO: ASSESSED},
    Field.SUBJECT_ACCESS: {OWNER: ALL, MANAGER: ALL, DPO: ALL},
    Field.REDACTION: _EVERYONE,
    Field.REDACTION_PEOPLE: _MONITORING,
}


def handles_complaint(actor, complaint):
    """The host names the actor among the complaint's handlers."""
    return bool(complaint) and actor.ref in {str(ref) for ref in complaint.get("handler_refs", ())}


def may_see(actor, field, *, complaint=None, staff_ref=None):
    """Whether any of the actor's roles may see ``field`` (of this complaint / this assessment)."""
    if not actor.authenticated:
        return False
    row = FIELDS.get(field, {})
    for role in actor.roles:
        scope = row.get(role)
        if scope == ALL:
            return True
        if scope == HANDLED and handles_complaint(actor, complaint):
            return True
        if scope == ASSESSED and staff_ref is not None and str(staff_ref) == actor.ref:
            return True
    return False


def may_see_some(actor, field):
    """Whether the actor may see ``field`` of at least some objects (e.g. the complaints they handle):
    whether a page should have the column at all."""
    return actor.authenticated and any(FIELDS.get(field, {}).get(role) for role in actor.roles)


@dataclass(frozen=True)
class HoldView:
    """One hold as an actor may see it: ``None`` for every hidden detail."""

    id: int
    active: bool
    kind: str | None
    label: str  # "Held" for those who may not know the kind, else e.g. "Held: law enforcement"
    reason: str | None
    reference: str | None
    placed_by: str | None
    placed_at: object
    released_at: object


def hold_view(actor, hold, complaint=None):
    """What ``actor`` may see of ``hold``. ``complaint``: the summary of a complaint hold's complaint."""
    scoped = complaint if hold.kind == HoldKind.COMPLAINT else None

    def shown(field, value):
        return value if may_see(actor, field, complaint=scoped) else None

    kind = shown(Field.HOLD_KIND, hold.kind)
    return HoldView(
        id=hold.id,
        active=hold.released_at is None,
        kind=kind,
        label=f"Held: {kind.replace('_', ' ')}" if kind else "Held",
        reason=shown(Field.HOLD_REASON, hold.reason),
        reference=shown(Field.HOLD_REFERENCE, hold.external_reference),
        placed_by=shown(Field.HOLD_PEOPLE, _person(hold.practice_ref, hold.placed_by_ref, hold.placed_by_name)),
        placed_at=shown(Field.HOLD_PEOPLE, hold.placed_at),
        released_at=hold.released_at,
    )


def _person(practice_ref, ref, kept_name):
    """Who did it, by name (kept on the row, else the audit trail's), never the ref; None if nobody is named."""
    return display_name(practice_ref, ref, kept_name) if (ref or kept_name) else None


def hold_kind_label(actor, kind, complaint=None):
    """The badge for a hold known only by its kind (the patient panel): "Held" or "Held: <kind>"."""
    scoped = complaint if kind == HoldKind.COMPLAINT else None
    if may_see(actor, Field.HOLD_KIND, complaint=scoped):
        return f"Held: {kind.replace('_', ' ')}"
    return "Held"


@dataclass(frozen=True)
class LinkView:
    complaint_ref: str
    title: str | None
    url: str | None
    note: str | None
    linked_by: str | None
    linked_at: object
    unlinked_at: object
    unlink_reason: str | None


def link_view(actor, link, complaint):
    """A complaint link as the actor may see it, or None when the actor may not know of it."""
    if not may_see(actor, Field.COMPLAINT_LINK, complaint=complaint):
        return None
    note_shown = may_see(actor, Field.COMPLAINT_NOTE, complaint=complaint)
    return LinkView(
        complaint_ref=link.complaint_ref,
        title=(complaint or {}).get("title"),
        url=(complaint or {}).get("url"),
        note=link.note if note_shown else None,
        linked_by=_person(link.practice_ref, link.linked_by_ref, link.linked_by_name) if note_shown else None,
        linked_at=link.linked_at,
        unlinked_at=link.unlinked_at,
        unlink_reason=link.unlink_reason if note_shown else None,
    )


# -- rows of calls -------------------------------------------------------------------------------------


def complaint_refs_of(rows):
    """Every complaint a CallRow's links or holds name (to fetch their summaries once)."""
    refs = set()
    for row in rows:
        refs.update(link.complaint_ref for link in row.links)
        refs.update(hold.complaint_ref for hold in row.holds if hold.complaint_ref)
    return refs


def visible_call_rows(actor, rows, complaints):
    """``panels.CallRow``s with their holds and links as the actor may see them (``complaints``:
    ref -> the host's summary, as ``panels.complaint_titles`` returns)."""
    visible = []
    for row in rows:
        holds = [hold_view(actor, hold, complaints.get(hold.complaint_ref)) for hold in row.holds]
        links = [link_view(actor, link, complaints.get(link.complaint_ref)) for link in row.links]
        visible.append(replace(row, holds=_one_plain_badge(holds), links=[link for link in links if link]))
    return visible


def _one_plain_badge(holds):
    """Several holds whose kind is hidden show as one "Held" (how many would say more than "held")."""
    seen_plain, kept = False, []
    for hold in holds:
        if hold.kind is None:
            if seen_plain:
                continue
            seen_plain = True
        kept.append(hold)
    return kept


def panel_hold_labels(actor, kinds, complaints):
    """The patient panel's badges for one row's active hold kinds: "Held: <kind>" where the actor may
    know the kind, one "Held" otherwise. ``complaints``: summaries of the row's linked complaints
    (a complaint hold belongs to one of them)."""
    labels = []
    for kind in kinds:
        raw = kind.replace(" ", "_")
        handled = next((c for c in complaints if handles_complaint(actor, c)), None)
        label = hold_kind_label(actor, raw, handled)
        if label not in labels:
            labels.append(label)
    return labels


def visible_complaint_refs(actor, refs, complaints):
    """The linked complaints of a row the actor may know of (all, the handled ones, or none)."""
    return tuple(ref for ref in refs if may_see(actor, Field.COMPLAINT_LINK, complaint=complaints.get(ref)))


# -- the audit trail ------------------------------------------------------------------------------------

# Audit events that reveal an assessment (its existence included). Object types and actions.
# Monitoring (issue 13) is as confidential: spot-check draws, the sampling plan and rubric, training
# consent requests and answers (spot_checks.py, rubric.py, training_library.py, views/monitoring.py).
ASSESSMENT_OBJECT_TYPES = ("assessment", "assessments", "spot_check_draw", "sampling_plan", "rubric",
                           "monitoring_summary", "training_consent")
ASSESSMENT_ACTIONS = ("assess", "view_assessments", "approve_training", "training_proposed", "training_consent",
                      "training_removed", "spot_checks_drawn", "sampling_plan_changed",
                      "rubric_changed")  # and every action named "assessment_*"
ASSESSMENT_ACTION_PREFIX = "assessment"
ASSESSMENT_RECORDED = "assessment recorded"


def is_assessment_event(event):
    return (event.object_type in ASSESSMENT_OBJECT_TYPES or event.action in ASSESSMENT_ACTIONS
            or (event.action or "").startswith(ASSESSMENT_ACTION_PREFIX))


def assessment_event_condition():
    """A condition on AuditEvent: the event reveals an assessment (NULL where object_type is NULL and
    the action is not an assessment's: wrap in coalesce before negating)."""
    return sa.or_(AuditEvent.object_type.in_(ASSESSMENT_OBJECT_TYPES), AuditEvent.action.in_(ASSESSMENT_ACTIONS),
                  AuditEvent.action.like(f"{ASSESSMENT_ACTION_PREFIX}%"))


def audit_events_visible(actor):
    """A condition on AuditEvent: the events this actor may list (their practice scoping is the caller's).

    The data protection lead sees access events but never that an assessment exists; owner and
    manager see every event."""
    if not may_see(actor, Field.ACCESS_EVENTS):
        return sa.false()
    if may_see(actor, Field.ASSESSMENT):  # owner or manager: every assessment
        return sa.true()
    # An event whose object_type is NULL must stay listed: NOT (x IN ...) is NULL there, not true.
    return sa.not_(sa.func.coalesce(assessment_event_condition(), False))


# Actions whose reason carries a complaint note or a hold's reason and reference.
_COMPLAINT_ACTIONS = ("link", "unlink")
_HOLD_ACTIONS = ("hold_placed", "hold_released", "hold_release_requested")


def audit_reason(actor, event):
    """The event's reason as this actor may read it (assessment outcomes are never shown, even to
    those who may see the assessment itself: they read it on the assessments page)."""
    if is_assessment_event(event) and event.outcome == "done" and event.action == "assessment_created":
        return ASSESSMENT_RECORDED
    if is_assessment_event(event) and not may_see(actor, Field.ASSESSMENT):
        return ""
    if event.action in _COMPLAINT_ACTIONS and not may_see(actor, Field.COMPLAINT_NOTE):
        return ""
    if event.action in _HOLD_ACTIONS and not may_see(actor, Field.HOLD_REASON):
        return ""
    return event.reason or ""


def audit_justification(actor, event):
    return (event.justification or "") if may_see(actor, Field.ACCESS_JUSTIFICATION) else ""


# The most senior role names a person in role terms (for a data subject, who is told roles, not names).
_ROLE_ORDER = (OWNER, MANAGER, DPO, COMPLAINT_HANDLER, TRAINER, STAFF)


def role_term(roles):
    """'practice manager' for 'manager' (or 'manager,owner' -> 'practice owner'); 'the practice' if none."""
    names = set(roles.split(",")) if isinstance(roles, str) else set(roles or ())
    for role in _ROLE_ORDER:
        if role in names:
            return ROLE_LABELS[role].lower()
    return "the practice"
