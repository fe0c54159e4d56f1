"""Subject-access and disclosure bundles: streamed ZIPs, encrypted at rest, published atomically.

A bundle is a ZIP whose entries are *stored* (audio does not compress):

    cover-note.txt       what the bundle is, for whom, how to verify it
    calls/<date>_<direction>_<id>.<ext>   the audio, exactly as recorded
    calls.csv            one line per call: date, direction, duration, numbers, staff, retention
    objections.csv       (subject access) the patient's objections to being recorded
    disclosure.json      (disclosure) the register entry: recipient, legal basis, reference, approvers
    audit-extract.csv    every audit event about these calls (who accessed them, when, why), with the
                         chain's seq, prev_hash and hash
    manifest.json        everything above, with sizes and SHA-256 digests
    SHA256SUMS           `sha256sum -c SHA256SUMS` checks every file

Building (``build_export``, run by a job): the ZIP is produced by a generator, piece by piece, and
read by ``crypto.encrypt_stream`` into the storage backend's ``open_write`` (a temporary file,
renamed into place on success): audio is decrypted, checksummed, zipped and re-encrypted 64 KiB at a
time, so memory stays flat whatever the size and no plaintext touches the disk. Each attempt uses a
fresh data key and a fresh storage key recorded on the row first; the row becomes "ready" by one
guarded UPDATE only after the whole blob is in place. A worker killed mid-build leaves the row
"building" (never downloadable) and at most a temporary or unreferenced file; the retried attempt
starts again and deletes the earlier attempt's blob.

Downloads: only the requester, only while ``expires_at`` (``CALLREC_EXPORT_LINK_HOURS``) is in the
future, each one audited. Expired bundles are deleted by the reconciler.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import re
import secrets
import time
import zipfile
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from callrec_plugin import audit, subject_access
from callrec_plugin import redaction  # the notes of what was silenced, carried by every bundle
from callrec_plugin.csv_cells import safe_cell
from callrec_plugin.ingest.numbers import number_for_spreadsheet
from callrec_plugin.digests import BackgroundDigests
from callrec_plugin.forms import OBJECTION_METHODS  # how an objection was made, as the panel says it
from callrec_plugin.crypto import DecryptingReader, encrypt_stream, generate_data_key
from callrec_plugin.state import db_session, get_state
from callrec_plugin.holds import place_holds, release_disclosure_holds
from callrec_plugin.identity import SYSTEM
from callrec_plugin.people import display_name, name_of
from callrec_plugin.job_records import EXPORT, create_job, heartbeat
from callrec_plugin.kill_points import kill_point
from callrec_plugin.models import (
    AuditEvent,
    Disclosure,
    DisclosureItem,
    Export,
    HoldKind,
    Job,
    PatientObjection,
    Recording,
    RecordingStatus,
    SubjectAccessRequest,
    Tombstone,
    utcnow,
)
from callrec_plugin.playback import keyring, open_plaintext, storage_backend, stored_size
from callrec_plugin.roles import MONITORING_ROLES
from callrec_plugin.practice_settings import settings_for
from callrec_plugin.scoping import patient_in_practice
from callrec_plugin.visibility import assessment_event_condition, role_term

log = logging.getLogger(__name__)

SUBJECT_ACCESS, DISCLOSURE = "subject_access", "disclosure"
KIND_LABELS = {SUBJECT_ACCESS: "Subject access bundle", DISCLOSURE: "Disclosure bundle"}
RECIPIENT_KINDS = {"regulator": "Regulator", "law_enforcement": "Law enforcement"}
QUEUED, BUILDING, READY, FAILED, EXPIRED = "queued", "building", "ready", "failed", "expired"
BUNDLE_FORMAT = "callrec-bundle/1"
AUDIT_COLUMNS = ("seq", "occurred_at", "actor_ref", "actor_name", "roles", "action", "object_type", "object_id",
                 "recording_id", "patient_ref", "purpose", "justification", "outcome", "reason", "ip", "request_id",
                 "prev_hash", "hash")
CALL_COLUMNS = ("file", "recording_id", "started_at", "direction", "duration_seconds", "from_number", "to_number",
                "staff_name", "staff_extension", "disposition", "audio_format", "size_bytes", "retain_until", "sha256")
RECORDING_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
MIN_LEGAL_BASIS_CHARS = 10
# A build records its progress (and the job's heartbeat) at most this often.
PROGRESS_SECONDS = 1.0


class ExportError(ValueError):
    """A request about an export or disclosure was refused; ``status`` is the HTTP answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def cre_id(export_id):
    """The id an export's blob is encrypted and its data key wrapped under (never a recording's)."""
    return f"export/{export_id}"


def link_lifetime():
    return dt.timedelta(hours=float(current_app.config["CALLREC_EXPORT_LINK_HOURS"]))


# -- requests --------------------------------------------------------------------------------------


