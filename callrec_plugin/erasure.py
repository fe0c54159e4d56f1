"""Shortening retention: only through the lawful erasure path, which needs a request and the approval of
a second, different person. (Keeping a call longer is extensions.py: a listed reason, a per-practice cap.)"""
from callrec_plugin import audit, clock
from callrec_plugin.state import db_session
from callrec_plugin.forms import has_control_characters
from callrec_plugin.models import ErasureRequest, RecordingStatus


class RetentionError(ValueError):
    """Retention could not be changed; the message says why."""


def request_erasure(actor, recording, reason):
    if recording.status != RecordingStatus.ACTIVE:
        raise RetentionError("the call has already been purged")
    if not (reason or "").strip() or has_control_characters(reason):
        raise RetentionError("give the lawful reason for erasure (e.g. a successful erasure request), in plain text")
    request = ErasureRequest(recording_id=recording.id, practice_ref=recording.practice_ref,
                             reason=reason.strip(), requested_by_ref=actor.ref, requested_at=clock.now())
    db_session().add(request)
    db_session().flush()
    audit.record("erasure_requested", "done", actor=actor, recording=recording, object_type="erasure",
                 object_id=str(request.id), reason=reason.strip())
    return request


def approval_refusal(actor, request):
    """Why ``actor`` may not approve the erasure ``request`` now, or None: the retention page asks this
    before it offers "Approve erasure", and approve_erasure refuses with the same words."""
    if request.approved_at is not None or request.withdrawn_at is not None:
        return "this erasure request is already decided"
    if request.requested_by_ref == actor.ref:
        return "a second, different person must approve an erasure"
    return None


def approve_erasure(actor, request, recording):
    """The second person approves: retention ends now (holds still win). Caller commits."""
    refusal = approval_refusal(actor, request)
    if refusal:
        raise RetentionError(refusal)
    now = clock.now()
    request.approved_by_ref, request.approved_at = actor.ref, now
    before = recording.retain_until
    recording.retain_until = min(recording.retain_until, now)
    audit.record("retention_shortened", "done", actor=actor, recording=recording, object_type="erasure",
                 object_id=str(request.id),
                 reason=f"lawful erasure approved ({before:%Y-%m-%d} -> now): {request.reason}")
