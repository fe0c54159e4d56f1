"""Hooks callrec calls to learn what only the host knows, and events it announces.

``firstresult`` hooks stop at the first answer that is not None; built-in answers are registered
``trylast`` so a host plugin always wins.
"""
from . import hookspec


@hookspec(firstresult=True)
def callrec_user_roles(user):
    """Return the set of callrec role names the user holds (owner, manager, complaint_handler, trainer, staff, dpo)."""


@hookspec(firstresult=True)
def callrec_user_ref(user):
    """Return {"ref": str, "name": str}: a stable id and display name for the user, for the audit trail."""


@hookspec(firstresult=True)
def callrec_practice_ref(user):
    """Return the practice (tenant) ref, a str, the user works in, or None if they work in none."""


@hookspec(firstresult=True)
def callrec_resolve_patient(phone_e164, practice_ref, started_at):
    """Return the patient_ref (str) whose number this is in the practice at that time, or None."""


@hookspec(firstresult=True)
def callrec_find_patients(query, practice_ref):
    """Return up to 20 patients of the practice matching what a person typed (name, date of birth, number), as summaries."""


@hookspec
def callrec_call_matched(recording_id, patient_ref, practice_ref, phone_e164, change):
    """Event: a person linked a call to a patient (change "matched") or took the link back ("undone"); ignored."""


@hookspec(firstresult=True)
def callrec_practice_summary(practice_ref):
    """Return {"ref": str, "name": str} for the practice, or None."""


@hookspec(firstresult=True)
def callrec_patient_summary(patient_ref):
    """Return {"ref", "name", "practice_ref", "phones": [e164, ...], "url"} for a patient, or None."""


@hookspec(firstresult=True)
def callrec_complaint_summary(complaint_ref):
    """Return {"ref", "title", "practice_ref", "patient_ref", "status": "open"|"closed", "handler_refs": [...], "url"}, or None."""


@hookspec
def callrec_permission(user, action, recording, purpose):
    """Return False to veto the action (any False denies), or None to leave the decision to the policy matrix."""


@hookspec(firstresult=True)
def callrec_should_record(phone_e164, practice_ref):
    """Return True or False: may a call with this number be recorded (False for a patient who objected)."""


@hookspec(firstresult=True)
def callrec_staff_for_extension(extension, practice_ref, at):
    """Return {"ref": str, "name": str}: the member of staff on this phone extension in the practice at that time, or None."""


@hookspec(firstresult=True)
def callrec_practice_exists(practice_ref):
    """Return True if the host knows this practice, False if not; callrec refuses imports and API calls for unknown ones."""


@hookspec(firstresult=True)
def callrec_practice_settings(practice_ref):
    """Return a dict of the practice's settings (retention_months, grace_days, extension_cap_months, tombstone_years, timezone, purpose_matrix, ...); missing keys fall back to config."""


@hookspec(firstresult=True)
def callrec_storage_backend(app):
    """Return the storage backend object for the app (default: encrypted local filesystem)."""


@hookspec
def callrec_recording_ingested(recording_id, practice_ref):
    """Event: a recording was stored; the return value is ignored."""


@hookspec
def callrec_recording_played(recording_id, user_ref, purpose):
    """Event: a playback grant was issued; the return value is ignored."""


@hookspec
def callrec_recording_purged(recording_id, practice_ref):
    """Event: a recording's key was destroyed and its blob deleted; the return value is ignored."""


@hookspec
def callrec_hold_changed(recording_id, hold_id, change):
    """Event: a hold was placed or released (change is "placed" or "released"); the return value is ignored."""


@hookspec
def callrec_export_ready(export_id, practice_ref):
    """Event: an export bundle was published and can be downloaded; the return value is ignored."""


@hookspec
def callrec_complaint_closed(complaint_ref):
    """Event the host announces when a complaint is closed; callrec then releases its complaint holds."""


@hookspec
def callrec_register_commands(cli):
    """Add click commands to the ``flask callrec`` group passed in as cli; the return value is ignored."""