def request_subject_access(actor, entry):
    """Queue the bundle answering a registered subject-access request (``subject_access.register``),
    and its job (committed). Only the person who registered the request builds and downloads it: a
    bundle of a patient's calls never leaves without a request on record. Returns (export, job)."""
    if entry is None or entry.practice_ref != actor.practice_ref:
        raise ExportError("Register the subject access request first: a bundle answers a registered request.",
                          status=404)
    if entry.registered_by_ref != actor.ref:
        raise ExportError("Only the person who registered this request may build and download its bundle.",
                          status=403)
    if patient_in_practice(actor, entry.patient_ref) is None:
        raise ExportError("There is no such patient in your practice.", status=404)
    session = db_session()
    export = Export(practice_ref=actor.practice_ref, kind=SUBJECT_ACCESS, patient_ref=entry.patient_ref,
                    subject_access_id=entry.id, requested_by_ref=actor.ref, requested_by_name=actor.name,
                    status=QUEUED, created_at=utcnow())
    session.add(export)
    session.flush()
    job = create_job(EXPORT, practice_ref=actor.practice_ref, object_id=export.id,
                     requested_by_ref=actor.ref, commit=False)
    audit.record("export_requested", "done", actor=actor, object_type="export", object_id=export.id,
                 patient_ref=entry.patient_ref, reason=f"subject access bundle requested for request {entry.id}")
    session.commit()
    return export, job


def parse_recording_ids(text):
    """Recording ids from a textarea: one per line (ids or links to recording pages), duplicates dropped."""
    ids = []
    for line in (text or "").replace(",", "\n").splitlines():
        line = line.strip().rstrip("/")
        if not line:
            continue
        candidate = line.split("/recordings/")[-1].split("/")[0].split("?")[0].split("#")[0]
        if not RECORDING_ID.fullmatch(candidate):
            raise ExportError(f"{line[:80]!r} is not a recording id or a recording page link.")
        if candidate not in ids:
            ids.append(candidate)
    return ids


def request_disclosure(actor, *, recipient, recipient_kind, legal_basis, reference, recording_ids):
    """Record a disclosure request (register entry + its calls), awaiting a second person's approval."""
    recipient, legal_basis, reference = (recipient or "").strip(), (legal_basis or "").strip(), (reference or "").strip()
    if recipient_kind not in RECIPIENT_KINDS:
        raise ExportError("Recordings are disclosed only to a regulator or to law enforcement.")
    if not recipient:
        raise ExportError("Name the recipient (the regulator or police force, and the officer).")
    if len(legal_basis) < MIN_LEGAL_BASIS_CHARS:
        raise ExportError(f"State the legal basis for the disclosure (at least {MIN_LEGAL_BASIS_CHARS} characters).")
    if not reference:
        raise ExportError("Give the recipient's reference (case, crime or request number).")
    if not recording_ids:
        raise ExportError("Select at least one call to disclose.")
    session = db_session()
    found = dict(session.execute(
        sa.select(Recording.id, Recording.status).where(Recording.practice_ref == actor.practice_ref,
                                                        Recording.id.in_(recording_ids))).all())
    unknown = [rid for rid in recording_ids if rid not in found]
    if unknown:
        raise ExportError(f"No such call in your practice: {', '.join(unknown[:5])}.", status=404)
    gone = [rid for rid in recording_ids if found[rid] != RecordingStatus.ACTIVE]
    if gone:
        raise ExportError(f"These calls have been deleted under the retention policy: {', '.join(gone[:5])}.")
    disclosure = Disclosure(practice_ref=actor.practice_ref, recipient=recipient[:200], recipient_kind=recipient_kind,
                            legal_basis=legal_basis, reference=reference[:128], requested_by_ref=actor.ref,
                            requested_at=utcnow(), status="requested")
    session.add(disclosure)
    session.flush()
    session.add_all([DisclosureItem(disclosure_id=disclosure.id, recording_id=rid) for rid in recording_ids])
    _hold_for_disclosure(actor, disclosure, recording_ids)
    audit.record("disclosure_requested", "done", actor=actor, object_type="disclosure", object_id=disclosure.id,
                 reason=f"{RECIPIENT_KINDS[recipient_kind]} {recipient[:80]}, reference {reference[:60]}: "
                        f"{len(recording_ids)} calls; legal basis: {legal_basis[:300]}")
    session.commit()
    return disclosure


def _hold_for_disclosure(actor, disclosure, recording_ids):
    """From the request on, the calls are kept: a purge cannot take them while a second approver is
    awaited, nor for CALLREC_DISCLOSURE_HOLD_DAYS after delivery. The hold carries the reference."""
    recordings = db_session().scalars(sa.select(Recording).where(
        Recording.practice_ref == disclosure.practice_ref, Recording.id.in_(recording_ids))).all()
    kind = RECIPIENT_KINDS.get(disclosure.recipient_kind, disclosure.recipient_kind).lower()
    place_holds(actor, recordings, HoldKind.DISCLOSURE, f"disclosure {disclosure.id} to {kind}: "
                f"{disclosure.recipient}", external_reference=disclosure.reference, group_id=disclosure.id)


def approval_refusal(actor, disclosure):
    """Why ``actor`` may not approve the disclosure now, as an ExportError (its words and status), or None.
    The disclosure page asks it before offering the button, approve_disclosure before acting."""
    refusal = _decision_refusal(actor, disclosure, "approve")
    if refusal is None and actor.ref == disclosure.requested_by_ref:
        refusal = ExportError("A second, different person must approve a disclosure: you requested this one.",
                              status=403)
    return refusal


def refusal_refusal(actor, disclosure):
    """Why ``actor`` may not refuse the disclosure now (an ExportError), or None: asked by the page and by
    refuse_disclosure alike."""
    return _decision_refusal(actor, disclosure, "refuse")


