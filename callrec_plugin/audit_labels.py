"""What the audit trail's action codes mean to a person reading it, and which events are page views.

The codes stay in the trail (they are hashed and machine-read); the audit page shows these labels.
tests/test_audit_trail_filters.py fails when an action written anywhere in callrec has no label here.
The "About" column names what an event was about (a patient, a call, a complaint) as a person knows it,
never by its internal id (tests/test_names_not_ids.py).
"""
import sqlalchemy as sa
from flask import g, has_request_context

from callrec_plugin import visibility
from callrec_plugin.formatting import when_text
from callrec_plugin.identity import current_actor
from callrec_plugin.models import AuditEvent, Recording
from callrec_plugin.roles import Action
from callrec_plugin.state import db_session, get_state

# One label per action code, in the words of the policy. Decisions (allowed/denied) use the
# Action.* codes; completed changes use the past-tense codes.
LABELS = {
    # Access decisions (roles.Action), written by policy.authorize and the refusals of each page.
    Action.VIEW_METADATA: "View a call's details",
    Action.PLAY: "Play a call",
    Action.DOWNLOAD: "Download a call",
    Action.ATTACH: "Attach a call to a complaint",
    Action.HOLD: "Holds",
    Action.RELEASE: "Release a hold",
    Action.EXPORT: "Exports and disclosures",
    Action.ASSESS: "Assess a call",
    Action.APPROVE_TRAINING: "Approve a call for training",
    Action.VIEW_AUDIT: "Read the audit trail",
    Action.RECORD_OBJECTION: "Record an objection",
    Action.VIEW_RETENTION: "Read the retention report",
    Action.VIEW_ASSESSMENTS: "Read assessments",
    Action.CHANGE_RETENTION: "Change how long a call is kept",
    Action.MANAGE_JOBS: "Background jobs",
    Action.VIEW_TRAINING_LIBRARY: "Open the training library",
    Action.VIEW_STAFF_MAPPING: "Read the staff extensions",
    Action.VIEW_CALL_LOG: "Search the call log",
    Action.MATCH_CALL: "Link a call to a patient",
    Action.REDACT: "Silence part of a call",
    Action.FLAG_CARD_PAYMENT: "Flag card details in a call",
    # Holds
    "hold_placed": "Hold placed",
    "hold_release_requested": "Hold release: first approval",
    "hold_released": "Hold released",
    # Complaints
    "link": "Call attached to a complaint",
    "unlink": "Call detached from a complaint",
    # Exports, disclosures and subject access
    "export_requested": "Export requested",
    "export_ready": "Export ready",
    "export_failed": "Export failed",
    "export_expired": "Export expired",
    "export_download": "Export downloaded",
    "disclosure_requested": "Disclosure requested",
    "disclosure_approved": "Disclosure approved",
    "disclosure_refused": "Disclosure refused",
    "disclosure_decision": "Disclosure decision",
    "disclosure_delivered": "Disclosure delivered",
    "subject_access_registered": "Subject access request registered",
    "subject_access_extended": "Subject access deadline extended",
    "subject_access_answered": "Subject access request answered",
    # Retention and deletion
    "erasure_requested": "Erasure requested",
    "retention_shortened": "Retention shortened",
    "retention_extended": "Retention extended",
    "purge": "Call deleted at the end of retention",
    "tombstones_expired": "Records of deleted calls cleared",
    "blob_missing": "Stored audio missing",
    "reconcile": "Unfinished deletions completed",
    # Patients and objections
    "call_matched": "Call linked to a patient",
    "match_proposed": "Patient suggested for a call",
    "match_rejected": "Suggested patient rejected",
    "match_undone": "Patient link undone",
    "objection_recorded": "Objection recorded",
    "objection_withdrawn": "Objection withdrawn",
    # Monitoring and training
    "assessment_created": "Assessment recorded",
    "assessment_viewed": "Assessment read",
    "assessment_acknowledged": "Assessment acknowledged",
    "assessment_response": "Response to an assessment",
    "rubric_changed": "Assessment rubric changed",
    "sampling_plan_changed": "Spot-check plan changed",
    "spot_checks_drawn": "Spot checks drawn",
    "training_proposed": "Call proposed for training",
    "training_consent": "Training consent given",
    "training_removed": "Call removed from training",
    # Card payments
    "redact": "Part of a call silenced",
    "card_payment_flagged": "Card details flagged",
    # Recording, staff and system
    "ingest": "Call recorded",
    "ingest_api": "Recording upload",
    "import": "Calls imported",
    "staff_mapping_viewed": "Staff extensions read",
    "staff_remap": "Calls reassigned to staff",
    "job_retry": "Job retried",
    "keys_rotated": "Encryption keys rotated",
    "key_retired": "Encryption key retired",
}

OUTCOMES = {"allowed": "Allowed", "denied": "Refused", "done": "Done", "failed": "Failed"}

