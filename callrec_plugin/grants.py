"""Access grants are decided again on every audio request: a grant records a purpose, it is not a token.

A grant (made by the purpose form, ``playback.issue_grant``) says who chose which purpose for which
call, until when. Each audio or download request, Range requests included, finds it in ONE statement
together with the recording and the conditions that made it lawful, as they are *now*:

- a role of the user still allows the grant's purpose (the roles come from the host's hook on every
  request and go in as parameters: purposes allowed outright, only for calls approved for training,
  only for a complaint the call is attached to);
- ``training``: the call is still approved for training (``recordings.approved_for_training``);
- ``complaint``: the call is still attached to the complaint the grant names;
- the recording is still active (not purged, not erased).

Whether the named complaint is still open, and still one the user handles, only the host knows: for
complaint grants its ``callrec_complaint_summary`` is asked after the statement (no callrec query).
A refused request is audited by the caller with the reason ``refusal_reason`` gives.
"""
from dataclasses import dataclass

import sqlalchemy as sa

from callrec_plugin import policy
from callrec_plugin.models import AccessGrant, ComplaintLink, Recording, RecordingStatus, utcnow
from callrec_plugin.roles import PURPOSES
from callrec_plugin.state import db_session

# Purpose rules of the matrix, grouped by what must still hold in the database.
_OUTRIGHT = frozenset({"allow", "justification"})  # the justification was checked when the grant was made
_TRAINING = frozenset({"approved_for_training"})
_COMPLAINT = frozenset({"names_complaint", "handles_linked_complaint"})

_still_attached = sa.exists().where(
    ComplaintLink.recording_id == Recording.id,
    ComplaintLink.complaint_ref == AccessGrant.complaint_ref,
    ComplaintLink.unlinked_at.is_(None),
)


def _flag(name):
    return sa.bindparam(name, type_=sa.Boolean)


# For each purpose of the policy, whether the user's roles (booleans bound per request, so the
# statement never changes shape: no expanding IN to render on every request) allow it outright, for
# calls approved for training, or for a complaint the call is still attached to.
_purpose_still_holds = sa.or_(*(
    sa.and_(AccessGrant.purpose == purpose, sa.or_(
        _flag(f"{purpose}_outright"),
        sa.and_(_flag(f"{purpose}_training"), Recording.approved_for_training.is_(True)),
        sa.and_(_flag(f"{purpose}_complaint"), _still_attached),
    ))
    for purpose in PURPOSES
))

# Built once: composing a statement costs more than running it, and a player sends a Range request
# for every seek. Scoped to the practice like every recordings query. The outer join keeps the
# recording when no grant holds (the caller tells "no such call" from "not allowed").
_RECORDING_AND_GRANT = (
    sa.select(Recording, AccessGrant.id, AccessGrant.purpose, AccessGrant.complaint_ref)
    .outerjoin(AccessGrant, sa.and_(
        AccessGrant.recording_id == Recording.id,
        AccessGrant.practice_ref == Recording.practice_ref,
        AccessGrant.user_ref == sa.bindparam("user_ref"),
        AccessGrant.action == sa.bindparam("action"),
        AccessGrant.expires_at > sa.bindparam("now"),
        Recording.status == RecordingStatus.ACTIVE,
        Recording.wrapped_key.is_not(None),
        _purpose_still_holds,
    ))
    .where(Recording.id == sa.bindparam("recording_id"), Recording.practice_ref == sa.bindparam("practice_ref"))
    # A grant the statement settles on its own comes first: a complaint grant still needs the host's
    # word that the complaint is open, so it is chosen only when no other grant holds.
    .order_by((AccessGrant.purpose == "complaint").asc(), AccessGrant.expires_at.desc())
    .limit(1)
)


@dataclass(frozen=True)
class GrantCheck:
    """The recording (None: not in the actor's practice) and the grant that still holds, if any."""

    recording: Recording | None
    grant_id: str | None = None
    purpose: str | None = None
    complaint_ref: str | None = None

    @property
    def granted(self):
        return self.grant_id is not None


def rules_by_purpose(actor):
    """purpose -> the rules the actor's current roles give for it (a role gone: its rules gone)."""
    matrix = policy.purpose_matrix(actor.practice_ref)
    rules = {}
    for role in actor.roles:
        for purpose, rule in (matrix.get(role) or {}).items():
            rules.setdefault(purpose, set()).add(rule)
    return rules


def _parameters(rules):
    flags = {}
    for purpose in PURPOSES:
        given = rules.get(purpose, set())
        flags[f"{purpose}_outright"] = bool(given & _OUTRIGHT)
        flags[f"{purpose}_training"] = bool(given & _TRAINING)
        flags[f"{purpose}_complaint"] = bool(given & _COMPLAINT)
    return flags


def check(actor, recording_id, action):
    """Decide again, in one statement, whether the actor's grant for this call still holds."""
    if actor.practice_ref is None or not actor.authenticated:
        return GrantCheck(None)
    rules = rules_by_purpose(actor)
    row = db_session().execute(_RECORDING_AND_GRANT, {
        "recording_id": recording_id, "practice_ref": actor.practice_ref, "user_ref": actor.ref,
        "action": action, "now": utcnow(), **_parameters(rules),
    }).first()
    if row is None:
        return GrantCheck(None)
    recording, grant_id, purpose, complaint_ref = row
    if grant_id is not None and rules.get(purpose, set()) & _COMPLAINT:
        if not _complaint_still_open_to(actor, complaint_ref, rules[purpose]):
            return GrantCheck(recording)
    return GrantCheck(recording, grant_id, purpose, complaint_ref)


def _complaint_still_open_to(actor, complaint_ref, rules):
    summary = policy.complaint_summary(complaint_ref) if complaint_ref else None
    if not summary or summary.get("status") != "open" or str(summary.get("practice_ref")) != actor.practice_ref:
        return False
    return "names_complaint" in rules or policy.handles(actor, summary)


def recording_with_grant(actor, recording_id, action):
    """(the recording in the actor's practice or None, whether a grant still holds), in one query."""
    result = check(actor, recording_id, action)
    return result.recording, result.granted


def valid_grant(actor, recording, action):
    """The grant that still holds for this call (what the recording page's player relies on), or None."""
    result = check(actor, recording.id, action)
    return db_session().get(AccessGrant, result.grant_id) if result.granted else None


def refusal_reason(actor, recording, action):
    """Why no grant holds (the refused request's audit reason); runs only on the refusal path."""
    latest = db_session().scalar(
        sa.select(AccessGrant).where(AccessGrant.recording_id == recording.id,
                                     AccessGrant.practice_ref == actor.practice_ref,
                                     AccessGrant.user_ref == actor.ref, AccessGrant.action == action,
                                     AccessGrant.expires_at > utcnow())
        .order_by(AccessGrant.expires_at.desc()).limit(1))
    if latest is None:
        return "no valid access grant: choose a purpose on the recording page first"
    decision = policy.decide(actor, action, recording, purpose=latest.purpose, complaint_ref=latest.complaint_ref,
                             justification=latest.justification)
    why = decision.reason if not decision else "its conditions no longer hold"
    return f"access grant revoked: the purpose {latest.purpose} no longer applies ({why})"[:500]