def _decision_refusal(actor, disclosure, verb):
    if disclosure.status != "requested":
        return ExportError(f"This disclosure is {disclosure.status} already.", status=409)
    if not actor.has_any(MONITORING_ROLES):
        return ExportError(f"Only the practice owner or manager may {verb} a disclosure.", status=403)
    return None


def approve_disclosure(actor, disclosure):
    """The second person's approval: queues the bundle for the requester. Returns (export, job)."""
    refusal = approval_refusal(actor, disclosure)
    if refusal is not None:
        raise refusal
    session = db_session()
    now = utcnow()
    export = Export(practice_ref=disclosure.practice_ref, kind=DISCLOSURE, disclosure_id=disclosure.id,
                    requested_by_ref=disclosure.requested_by_ref, status=QUEUED, created_at=now,
                    requested_by_name=name_of(disclosure.practice_ref, disclosure.requested_by_ref))
    session.add(export)
    session.flush()
    disclosure.status, disclosure.approved_by_ref, disclosure.approved_at = "approved", actor.ref, now
    disclosure.export_id = export.id
    job = create_job(EXPORT, practice_ref=disclosure.practice_ref, object_id=export.id,
                     requested_by_ref=disclosure.requested_by_ref, commit=False)
    # The trail's reader reads the requester's name, not a staff id.
    requester = display_name(disclosure.practice_ref, disclosure.requested_by_ref, export.requested_by_name)
    audit.record("disclosure_approved", "done", actor=actor, object_type="disclosure", object_id=disclosure.id,
                 reason=f"approved; requested by {requester}; bundle {export.id} queued")
    session.commit()
    return export, job


def refuse_disclosure(actor, disclosure, reason):
    refusal = refusal_refusal(actor, disclosure)
    if refusal is not None:
        raise refusal
    disclosure.status = "refused"
    release_disclosure_holds(disclosure.id, "refused", actor=actor)
    audit.record("disclosure_refused", "done", actor=actor, object_type="disclosure", object_id=disclosure.id,
                 reason=(reason or "refused").strip()[:500])
    db_session().commit()


# -- state changes used by jobs and the reconciler ----------------------------------------------------


def mark_failed(export_id, message, final=True, commit=True):
    """A build attempt failed: on the final one, the export is failed and its blob deleted."""
    session = db_session()
    export = session.get(Export, export_id) if export_id else None
    if export is None or export.status == READY:
        return
    export.error = message[:2000]
    if final:
        export.status = FAILED
        key = export.storage_key
        if key:
            storage_backend().delete(key)
            _remove_temp_files(storage_backend(), key)
        audit.record("export_failed", "failed", actor=SYSTEM, object_type="export", object_id=export.id,
                     practice_ref=export.practice_ref, patient_ref=export.patient_ref, reason=message[:500])
    if commit:
        session.commit()


def _remove_temp_files(backend, key):
    """A killed attempt's half-written, encrypted temporary file: removed as soon as the attempt is
    known to be over, not left for the orphan sweep (backends without temporary files have nothing)."""
    remove = getattr(backend, "remove_temp_files", None)
    if remove is not None:
        removed = remove(key)
        if removed:
            log.info("export blob %s: removed %d temporary files of an interrupted attempt", key, removed)


def mark_queued_again(export_id):
    export = db_session().get(Export, export_id)
    if export is not None and export.status in (FAILED, BUILDING):
        export.status, export.error, export.progress_done = QUEUED, None, 0


def expire_due(now=None):
    """Expire bundles whose link has run out: status "expired", blob deleted. Returns how many."""
    session = db_session()
    now = now or utcnow()
    due = session.scalars(sa.select(Export).where(Export.status == READY, Export.expires_at <= now)).all()
    backend = storage_backend()
    for export in due:
        export.status = EXPIRED
        audit.record("export_expired", "done", actor=SYSTEM, object_type="export", object_id=export.id,
                     practice_ref=export.practice_ref, patient_ref=export.patient_ref,
                     reason="download link expired; bundle deleted")
    session.commit()
    for export in due:
        if export.storage_key:
            backend.delete(export.storage_key)
    return len(due)


# -- what goes in ----------------------------------------------------------------------------------------


@dataclass
class Call:
    """A snapshot of a recording's row (plain values: the build commits progress as it goes)."""

    id: str
    started_at: dt.datetime
    direction: str
    duration_seconds: float
    from_number: str | None
    to_number: str | None
    staff_name: str | None
    staff_extension: str | None
    disposition: str | None
    audio_format: str | None
    plaintext_size: int
    retain_until: dt.datetime
    patient_ref: str | None
    # What open_plaintext reads, copied too: the build's progress commits expire the ORM row, and
    # reading an expired attribute would cost a SELECT per call.
    storage_key: str = field(repr=False, default=None)
    wrapped_key: bytes = field(repr=False, default=None)
    key_id: str = field(repr=False, default=None)

    @property
    def path(self):
        extension = re.sub(r"[^a-z0-9]", "", (self.audio_format or "bin").lower()) or "bin"
        return f"calls/{self.started_at:%Y-%m-%dT%H%M%SZ}_{self.direction}_{self.id}.{extension}"


def _call(recording):
    return Call(recording.id, recording.started_at, recording.direction, recording.duration_seconds,
                recording.from_number, recording.to_number, recording.staff_name, recording.staff_extension,
                recording.disposition, recording.audio_format, recording.plaintext_size, recording.retain_until,
                recording.patient_ref, recording.storage_key, recording.wrapped_key, recording.key_id)