# Page views: the "allowed" decision written when someone opens a list or report page. They are
# kept (who looked at what is audit), but they are most of the trail and say nothing was changed,
# so the audit page hides them unless asked. (object_type, object_id or None for any id).
PAGE_VIEWS = (
    ("holds", "list"), ("audit", "audit"), ("retention", "report"), ("call_log", "search"),
    ("exports", "exports"), ("disclosures", "register"), ("subject_access", "register"), ("jobs", "jobs"),
    ("assessments", "list"), ("training_library", None), ("staff_mapping", "unmapped"),
    ("spot_check_draw", None), ("sampling_plan", None), ("rubric", None), ("monitoring_summary", None),
    ("export_status", None),  # the export page's progress bar asking every few seconds
)
PAGE_NAMES = {
    "holds": "Holds page", "audit": "Audit trail", "retention": "Retention report", "call_log": "Call log",
    "exports": "Exports page", "disclosures": "Disclosure register", "subject_access": "Subject access register",
    "jobs": "Jobs page", "assessments": "Assessments page", "training_library": "Training library",
    "staff_mapping": "Staff extensions page", "spot_check_draw": "Spot checks page",
    "sampling_plan": "Spot-check plan", "rubric": "Assessment rubric", "monitoring_summary": "Monitoring summary",
    "export_status": "Export progress",
}


def label(action):
    """The label of an action code; an unknown code (a host's own, an old row) reads as words."""
    return LABELS.get(action) or (action or "").replace("_", " ").capitalize()


def is_page_view(event):
    if event.outcome != "allowed" or event.recording_id is not None:
        return False
    return any(event.object_type == kind and (ident is None or event.object_id == ident)
               for kind, ident in PAGE_VIEWS)


def page_view_clause():
    """SQL true for page-view events (the same rule as is_page_view)."""
    pages = [sa.and_(AuditEvent.object_type == kind, *([AuditEvent.object_id == ident] if ident else []))
             for kind, ident in PAGE_VIEWS]
    return sa.and_(AuditEvent.outcome == "allowed", AuditEvent.recording_id.is_(None), sa.or_(*pages))


# What each kind of object reads as when the event names no patient, call or complaint by name: the
# kind alone, since its id means nothing to a person (a link on the page may still carry it).
KIND_LABELS = {
    "patient": "a patient", "recording": "a call", "recordings": "calls", "complaint": "a complaint",
    "hold": "a hold", "holds": "holds", "export": "an export", "exports": "exports",
    "disclosure": "a disclosure", "disclosures": "disclosures", "subject_access": "a subject access request",
    "erasure": "an erasure request", "erasure_request": "an erasure request",
    "retention_extension": "a retention extension", "retention": "retention", "assessment": "an assessment",
    "assessments": "assessments", "objection": "an objection", "match": "a patient link", "job": "a job",
    "jobs": "jobs", "key": "an encryption key", "import_run": "an import", "api": "the upload API",
    "staff_mapping": "the staff extensions", "training_consent": "a call for training",
    "training_library": "the training library", "spot_check_draw": "spot checks",
    "sampling_plan": "the spot-check plan", "rubric": "the assessment rubric",
    "monitoring_summary": "the monitoring summary", "call_log": "the call log", "audit": "the audit trail",
}


def _cached(kind, key, look_up):
    # One look-up per object per request: a page of the trail names the same call or patient many times.
    cache = g.setdefault("_callrec_described", {}) if has_request_context() else {}
    if (kind, key) not in cache:
        cache[(kind, key)] = look_up()
    return cache[(kind, key)]


def _in_practice(summary, event):
    """The host's summary, if it is of the event's practice (a name of another practice is never shown)."""
    if not isinstance(summary, dict):
        return None
    if event.practice_ref and summary.get("practice_ref") not in (None, event.practice_ref):
        return None
    return summary


def _patient_name(event, ref):
    summary = _cached("patient", ref, lambda: get_state().pm.hook.callrec_patient_summary(patient_ref=ref))
    return (_in_practice(summary, event) or {}).get("name") or None


def _call_name(event, recording_id):
    started = _cached("recording", recording_id, lambda: db_session().scalar(
        sa.select(Recording.started_at).where(Recording.id == recording_id,
                                              Recording.practice_ref == event.practice_ref)))
    return f"Call on {when_text(started)}" if started else None


def _complaint_title(event, ref):
    """The complaint's title, for a reader who may know of the complaint (its handler, owner, manager)."""
    summary = _in_practice(_cached(
        "complaint", ref, lambda: get_state().pm.hook.callrec_complaint_summary(complaint_ref=ref)), event)
    if summary is None or not has_request_context():
        return None
    if not visibility.may_see(current_actor(), visibility.Field.COMPLAINT_LINK, complaint=summary):
        return None
    return summary.get("title") or None


def describe_object(event):
    """What the event was about, in words: the page for a page view, else the patient, call or complaint by
    name, else the kind of object alone (its id never: ids are for machines, tests/test_names_not_ids.py)."""
    if is_page_view(event):
        return PAGE_NAMES.get(event.object_type, event.object_type)
    kind, ident = event.object_type or "", event.object_id
    named = None
    if kind == "patient" and ident:
        named = _patient_name(event, ident)
    elif kind == "complaint" and ident:
        named = _complaint_title(event, ident)
    elif event.recording_id and kind in ("recording", "training_consent"):
        named = _call_name(event, event.recording_id)
    elif kind == "recording" and ident:
        named = _call_name(event, ident)
    fallback = KIND_LABELS.get(kind) or kind.replace("_", " ")
    return named or (fallback[:1].upper() + fallback[1:])
