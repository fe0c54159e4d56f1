"""The one place that decides whether an actor may do something. Deny by default.

``decide`` answers without side effects; ``authorize`` decides and writes the audit event. Views call
``authorize`` and nothing else makes access decisions. What an actor may *see* of a call (its holds,
complaints, assessments, audit events) is the field-level rule of ``visibility.py``; whether a grant
still holds at each audio request is ``grants.py``'s, built on this module's matrix.
"""
from dataclasses import dataclass, replace

import sqlalchemy as sa

from callrec_plugin import audit
from callrec_plugin.state import db_session, get_state
from callrec_plugin.models import ComplaintLink, RecordingStatus
from callrec_plugin.roles import (
    AUDIO_ACTIONS,
    COMPLAINT_HANDLER,
    DPO,
    MANAGER,
    MONITORING_ROLES,
    OWNER,
    PURPOSES,
    STAFF,
    TRAINER,
    Action,
)

ALL_ROLES = (OWNER, MANAGER, COMPLAINT_HANDLER, TRAINER, STAFF, DPO)

# Which roles may attempt each action at all (audio actions also need a purpose rule below).
ACTION_ROLES = {
    Action.VIEW_METADATA: ALL_ROLES,
    Action.PLAY: (OWNER, MANAGER, COMPLAINT_HANDLER, TRAINER),
    Action.DOWNLOAD: (OWNER, MANAGER),
    Action.ATTACH: (OWNER, MANAGER, COMPLAINT_HANDLER),
    Action.HOLD: (OWNER, MANAGER),
    Action.RELEASE: (OWNER, MANAGER),
    Action.EXPORT: (OWNER, MANAGER, DPO),
    Action.ASSESS: (OWNER, MANAGER),
    Action.APPROVE_TRAINING: (OWNER, MANAGER),
    Action.VIEW_AUDIT: (OWNER, MANAGER, DPO),
    Action.RECORD_OBJECTION: (OWNER, MANAGER, COMPLAINT_HANDLER, STAFF),
    Action.VIEW_RETENTION: (OWNER, MANAGER, DPO),
    # Everyone may open the assessments page; it shows staff only the assessments of their own calls.
    Action.VIEW_ASSESSMENTS: ALL_ROLES,
    Action.CHANGE_RETENTION: (OWNER, MANAGER),
    Action.MANAGE_JOBS: (OWNER, MANAGER),
    # The library of calls the member of staff on them consented to training use of.
    Action.VIEW_TRAINING_LIBRARY: (OWNER, MANAGER, TRAINER),
    # Which phone extensions on the practice's calls map to no member of staff.
    Action.VIEW_STAFF_MAPPING: (OWNER, MANAGER),
    # A practice may open these to more roles (CALLREC_CALL_LOG_ROLES, CALLREC_MATCH_CALL_ROLES).
    Action.VIEW_CALL_LOG: (OWNER, MANAGER, DPO),
    Action.MATCH_CALL: (OWNER, MANAGER),
    Action.REDACT: (OWNER, MANAGER),
    # Whoever took the payment says so; the data protection lead handles no calls.
    Action.FLAG_CARD_PAYMENT: (OWNER, MANAGER, COMPLAINT_HANDLER, TRAINER, STAFF),
}

# The policy's monitoring matrix: role -> purpose -> precondition rule. Missing means no.
_MONITOR = {
    "compliance": "allow",
    "training": "allow",
    "complaint": "names_complaint",
    "spot_check": "allow",
    "safety_crime": "justification",
}
DEFAULT_PURPOSE_MATRIX = {
    OWNER: dict(_MONITOR),
    MANAGER: dict(_MONITOR),
    COMPLAINT_HANDLER: {"complaint": "handles_linked_complaint"},
    TRAINER: {"training": "approved_for_training"},
}

MIN_JUSTIFICATION_CHARS = 15


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    event: object = None  # the audit event that recorded it (set by ``authorize``)

    def __bool__(self):
        return self.allowed


def allow(reason="allowed"):
    return Decision(True, reason)


def deny(reason):
    return Decision(False, reason)


# Actions a practice may open to more roles than ACTION_ROLES gives, and the practice setting naming them.
PRACTICE_OPENABLE = {Action.VIEW_CALL_LOG: "call_log_roles", Action.MATCH_CALL: "match_call_roles"}


def roles_for(actor, action):
    """The roles that may attempt ``action`` in the actor's practice: ACTION_ROLES, plus the roles the
    practice opened it to (callrec_practice_settings: call_log_roles, match_call_roles)."""
    roles = set(ACTION_ROLES[action])
    setting = PRACTICE_OPENABLE.get(action)
    if setting:
        from callrec_plugin.practice_settings import settings_for

        roles.update(settings_for(actor.practice_ref).get(setting) or ())
    return roles


def purpose_matrix(practice_ref=None):
    """The practice's role x purpose matrix (callrec_practice_settings), else the policy's."""
    from callrec_plugin.practice_settings import settings_for

    return settings_for(practice_ref).purpose_matrix or DEFAULT_PURPOSE_MATRIX