@dataclass
class Plan:
    export: dict
    calls: list
    deleted: list  # tombstones (dicts) of calls purged before the bundle was made
    missing: list  # selected calls no longer held (disclosures)
    objections: list
    audit_filter: object
    cover_note: str
    extra_files: dict  # name -> bytes (disclosure.json)


def _name_of(actor_ref):
    """A person's display name, as the audit trail last saw it (callrec stores refs only)."""
    if not actor_ref:
        return None
    name = db_session().scalar(
        sa.select(AuditEvent.actor_name).where(AuditEvent.actor_ref == actor_ref)
        .order_by(AuditEvent.seq.desc()).limit(1))
    return name or actor_ref


def _iso(value):
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _plan(export):
    session = db_session()
    base = {"id": export.id, "kind": export.kind, "practice_ref": export.practice_ref,
            "requested_by": {"ref": export.requested_by_ref, "name": _name_of(export.requested_by_ref)},
            "requested_at": _iso(export.created_at)}
    if export.kind == SUBJECT_ACCESS:
        return _plan_subject_access(session, export, base)
    if export.kind == DISCLOSURE:
        return _plan_disclosure(session, export, base)
    raise ExportError(f"unknown export kind {export.kind!r}")


def _role_of(actor_ref):
    """A person in role terms ("data protection lead"), from the roles the audit trail last recorded."""
    roles = db_session().scalar(
        sa.select(AuditEvent.roles).where(AuditEvent.actor_ref == actor_ref).order_by(AuditEvent.seq.desc()).limit(1))
    return role_term(roles or "")


def _without_staff(call):
    """The call as the data subject receives it: who handled it is a member of staff's name, not theirs."""
    call.staff_name = call.staff_extension = None
    return call


# objections.csv of a subject-access bundle: when and how the patient objected, and the withdrawal.
OBJECTION_COLUMNS = ("recorded_at", "recorded_by", "method", "call", "note", "withdrawn_at", "withdrawn_by",
                     "withdrawal_reason")


def _objection_row(objection):
    """One objection as the data subject receives it: staff by role only ("practice manager"), never named."""
    withdrawn = objection.withdrawn_at is not None
    return {"recorded_at": _iso(objection.recorded_at), "recorded_by": _role_of(objection.recorded_by_ref),
            "method": OBJECTION_METHODS.get(objection.method or "", "not recorded"),
            "call": objection.recording_id or "", "note": objection.note or "",
            "withdrawn_at": _iso(objection.withdrawn_at) if withdrawn else "",
            "withdrawn_by": _role_of(objection.withdrawn_by_ref) if withdrawn else "",
            "withdrawal_reason": (objection.withdrawal_reason or "") if withdrawn else ""}


def _plan_subject_access(session, export, base):
    practice, patient_ref = export.practice_ref, export.patient_ref
    summary = get_state().pm.hook.callrec_patient_summary(patient_ref=patient_ref) or {}
    base["requested_by"] = {"role": _role_of(export.requested_by_ref)}
    if export.subject_access_id:
        base["subject_access_request"] = _request_entry(session, export.subject_access_id)
    calls = [_without_staff(_call(r)) for r in session.scalars(
        sa.select(Recording).where(Recording.practice_ref == practice, Recording.patient_ref == patient_ref,
                                   Recording.status == RecordingStatus.ACTIVE)
        .order_by(Recording.started_at, Recording.id))]
    deleted = [{"recording_id": t.recording_id, "started_at": _iso(t.started_at), "purged_at": _iso(t.purged_at),
                "reason": t.reason} for t in session.scalars(
        sa.select(Tombstone).where(Tombstone.practice_ref == practice, Tombstone.patient_ref == patient_ref)
        .order_by(Tombstone.started_at))]
    objections = session.scalars(
        sa.select(PatientObjection).where(PatientObjection.practice_ref == practice,
                                          PatientObjection.patient_ref == patient_ref)
        .order_by(PatientObjection.recorded_at)).all()
    objections = [_objection_row(o) for o in objections]
    own_ids = sa.select(Recording.id).where(Recording.practice_ref == practice, Recording.patient_ref == patient_ref)
    purged_ids = sa.select(Tombstone.recording_id).where(Tombstone.practice_ref == practice,
                                                         Tombstone.patient_ref == patient_ref)
    audit_filter = sa.and_(AuditEvent.practice_ref == practice,
                           AuditEvent.action.in_(tuple(SUBJECT_ACCESS_EVENTS)),
                           sa.or_(AuditEvent.patient_ref == patient_ref, AuditEvent.recording_id.in_(own_ids),
                                  AuditEvent.recording_id.in_(purged_ids)))
    patient = {"ref": patient_ref, "name": summary.get("name")}
    base.update(patient=patient)
    note = _cover_subject_access(base, patient, calls, deleted, objections)
    return Plan(base, calls, deleted, [], objections, audit_filter, note, {})


def _plan_disclosure(session, export, base):
    disclosure = session.get(Disclosure, export.disclosure_id)
    if disclosure is None or disclosure.status != "approved":
        raise ExportError("the disclosure is missing or not approved")
    wanted = session.scalars(sa.select(DisclosureItem.recording_id)
                             .where(DisclosureItem.disclosure_id == disclosure.id)).all()
    rows = session.scalars(
        sa.select(Recording).where(Recording.practice_ref == disclosure.practice_ref, Recording.id.in_(wanted),
                                   Recording.status == RecordingStatus.ACTIVE)
        .order_by(Recording.started_at, Recording.id)).all()
    calls = [_call(r) for r in rows]
    missing = sorted(set(wanted) - {c.id for c in calls})
    entry = {"id": disclosure.id, "recipient": disclosure.recipient, "recipient_kind": disclosure.recipient_kind,
             "legal_basis": disclosure.legal_basis, "reference": disclosure.reference,
             "requested_by": {"ref": disclosure.requested_by_ref, "name": _name_of(disclosure.requested_by_ref)},
             "requested_at": _iso(disclosure.requested_at),
             "approved_by": {"ref": disclosure.approved_by_ref, "name": _name_of(disclosure.approved_by_ref)},
             "approved_at": _iso(disclosure.approved_at), "recordings": sorted(wanted),
             "not_included": missing}
    base.update(disclosure=entry)
    # Names stay (the chain of custody); assessments never leave the practice, not even their existence.
    audit_filter = sa.and_(AuditEvent.practice_ref == disclosure.practice_ref,
                           sa.not_(sa.func.coalesce(assessment_event_condition(), False)),
                           sa.or_(AuditEvent.recording_id.in_(wanted),
                                  sa.and_(AuditEvent.object_type == "disclosure",
                                          AuditEvent.object_id == disclosure.id)))
    note = _cover_disclosure(base, entry, calls, missing)
    extra = {"disclosure.json": (json.dumps(entry, indent=2, ensure_ascii=False) + "\n").encode()}
    return Plan(base, calls, [], missing, [], audit_filter, note, extra)


def _requester(base):
    person = base["requested_by"]
    return person.get("name") or f"the {person['role']}"


def _request_entry(session, entry_id):
    """The register entry a subject-access bundle answers (dates and the requester's reference)."""
    entry = session.get(SubjectAccessRequest, entry_id)
    if entry is None:
        raise ExportError("the subject access request of this bundle is missing from the register")
    return {"id": entry.id, "received_on": entry.received_on.isoformat(), "due_on": entry.due_on.isoformat(),
            "requester_reference": entry.requester_reference or None}


def _cover_common_tail(base):
    config = current_app.config
    return (
        "\nHow to check this bundle\n"
        "  Unpack it and run:  sha256sum -c SHA256SUMS\n"
        "  Every file must report OK. manifest.json lists the same files with their sizes and digests.\n"
        "  audit-extract.csv rows carry the audit trail's sequence number and hash chain (prev_hash, hash),\n"
        "  so the practice can show they match its tamper-evident audit trail.\n"
        "\nThe audio files are the recordings exactly as stored; nothing was edited or transcribed.\n"
        f"Privacy notice: {config['CALLREC_PRIVACY_NOTICE_REF']}. "
        f"Information governance procedures: {config['CALLREC_IG_PROCEDURES_REF']}.\n"
        f"Bundle {base['id']}, prepared {base['generated_at']} (UTC) for {_requester(base)}.\n"
    )


def _practice_line(practice_ref):
    """["Practice: <name>"] when the host names the practice, else nothing: its ref is an internal id,
    meaningless to the patient or recipient who reads the cover note."""
    summary = get_state().pm.hook.callrec_practice_summary(practice_ref=practice_ref)
    if isinstance(summary, dict) and str(summary.get("ref")) == str(practice_ref) and summary.get("name"):
        return [f"Practice: {summary['name']}"]
    return []


def _cover_subject_access(base, patient, calls, deleted, objections):
    base["generated_at"] = _iso(utcnow())
    months = settings_for(base["practice_ref"]).retention_months
    who = patient.get("name") or "the patient this request was registered for"  # by name, never the id
    lines = [
        "Subject access request: telephone call recordings",
        "=" * 49,
        "",
        *_practice_line(base["practice_ref"]),
        f"Patient: {who}",
        "",
        "This bundle holds every recording of a telephone call between the practice and you that the",
        "practice still holds, the details of each call, any objection to recording you made, and the",
        "record of who (by role) accessed these calls, when, and for what purpose.",
        "",
        f"  calls/             {len(calls)} recordings",
        "  calls.csv          date, direction, duration and numbers of each call",
        f"  objections.csv     {len(objections)} objections to recording",
        "  audit-extract.csv  every access to these calls, allowed or refused: by whom (role), when, why",
        "  manifest.json      the list of files, calls and deleted calls, with checksums",
        "",
        f"Calls are kept for up to {months} months and then deleted, unless a complaint or an investigation",
        "requires them to be kept longer.",
        f"{len(deleted)} earlier calls were deleted before this request; manifest.json lists their dates",
        "(their audio no longer exists).",
    ]
    return "\n".join(lines) + "\n" + _cover_common_tail(base)