def decide(actor, action, recording=None, purpose=None, complaint_ref=None, justification=None, complaint=None):
    """Answer whether actor may do action (on recording, for purpose, on the complaint's evidence). No side effects."""
    if not actor.authenticated:
        return deny("not signed in")
    if actor.practice_ref is None:
        return deny("the user works in no practice")
    if action not in ACTION_ROLES:
        return deny(f"unknown action {action!r}")
    if recording is not None and recording.practice_ref != actor.practice_ref:
        return deny("the recording belongs to another practice")
    if not actor.has_any(roles_for(actor, action)):
        return deny(f"no role of the user may {action.replace('_', ' ')}")
    if action in AUDIO_ACTIONS:
        decision = _decide_purpose(actor, recording, purpose, complaint_ref, justification)
        if not decision:
            return decision
    if action == Action.ATTACH and complaint is not None and not handles(actor, complaint):
        return deny("the user does not handle this complaint")
    if action == Action.ATTACH and complaint is not None and complaint.get("status") == "closed":
        # A closed complaint's calls are its record: read-only evidence (the panel offers nothing to change).
        return deny("the complaint is closed: the calls attached to it stay as they are")
    if _vetoed(actor, action, recording, purpose):
        return deny("refused by a callrec_permission plugin")
    return allow(f"{action} allowed" + (f" for purpose {purpose}" if purpose else ""))


def _decide_purpose(actor, recording, purpose, complaint_ref, justification):
    if recording is None:
        return deny("no recording named")
    if recording.status != RecordingStatus.ACTIVE:
        return deny("the recording has been purged")
    if not purpose:
        return deny("no purpose chosen")
    if purpose not in PURPOSES:
        return deny(f"{purpose!r} is not a purpose of the policy")
    matrix = purpose_matrix(actor.practice_ref)
    reasons = []
    for role in sorted(actor.roles):
        rule = matrix.get(role, {}).get(purpose)
        if rule is None:
            continue
        decision = _check_rule(rule, actor, recording, complaint_ref, justification)
        if decision:
            return decision
        reasons.append(decision.reason)
    if reasons:
        return deny("; ".join(reasons))
    return deny(f"no role of the user may retrieve recordings for purpose {purpose}")


def _check_rule(rule, actor, recording, complaint_ref, justification):
    if rule == "allow":
        return allow()
    if rule == "justification":
        if justification and len(justification.strip()) >= MIN_JUSTIFICATION_CHARS:
            return allow()
        return deny(f"a written justification of at least {MIN_JUSTIFICATION_CHARS} characters is required")
    if rule == "approved_for_training":
        return allow() if recording.approved_for_training else deny("the recording is not approved for training")
    if rule == "names_complaint":
        return _check_named_complaint(actor, recording, complaint_ref, must_handle=False)
    if rule == "handles_linked_complaint":
        return _check_named_complaint(actor, recording, complaint_ref, must_handle=True)
    return deny(f"unknown rule {rule!r} in the purpose matrix")


def _check_named_complaint(actor, recording, complaint_ref, must_handle):
    """The complaint purpose names an open complaint of the practice to which the call is attached,
    for every role (owner and manager attach first); a complaint handler must also handle it. The
    audio request checks the same again on every request (grants.py)."""
    if not complaint_ref:
        return deny("name the complaint being investigated")
    summary = complaint_summary(complaint_ref)
    if summary is None or str(summary.get("practice_ref")) != actor.practice_ref:
        return deny("no such complaint in the user's practice")
    if summary.get("status") != "open":
        return deny("the complaint is closed")
    if complaint_ref not in linked_complaint_refs(recording.id):
        return deny("the call is not attached to this complaint: attach it first")
    if must_handle and actor.ref not in {str(h) for h in summary.get("handler_refs", ())}:
        return deny("the user does not handle this complaint")
    return allow()


def handles(actor, complaint):
    """Owner and manager handle every complaint; a complaint handler those the host names them for."""
    if actor.has_any(MONITORING_ROLES):
        return True
    return COMPLAINT_HANDLER in actor.roles and actor.ref in {str(h) for h in complaint.get("handler_refs", ())}


def linked_complaint_refs(recording_id):
    rows = db_session().scalars(
        sa.select(ComplaintLink.complaint_ref).where(
            ComplaintLink.recording_id == recording_id, ComplaintLink.unlinked_at.is_(None)
        )
    )
    return set(rows)


def complaint_summary(complaint_ref):
    return get_state().pm.hook.callrec_complaint_summary(complaint_ref=complaint_ref)


def _vetoed(actor, action, recording, purpose):
    answers = get_state().pm.hook.callrec_permission(
        user=actor.user, action=action, recording=recording, purpose=purpose
    )
    return any(answer is False for answer in answers)


def authorize(actor, action, recording=None, purpose=None, complaint_ref=None, justification=None,
              object_type=None, object_id=None, patient_ref=None, complaint=None, detail=None):
    """Decide and audit. A denial is committed at once; an allow is flushed for the caller to commit.
    ``detail`` is added to the event's reason (e.g. the filters of a search: one event per search)."""
    decision = decide(actor, action, recording, purpose, complaint_ref, justification, complaint)
    event = audit.record(
        action,
        "allowed" if decision else "denied",
        actor=actor,
        reason=f"{decision.reason}; {detail}" if detail else decision.reason,
        recording=recording,
        object_type=object_type,
        object_id=object_id,
        purpose=purpose,
        justification=justification,
        patient_ref=patient_ref,
    )
    if not decision:
        db_session().commit()
    return replace(decision, event=event)