def _cover_disclosure(base, entry, calls, missing):
    base["generated_at"] = _iso(utcnow())
    lines = [
        "Disclosure of telephone call recordings",
        "=" * 39,
        "",
        *_practice_line(base["practice_ref"]),
        f"Recipient: {entry['recipient']} ({RECIPIENT_KINDS.get(entry['recipient_kind'], entry['recipient_kind'])})",
        f"Recipient's reference: {entry['reference']}",
        f"Legal basis: {entry['legal_basis']}",
        f"Requested by {entry['requested_by']['name']} on {entry['requested_at']};",
        f"approved by {entry['approved_by']['name']} on {entry['approved_at']}.",
        f"Disclosure register entry: {entry['id']} (also in disclosure.json).",
        "",
        f"  calls/             {len(calls)} recordings",
        "  calls.csv          date, direction, duration, numbers and staff member of each call",
        "  disclosure.json    the disclosure register entry",
        "  audit-extract.csv  every access decision about these calls, and this disclosure's approvals",
        "  manifest.json      the list of files and calls, with checksums",
    ]
    if missing:
        lines += ["", f"{len(missing)} selected calls were deleted under the retention policy before the",
                  "bundle was made and are not included: " + ", ".join(missing)]
    lines += ["", "These recordings are disclosed for the purpose and on the legal basis stated above only."]
    return "\n".join(lines) + "\n" + _cover_common_tail(base)


# -- the streamed ZIP -------------------------------------------------------------------------------------


class _Sink:
    """The ZIP writer's output: pieces are handed on as they come (no seek, no growing buffer)."""

    def __init__(self):
        self.pieces = []

    def write(self, data):
        self.pieces.append(data)
        return len(data)

    def flush(self):
        pass

    def drain(self):
        pieces, self.pieces = self.pieces, []
        return pieces


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of bytes pieces (so encrypt_stream can pull the ZIP)."""

    def __init__(self, pieces):
        self._pieces = iter(pieces)
        self._view = memoryview(b"")

    def readable(self):
        return True

    def readinto(self, buffer):
        out = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(out):
            if not self._view:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._view = memoryview(piece).cast("B")
                continue
            take = min(len(out) - filled, len(self._view))
            out[filled:filled + take] = self._view[:take]
            self._view = self._view[take:]
            filled += take
        return filled


def _cell(value):
    return safe_cell("" if value is None else (_iso(value) if isinstance(value, dt.datetime) else str(value)))


def _csv_bytes(header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return buffer.getvalue().encode("utf-8")


def _zip_info(name, when):
    when = (when or utcnow()).astimezone(dt.timezone.utc)
    info = zipfile.ZipInfo(name, date_time=(max(1980, when.year), when.month, when.day, when.hour, when.minute,
                                            when.second))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


class BundleWriter:
    """Builds the ZIP as a stream of pieces, each handed to ``digests`` (digests.BackgroundDigests) as it
    is yielded: the whole ZIP's SHA-256 and each streamed file's are made there, on a second thread.
    ``files`` lists (name, size, sha256) for the manifest, once ``resolve_digests()`` has filled them."""

    def __init__(self, generated_at, digests):
        self.sink = _Sink()
        self.zip = zipfile.ZipFile(self.sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.generated_at = generated_at
        self.digests = digests
        self.files = []  # (name, size, sha256); a streamed file's sha256 is None until resolve_digests()

    def _drained(self, part=None):
        pieces = self.sink.drain()
        for piece in pieces:
            self.digests.feed(piece, part)
        return pieces

    def add_bytes(self, name, data, when=None):
        """A small file (cover note, CSVs, manifest): its own digest made here."""
        digest = hashlib.sha256(data).hexdigest()
        with self.zip.open(_zip_info(name, when or self.generated_at), "w") as entry:
            entry.write(data)
        self.files.append((name, len(data), digest))
        return self._drained()

    def add_stream(self, name, chunks, size_hint, when=None, on_chunk=None):
        """Yield ZIP pieces while copying chunks (an iterable of bytes) into entry ``name``."""
        info = _zip_info(name, when or self.generated_at)
        info.file_size = size_hint  # lets zipfile choose ZIP64 up front for large entries
        size = 0
        with self.zip.open(info, "w", force_zip64=size_hint > zipfile.ZIP64_LIMIT // 2) as entry:
            yield from self._drained()  # the local header
            for chunk in chunks:
                # ZIP_STORED: what the entry writes to the sink for a chunk is the chunk itself, so the
                # pieces drained now are exactly the file's bytes.
                entry.write(chunk)
                size += len(chunk)
                yield from self._drained(part=name)
                if on_chunk is not None:
                    on_chunk(len(chunk))
        yield from self._drained()  # the data descriptor
        self.digests.end_part(name)
        self.files.append((name, size, None))

    def resolve_digests(self):
        """Fill in the streamed files' digests (waiting for the hashing thread to reach them)."""
        ended = self.digests.part_digests()
        self.files = [(name, size, digest or ended[name]) for name, size, digest in self.files]
        return {name: (name, size, digest) for name, size, digest in self.files}

    def close(self):
        self.zip.close()
        return self._drained()


# A data subject is told who accessed their calls in role terms, what they did, for which purpose and
# when: never staff names, justifications, reasons, IP addresses, assessments or hold details. Only
# access events are listed; the seq and hash let the practice show each row is in its audit trail.
SUBJECT_ACCESS_AUDIT_COLUMNS = ("seq", "occurred_at", "accessed_by", "access", "recording_id", "purpose",
                                "outcome", "hash")
SUBJECT_ACCESS_EVENTS = {
    "play": "listened to the call",
    "download": "downloaded the call",
    "view_metadata": "looked at the call's details",
}


def _subject_access_audit_row(event):
    return [event.seq, event.occurred_at, role_term(event.roles), SUBJECT_ACCESS_EVENTS[event.action],
            event.recording_id, event.purpose, event.outcome, event.hash]


def _full_audit_row(event):
    return [getattr(event, name) for name in AUDIT_COLUMNS]


def _audit_extract(plan):
    """(header, row function) of the plan's audit extract."""
    if plan.export["kind"] == SUBJECT_ACCESS:
        return SUBJECT_ACCESS_AUDIT_COLUMNS, _subject_access_audit_row
    return AUDIT_COLUMNS, _full_audit_row


def _audit_rows(audit_filter, row_of):
    """The audit extract, page by page (keyset on seq: no cursor stays open across commits)."""
    session = db_session()
    last = 0
    while True:
        events = session.scalars(
            sa.select(AuditEvent).where(audit_filter, AuditEvent.seq > last).order_by(AuditEvent.seq).limit(1000)
        ).all()
        if not events:
            return
        last = events[-1].seq
        for event in events:
            yield row_of(event)
        session.expunge_all()


def _audit_csv_chunks(plan):
    header, row_of = _audit_extract(plan)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in _audit_rows(plan.audit_filter, row_of):
        writer.writerow([_cell(v) for v in row])
        if buffer.tell() > 65536:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def bundle_pieces(plan, digests, progress=None):
    """The whole ZIP as an iterator of bytes pieces, each also fed to ``digests``
    (digests.BackgroundDigests, which the caller closes). ``progress(calls_done)`` after each call."""
    generated = dt.datetime.strptime(plan.export["generated_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    writer = BundleWriter(generated, digests)
    yield from writer.add_bytes("cover-note.txt", plan.cover_note.encode("utf-8"))
    for number, call in enumerate(plan.calls, start=1):
        reader = open_plaintext(call)
        try:
            length = reader.length  # verifies the final segment before trusting the size
            yield from writer.add_stream(call.path, reader, length, when=call.started_at)
        finally:
            reader.close()
        kill_point("export_mid")
        if progress is not None:
            progress(number)
    listed = writer.resolve_digests()
    call_files = {call.id: listed[call.path] for call in plan.calls}
    # Numbers as a spreadsheet keeps them (national format at home, no apostrophe); manifest.json has E.164.
    region = current_app.config["CALLREC_PHONE_REGION"]
    call_rows = [[call.path, call.id, call.started_at, call.direction, call.duration_seconds,
                  number_for_spreadsheet(call.from_number, region), number_for_spreadsheet(call.to_number, region),
                  call.staff_name, call.staff_extension, call.disposition, call.audio_format,
                  call_files[call.id][1], call.retain_until, call_files[call.id][2]] for call in plan.calls]
    yield from writer.add_bytes("calls.csv", _csv_bytes(CALL_COLUMNS, call_rows))
    if plan.export["kind"] == SUBJECT_ACCESS:
        yield from writer.add_bytes("objections.csv", _csv_bytes(
            OBJECTION_COLUMNS, [[o[k] for k in OBJECTION_COLUMNS] for o in plan.objections]))
    for name, data in plan.extra_files.items():
        yield from writer.add_bytes(name, data)
    # What was silenced in each call (card details), when and why: by role, never a member of staff's name.
    redaction_notes = redaction.notes_for_bundle([call.id for call in plan.calls])
    yield from writer.add_bytes("redactions.csv", _csv_bytes(
        ("file", "recording_id", "silenced_seconds", "reason", "when", "by"),
        [[call.path, call.id, "; ".join(f"{start}-{end}" for start, end in note["silenced_seconds"]), note["reason"],
          note["when"], note["by"]] for call in plan.calls for note in redaction_notes.get(call.id, [])]))
    yield from writer.add_stream("audit-extract.csv", _audit_csv_chunks(plan), 0)
    writer.resolve_digests()
    manifest = dict(plan.export)
    manifest.update(
        format=BUNDLE_FORMAT,
        calls=[{"file": call.path, "recording_id": call.id, "started_at": _iso(call.started_at),
                "direction": call.direction, "duration_seconds": call.duration_seconds,
                "from_number": call.from_number, "to_number": call.to_number, "staff_name": call.staff_name,
                "audio_format": call.audio_format, "size": call_files[call.id][1], "sha256": call_files[call.id][2],
                "retain_until": _iso(call.retain_until)} for call in plan.calls],
        deleted_calls=plan.deleted,
        redactions=redaction_notes,
        files=[{"name": name, "size": size, "sha256": digest} for name, size, digest in writer.files],
    )
    yield from writer.add_bytes("manifest.json", (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    sums = "".join(f"{digest}  {name}\n" for name, _, digest in writer.files)
    yield from writer.add_bytes("SHA256SUMS", sums.encode("utf-8"))
    kill_point("export_zip_closing")
    yield from writer.close()


# -- building ---------------------------------------------------------------------------------------------


def build_export(export_id, job_id=None):
    """Build, encrypt and publish one bundle. Idempotent: a ready bundle is left alone; any other
    state starts a fresh attempt. Returns a short summary."""
    session = db_session()
    export = session.get(Export, export_id)
    if export is None:
        return "no such export"
    if export.status in (READY, EXPIRED):
        return f"export already {export.status}"
    backend, ring = storage_backend(), keyring()
    previous_key = export.storage_key
    key = backend.new_key(f"exp-{export.id}-{secrets.token_hex(4)}")
    data_key = generate_data_key()
    export.key_id, export.wrapped_key = ring.wrap(data_key, cre_id(export.id))
    export.storage_key, export.status, export.error = key, BUILDING, None
    export.progress_done, export.size, export.sha256, export.ready_at, export.expires_at = 0, None, None, None, None
    session.commit()
    if previous_key and previous_key != key:
        backend.delete(previous_key)  # an earlier, interrupted attempt's blob
        _remove_temp_files(backend, previous_key)  # and what its killed writer left half-written
    kill_point("export_started")
    export = session.get(Export, export_id)
    plan = _plan(export)
    total = len(plan.calls)
    session.execute(sa.update(Export).where(Export.id == export_id).values(progress_total=total))
    if job_id:
        heartbeat(job_id, done=0, total=total)
    session.commit()

    last_commit = [time.monotonic()]

    def progress(done):
        # At most one small commit a second: the page shows calls added; the job row its heartbeat.
        if done < total and time.monotonic() - last_commit[0] < PROGRESS_SECONDS:
            return
        session.execute(sa.update(Export).where(Export.id == export_id, Export.storage_key == key)
                        .values(progress_done=done))
        if job_id:
            heartbeat(job_id, done=done)
        session.commit()
        last_commit[0] = time.monotonic()

    # Each file's digest (SHA256SUMS) and the whole ZIP's are made from the same pieces on a second
    # thread (digests.py): this thread decrypts, checksums, encrypts and writes, and hashes nothing.
    digests = BackgroundDigests()
    try:
        with backend.open_write(key) as blob:
            result = encrypt_stream(ChunkReader(bundle_pieces(plan, digests, progress)), blob, data_key,
                                    cre_id(export_id), hash_plaintext=False)
            bundle_sha256 = digests.hexdigest()
            kill_point("export_before_publish")
    finally:
        digests.close()
    kill_point("export_after_blob")
    now = utcnow()
    published = session.execute(
        sa.update(Export)
        .where(Export.id == export_id, Export.storage_key == key, Export.status == BUILDING)
        .values(status=READY, size=result.plaintext_size, sha256=bundle_sha256, ready_at=now,
                expires_at=now + link_lifetime(), progress_done=total)
    ).rowcount
    if not published:
        session.rollback()
        backend.delete(key)
        log.warning("export %s: another attempt replaced this one; its blob was discarded", export_id)
        return "superseded by another attempt"
    export = session.get(Export, export_id)
    audit.record("export_ready", "done", actor=SYSTEM, object_type="export", object_id=export_id,
                 practice_ref=export.practice_ref, patient_ref=export.patient_ref,
                 reason=f"{KIND_LABELS.get(export.kind, export.kind)}: {total} calls, {result.plaintext_size} bytes, "
                        f"sha256 {bundle_sha256}")
    session.commit()
    try:
        get_state().pm.hook.callrec_export_ready(export_id=export_id, practice_ref=export.practice_ref)
    except Exception:
        log.exception("callrec_export_ready hook failed for %s", export_id)
    return f"export {export_id} ready: {total} calls, {result.plaintext_size} bytes"


# -- downloading ------------------------------------------------------------------------------------------


def download_refusal(actor, export, now=None):
    """None if the actor may download the bundle now, else (HTTP status, reason)."""
    now = now or utcnow()
    if export.requested_by_ref != actor.ref:
        return 403, "Only the person who requested this bundle may download it."
    if export.status == EXPIRED or (export.status == READY and export.expires_at and export.expires_at <= now):
        return 410, "The download link has expired. Request a new bundle if you still need it."
    if export.status != READY:
        return 409, "The bundle is not ready yet."
    return None


def mark_delivered(actor, export):
    """The requester downloaded the bundle: a subject-access request is answered; a disclosure is
    delivered, and its hold on the calls ends CALLREC_DISCLOSURE_HOLD_DAYS later. Caller commits."""
    if export.kind == SUBJECT_ACCESS:
        subject_access.mark_responded(actor, export)
        return
    disclosure = db_session().get(Disclosure, export.disclosure_id) if export.disclosure_id else None
    if disclosure is None or disclosure.delivered_at is not None:
        return
    disclosure.delivered_at = utcnow()
    days = current_app.config["CALLREC_DISCLOSURE_HOLD_DAYS"]
    audit.record("disclosure_delivered", "done", actor=actor, object_type="disclosure", object_id=disclosure.id,
                 reason=f"bundle {export.id} downloaded for delivery; its calls stay held for {days} days")


def open_bundle(export):
    """A DecryptingReader over the bundle's ZIP bytes (the caller closes it)."""
    backend = storage_backend()
    data_key = keyring().unwrap(export.wrapped_key, export.key_id, cre_id(export.id))
    blob = backend.open_read(export.storage_key)
    try:
        return DecryptingReader(blob, data_key, cre_id(export.id), stored_size(backend, blob, export.storage_key))
    except BaseException:
        blob.close()
        raise


def download_name(export):
    when = (export.ready_at or export.created_at).strftime("%Y%m%d")
    subject = export.patient_ref if export.kind == SUBJECT_ACCESS else (export.disclosure_id or "")
    subject = re.sub(r"[^A-Za-z0-9_-]", "", subject or "")[:40]
    return f"callrec-{export.kind.replace('_', '-')}-{subject}-{when}.zip"


def job_for(export_id):
    """The newest job row that builds this export."""
    return db_session().scalar(sa.select(Job).where(Job.kind == EXPORT, Job.object_id == export_id)
                               .order_by(Job.created_at.desc()).limit(1))
