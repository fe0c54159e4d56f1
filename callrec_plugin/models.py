"""callrec's tables: all named ``callrec_*``, on callrec's own metadata, used through the host's session.

Host rows (patients, complaints, practices, users) are referenced by string refs, never by foreign
key, so callrec can be migrated on its own and audit rows outlive everything they describe.
"""
import datetime as dt
import secrets
import string

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


# Letters and digits only: an id that starts with "-" reads as an option on a command line and as a
# formula in a spreadsheet, where escaping it would change the id people copy back.
ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 22  # 62**22 > 2**130


def new_id():
    """A random, unguessable id (sequential ids let users walk other people's recordings)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


class UTCDateTime(sa.types.TypeDecorator):
    """Stores naive UTC, hands back aware UTC; refuses naive datetimes so no local time slips in."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("callrec stores aware datetimes only (got a naive one)")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = metadata


class RecordingStatus:
    ACTIVE = "active"
    PURGING = "purging"
    PURGED = "purged"


class Recording(Base):
    __tablename__ = "callrec_recordings"
    __table_args__ = (
        sa.UniqueConstraint("practice_ref", "source", "source_ref", name="uq_callrec_recordings_source"),
        # The patient panel reads a page in this order without sorting.
        sa.Index("ix_callrec_recordings_patient", "practice_ref", "patient_ref", "started_at", "id"),
        sa.Index("ix_callrec_recordings_retention", "status", "retain_until"),
        # The call log: newest first within a practice, and each of its selective filters.
        sa.Index("ix_callrec_recordings_log", "practice_ref", "started_at", "id"),
        sa.Index("ix_callrec_recordings_log_staff", "practice_ref", "staff_user_ref", "started_at"),
        sa.Index("ix_callrec_recordings_log_number", "practice_ref", "external_number_rev",
                 postgresql_ops={"external_number_rev": "text_pattern_ops"}),
        sa.Index("ix_callrec_recordings_log_unmatched", "practice_ref", "started_at",
                 postgresql_where=sa.text("patient_ref IS NULL"), sqlite_where=sa.text("patient_ref IS NULL")),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    patient_ref: Mapped[str | None] = mapped_column(sa.String(64))
    direction: Mapped[str] = mapped_column(sa.String(16))  # inbound, outbound, internal
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float] = mapped_column(sa.Float, default=0.0)
    from_number: Mapped[str | None] = mapped_column(sa.String(32))  # E.164 or "withheld"
    to_number: Mapped[str | None] = mapped_column(sa.String(32))
    external_number: Mapped[str | None] = mapped_column(sa.String(32), index=True)  # the caller/callee outside
    # The outside number's digits reversed, so "calls from a number ending 0123" is a prefix search
    # an index serves; kept in step with external_number by a mapper event (call_log.py).
    external_number_rev: Mapped[str | None] = mapped_column(sa.String(32))
    staff_extension: Mapped[str | None] = mapped_column(sa.String(32))
    staff_user_ref: Mapped[str | None] = mapped_column(sa.String(64))
    staff_name: Mapped[str | None] = mapped_column(sa.String(128))
    # From the phone system's CDR: the caller's name as presented, the CDR's userfield and
    # accountcode, and linkedid, shared by every leg of one call (a transfer's recordings).
    caller_name: Mapped[str | None] = mapped_column(sa.String(128))
    cdr_userfield: Mapped[str | None] = mapped_column(sa.String(255))
    accountcode: Mapped[str | None] = mapped_column(sa.String(80))
    linkedid: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    disposition: Mapped[str | None] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default=RecordingStatus.ACTIVE)
    short_call: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    recorded_despite_objection: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    approved_for_training: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    training_approved_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    retain_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    storage_key: Mapped[str | None] = mapped_column(sa.String(128))
    wrapped_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    key_id: Mapped[str | None] = mapped_column(sa.String(64))
    audio_format: Mapped[str | None] = mapped_column(sa.String(16))  # wav, mp3, ogg, gsm
    mime_type: Mapped[str | None] = mapped_column(sa.String(64))
    plaintext_size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    stored_size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    source: Mapped[str] = mapped_column(sa.String(16))  # freepbx, api, python
    source_ref: Mapped[str] = mapped_column(sa.String(160))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Staff said a card payment was taken on this call: owner and manager see it listed until redacted.
    card_payment_flagged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    card_payment_flagged_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    card_payment_flagged_by_name: Mapped[str | None] = mapped_column(sa.String(128))

    links: Mapped[list["ComplaintLink"]] = relationship(back_populates="recording", lazy="raise")
    holds: Mapped[list["Hold"]] = relationship(back_populates="recording", lazy="raise")


# What a purge does to each column of callrec_recordings: "kept" (facts with nothing personal, needed to
# count, explain and finish the purge) or "cleared" (set to NULL, or the value given here, in the same
# UPDATE that destroys the data key). A column missing here stops every purge with an error naming it,
# and tests/test_purged_row.py fails: whoever adds a column to callrec_recordings classifies it here.
PURGED_RECORDING_COLUMNS = {
    "id": "kept", "practice_ref": "kept", "direction": "kept", "started_at": "kept",
    "duration_seconds": "kept", "disposition": "kept", "status": "kept", "short_call": "kept",
    "recorded_despite_objection": "kept", "approved_for_training": "kept", "retain_until": "kept",
    "storage_key": "kept",  # the reconciler deletes a blob left behind by a crash through it
    "audio_format": "kept", "mime_type": "kept", "plaintext_size": "kept", "stored_size": "kept",
    "source": "kept", "created_at": "kept", "purged_at": "kept",
    "patient_ref": "cleared", "from_number": "cleared", "to_number": "cleared", "external_number": "cleared",
    "external_number_rev": "cleared", "staff_extension": "cleared", "staff_user_ref": "cleared",
    "staff_name": "cleared", "caller_name": "cleared", "cdr_userfield": "cleared", "accountcode": "cleared",
    "linkedid": "cleared", "training_approved_by_ref": "cleared", "wrapped_key": "cleared", "key_id": "cleared",
    "card_payment_flagged_at": "cleared", "card_payment_flagged_by_ref": "cleared",
    "card_payment_flagged_by_name": "cleared",
    # A phone system's file name holds both numbers: replaced by "purged:<id>" (see purge.scrubbed_values).
    "source_ref": "cleared",
}


class ComplaintLink(Base):
    __tablename__ = "callrec_complaint_links"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_recordings.id"), index=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    complaint_ref: Mapped[str] = mapped_column(sa.String(64), index=True)
    note: Mapped[str] = mapped_column(sa.Text, default="")
    linked_by_ref: Mapped[str] = mapped_column(sa.String(64))
    linked_by_name: Mapped[str] = mapped_column(sa.String(128), default="")
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    unlinked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    unlinked_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    unlink_reason: Mapped[str | None] = mapped_column(sa.Text)

    recording: Mapped[Recording] = relationship(back_populates="links", lazy="raise")


class HoldKind:
    COMPLAINT = "complaint"
    INVESTIGATION = "investigation"
    REGULATOR = "regulator"
    LAW_ENFORCEMENT = "law_enforcement"
    # Placed on a disclosure's calls when it is requested (group_id = the disclosure's id); released
    # when it is refused or a set period after delivery, never by hand.
    DISCLOSURE = "disclosure"
    TWO_APPROVER = frozenset({REGULATOR, LAW_ENFORCEMENT})


class Hold(Base):
    __tablename__ = "callrec_holds"
    __table_args__ = (sa.Index("ix_callrec_holds_active", "recording_id", "released_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_recordings.id"))
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    group_id: Mapped[str | None] = mapped_column(sa.String(32))  # one request that held several calls
    kind: Mapped[str] = mapped_column(sa.String(24))
    complaint_ref: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    external_reference: Mapped[str | None] = mapped_column(sa.String(128))
    placed_by_ref: Mapped[str] = mapped_column(sa.String(64))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    release_requested_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    release_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    released_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The people's names as the host gave them when they acted: a departed member of staff still reads by name.
    placed_by_name: Mapped[str | None] = mapped_column(sa.String(128))
    release_requested_by_name: Mapped[str | None] = mapped_column(sa.String(128))
    released_by_name: Mapped[str | None] = mapped_column(sa.String(128))

    recording: Mapped[Recording] = relationship(back_populates="holds", lazy="raise")


class AccessGrant(Base):
    """A short-lived permission to fetch one recording's audio for one purpose."""

    __tablename__ = "callrec_access_grants"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    recording_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_recordings.id"), index=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    user_ref: Mapped[str] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(24))  # play or download
    purpose: Mapped[str] = mapped_column(sa.String(24))
    complaint_ref: Mapped[str | None] = mapped_column(sa.String(64))
    justification: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    audit_seq: Mapped[int | None] = mapped_column(sa.BigInteger)


class AuditEvent(Base):
    """One append-only, hash-chained record of a decision or change."""

    __tablename__ = "callrec_audit_events"

    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor_ref: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    actor_name: Mapped[str | None] = mapped_column(sa.String(128))
    roles: Mapped[str] = mapped_column(sa.String(256), default="")
    practice_ref: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    action: Mapped[str] = mapped_column(sa.String(48))
    object_type: Mapped[str | None] = mapped_column(sa.String(32))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    recording_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    patient_ref: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    purpose: Mapped[str | None] = mapped_column(sa.String(24))
    justification: Mapped[str | None] = mapped_column(sa.Text)
    outcome: Mapped[str] = mapped_column(sa.String(16))  # allowed, denied, done, failed
    reason: Mapped[str | None] = mapped_column(sa.Text)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class PatientObjection(Base):
    """A patient said they did not wish to be recorded; staff ended the call politely."""

    __tablename__ = "callrec_patient_objections"
    __table_args__ = (sa.Index("ix_callrec_patient_objections_patient", "practice_ref", "patient_ref"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    patient_ref: Mapped[str] = mapped_column(sa.String(64))
    recording_id: Mapped[str | None] = mapped_column(sa.String(32))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    recorded_by_ref: Mapped[str] = mapped_column(sa.String(64))
    recorded_by_name: Mapped[str] = mapped_column(sa.String(128), default="")
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # How the patient made it known: phone, in_person, letter or email (None for older rows).
    method: Mapped[str | None] = mapped_column(sa.String(16))
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    withdrawn_by_name: Mapped[str | None] = mapped_column(sa.String(128))
    withdrawal_reason: Mapped[str | None] = mapped_column(sa.Text)


class ImportRun(Base):
    """One `flask callrec import` of a phone system's folder: what it found and what it left there."""

    __tablename__ = "callrec_import_runs"
    __table_args__ = (sa.Index("ix_callrec_import_runs_practice", "practice_ref", "finished_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    root: Mapped[str] = mapped_column(sa.Text)  # the folder imported, as given (escaped for display)
    finished_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    imported: Mapped[int] = mapped_column(sa.Integer, default=0)
    duplicates: Mapped[int] = mapped_column(sa.Integer, default=0)
    skipped: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Plaintext recordings still on the phone system after the run, and those it deleted (verified).
    originals_left: Mapped[int] = mapped_column(sa.Integer, default=0)
    originals_removed: Mapped[int] = mapped_column(sa.Integer, default=0)
    needs_attention: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class ApiNonce(Base):
    """A nonce a signed ingest request used; seen again within the skew window, it is a replay."""

    __tablename__ = "callrec_api_nonces"
    __table_args__ = (sa.UniqueConstraint("practice_ref", "nonce", name="uq_callrec_api_nonces_nonce"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    nonce: Mapped[str] = mapped_column(sa.String(64))
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class Tombstone(Base):
    """What remains of a purged recording: enough to count and explain, nothing to listen to."""

    __tablename__ = "callrec_tombstones"

    recording_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64), index=True)
    patient_ref: Mapped[str | None] = mapped_column(sa.String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    retain_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    purged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    reason: Mapped[str] = mapped_column(sa.String(64))  # "retention expired", "lawful erasure", "grace after a hold"
    # By what: "purge job <id>" / "purge run <id>", and for a lawful erasure the two people who approved it.
    purged_by: Mapped[str | None] = mapped_column(sa.String(128))
    approved_by_refs: Mapped[str | None] = mapped_column(sa.String(160))
    erasure_request_id: Mapped[int | None] = mapped_column(sa.Integer)
    # A keyed digest of (practice, source, source_ref): a purged call offered again is not stored again
    # (purged_sources.py). None for tombstones written before revision 0013.
    source_digest: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # The tombstone is the practice's accountability record for tombstone_years; the purge deletes it then.
    delete_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)


class RetentionExtension(Base):
    """One decision to keep a call longer than its retention: who, why (a fixed reason), from and to when."""

    __tablename__ = "callrec_retention_extensions"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_recordings.id"), index=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64), index=True)
    reason_code: Mapped[str] = mapped_column(sa.String(32))  # complaint_expected, legal_advice, patient_request, other
    reason_text: Mapped[str] = mapped_column(sa.Text, default="")
    previous_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    new_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    extended_by_ref: Mapped[str] = mapped_column(sa.String(64))
    extended_by_name: Mapped[str] = mapped_column(sa.String(128), default="")
    extended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PurgeRun(Base):
    """One run of the purge (scheduled, by hand or in the demo's thread): the retention page reads these."""

    __tablename__ = "callrec_purge_runs"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(16), default="running")  # running, finished, failed
    trigger: Mapped[str] = mapped_column(sa.String(64), default="")  # scheduler, cli, job <id>
    purged: Mapped[int] = mapped_column(sa.Integer, default=0)
    tombstones_deleted: Mapped[int] = mapped_column(sa.Integer, default=0)
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    error: Mapped[str | None] = mapped_column(sa.Text)


class Assessment(Base):
    """A spot check of one call's handling: seen only by owner/manager and the member of staff assessed."""

    __tablename__ = "callrec_assessments"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_recordings.id"), index=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    staff_user_ref: Mapped[str] = mapped_column(sa.String(64), index=True)
    assessor_ref: Mapped[str] = mapped_column(sa.String(64))
    assessor_name: Mapped[str] = mapped_column(sa.String(128), default="")
    outcome: Mapped[str] = mapped_column(sa.String(24))  # meets, partly, does_not_meet
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    response: Mapped[str | None] = mapped_column(sa.Text)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Issue 13: the member of staff acknowledges the result, and may agree or disagree with it.
    response_stance: Mapped[str | None] = mapped_column(sa.String(16))  # agree, disagree
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AssessmentScore(Base):
    """One criterion of an assessment's rubric, worded as it was when the call was assessed: editing
    the practice's rubric later never rewrites a past assessment."""

    __tablename__ = "callrec_assessment_scores"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    assessment_id: Mapped[int] = mapped_column(sa.ForeignKey("callrec_assessments.id"), index=True)
    position: Mapped[int] = mapped_column(sa.Integer)
    criterion_key: Mapped[str] = mapped_column(sa.String(48))
    criterion_label: Mapped[str] = mapped_column(sa.String(200))
    score: Mapped[str] = mapped_column(sa.String(16))  # meets, partly, does_not_meet, not_applicable
    note: Mapped[str] = mapped_column(sa.Text, default="")


class RubricCriterion(Base):
    """A criterion of a practice's assessment rubric; retired, never deleted (assessments name it)."""

    __tablename__ = "callrec_rubric_criteria"
    __table_args__ = (sa.UniqueConstraint("practice_ref", "key", name="uq_callrec_rubric_criteria_key"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    key: Mapped[str] = mapped_column(sa.String(48))
    label: Mapped[str] = mapped_column(sa.String(200))
    position: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SamplingPlan(Base):
    """A practice's spot-check plan: how many calls per member of staff per month, which calls."""

    __tablename__ = "callrec_sampling_plans"

    practice_ref: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    calls_per_staff: Mapped[int] = mapped_column(sa.Integer, default=3)
    inbound_only: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    min_duration_seconds: Mapped[float] = mapped_column(sa.Float, default=0.0)
    updated_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SpotCheckDraw(Base):
    """One month's random sample for a practice, with the seed and plan it was drawn with."""

    __tablename__ = "callrec_spot_check_draws"
    __table_args__ = (sa.UniqueConstraint("practice_ref", "month", name="uq_callrec_spot_check_draws_month"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    month: Mapped[str] = mapped_column(sa.String(7))  # YYYY-MM of the calls sampled
    seed: Mapped[str] = mapped_column(sa.String(64))
    calls_per_staff: Mapped[int] = mapped_column(sa.Integer)
    inbound_only: Mapped[bool] = mapped_column(sa.Boolean)
    min_duration_seconds: Mapped[float] = mapped_column(sa.Float)
    drawn_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    drawn_by_ref: Mapped[str] = mapped_column(sa.String(64))


class SpotCheck(Base):
    """A call drawn for a spot check; done once an assessment of it is recorded."""

    __tablename__ = "callrec_spot_checks"
    __table_args__ = (sa.UniqueConstraint("draw_id", "recording_id", name="uq_callrec_spot_checks_call"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    draw_id: Mapped[int] = mapped_column(sa.ForeignKey("callrec_spot_check_draws.id"), index=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    recording_id: Mapped[str] = mapped_column(sa.String(32), index=True)  # no FK: outlives a purge
    staff_user_ref: Mapped[str] = mapped_column(sa.String(64))
    staff_name: Mapped[str] = mapped_column(sa.String(128), default="")
    population: Mapped[int] = mapped_column(sa.Integer)  # the member of staff's eligible calls that month
    assessment_id: Mapped[int | None] = mapped_column(sa.Integer)


class TrainingConsent(Base):
    """A call proposed for the training library and the answer of the member of staff on it.

    ``Recording.approved_for_training`` is the library's effective membership (the playback re-check
    reads it): true only while this says consented and nothing (objection, law-enforcement hold) keeps
    the call out."""

    __tablename__ = "callrec_training_consents"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    staff_user_ref: Mapped[str] = mapped_column(sa.String(64), index=True)
    training_note: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(16))  # requested, consented, declined, withdrawn, removed
    proposed_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    proposed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ErasureRequest(Base):
    """The lawful erasure path: the one way to shorten retention, needing two different approvers."""

    __tablename__ = "callrec_erasure_requests"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_recordings.id"), index=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.Text)
    requested_by_ref: Mapped[str] = mapped_column(sa.String(64))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Job(Base):
    """The database's record of work for the RQ workers: the intent survives Redis and dead workers."""

    __tablename__ = "callrec_jobs"
    __table_args__ = (sa.Index("ix_callrec_jobs_state", "status", "kind"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    practice_ref: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    kind: Mapped[str] = mapped_column(sa.String(24))  # purge, reconcile, export
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")  # queued, running, finished, failed
    rq_job_id: Mapped[str | None] = mapped_column(sa.String(64))
    object_id: Mapped[str | None] = mapped_column(sa.String(32))  # e.g. the export it builds
    requested_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    progress_done: Mapped[int] = mapped_column(sa.Integer, default=0)
    progress_total: Mapped[int] = mapped_column(sa.Integer, default=0)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Disclosure(Base):
    """An entry of the disclosure register: recordings leaving the practice to a regulator or police."""

    __tablename__ = "callrec_disclosures"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    practice_ref: Mapped[str] = mapped_column(sa.String(64), index=True)
    recipient: Mapped[str] = mapped_column(sa.String(200))
    recipient_kind: Mapped[str] = mapped_column(sa.String(24))  # regulator, law_enforcement
    legal_basis: Mapped[str] = mapped_column(sa.Text)
    reference: Mapped[str] = mapped_column(sa.String(128))
    requested_by_ref: Mapped[str] = mapped_column(sa.String(64))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by_ref: Mapped[str | None] = mapped_column(sa.String(64))  # must differ from requested_by_ref
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(16), default="requested")  # requested, approved, refused
    export_id: Mapped[str | None] = mapped_column(sa.String(32))
    # The bundle first downloaded for delivery: the disclosure's hold ends a set period after this.
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DisclosureItem(Base):
    __tablename__ = "callrec_disclosure_items"

    disclosure_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_disclosures.id"), primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)


class MatchStatus:
    PROPOSED = "proposed"  # rematch found the number on a patient; a person has not confirmed it yet
    CONFIRMED = "confirmed"  # the call is the patient's (made by a person, or a proposal confirmed)
    REJECTED = "rejected"  # a person said the proposal was wrong; rematch will not propose it again
    UNDONE = "undone"  # a confirmed match taken back, with a reason


class PatientMatch(Base):
    """A person's decision that a call no number matched belongs to a patient (or a proposal of one)."""

    __tablename__ = "callrec_patient_matches"
    __table_args__ = (sa.Index("ix_callrec_patient_matches_status", "practice_ref", "status"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_recordings.id"), index=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    patient_ref: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    proposed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    decided_by_name: Mapped[str | None] = mapped_column(sa.String(128))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    undone_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    undone_by_name: Mapped[str | None] = mapped_column(sa.String(128))
    undone_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    undo_reason: Mapped[str | None] = mapped_column(sa.Text)


class Export(Base):
    """A bundle (subject access or disclosure): built aside, encrypted at rest, published atomically."""

    __tablename__ = "callrec_exports"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    practice_ref: Mapped[str] = mapped_column(sa.String(64), index=True)
    kind: Mapped[str] = mapped_column(sa.String(24))  # subject_access, disclosure
    patient_ref: Mapped[str | None] = mapped_column(sa.String(64))
    disclosure_id: Mapped[str | None] = mapped_column(sa.String(32))
    requested_by_ref: Mapped[str] = mapped_column(sa.String(64))
    requested_by_name: Mapped[str | None] = mapped_column(sa.String(128))  # as the host named them then
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")  # queued, building, ready, failed, expired
    progress_done: Mapped[int] = mapped_column(sa.Integer, default=0)
    progress_total: Mapped[int] = mapped_column(sa.Integer, default=0)
    storage_key: Mapped[str | None] = mapped_column(sa.String(128))
    wrapped_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    key_id: Mapped[str | None] = mapped_column(sa.String(64))
    size: Mapped[int | None] = mapped_column(sa.BigInteger)
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ready_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The registered subject-access request a subject-access bundle answers (none: no bundle).
    subject_access_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)


class SubjectAccessRequest(Base):
    """An entry of the subject-access register: recorded before any bundle, with its statutory deadline."""

    __tablename__ = "callrec_subject_access_requests"
    __table_args__ = (sa.Index("ix_callrec_subject_access_requests_due", "practice_ref", "due_on"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    patient_ref: Mapped[str] = mapped_column(sa.String(64))
    received_on: Mapped[dt.date] = mapped_column(sa.Date)
    identity_method: Mapped[str] = mapped_column(sa.Text)  # how the requester's identity was verified
    identity_verified_by: Mapped[str] = mapped_column(sa.String(128))  # by whom
    requester_reference: Mapped[str] = mapped_column(sa.String(128), default="")
    due_on: Mapped[dt.date] = mapped_column(sa.Date)  # one calendar month, plus any extension
    extension_months: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    extension_reason: Mapped[str | None] = mapped_column(sa.Text)
    extended_by_ref: Mapped[str | None] = mapped_column(sa.String(64))
    extended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    registered_by_ref: Mapped[str] = mapped_column(sa.String(64))
    registered_by_name: Mapped[str] = mapped_column(sa.String(128), default="")
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # the bundle first downloaded


class Redaction(Base):
    """Ranges of one recording replaced by silence: reported by the phone system (applied before the
    audio was first encrypted) or marked afterwards by owner or manager (a new blob under a new data
    key; the old key destroyed and the old blob deleted, see redaction.py).

    status: "pending" (intent committed, new blob maybe partly written), "shredding" (the recording
    points at the new blob and key, the old blob may still be on disk), "done", or "abandoned"
    (the recording was purged first). ``ranges`` holds the silenced [start, end] seconds as JSON,
    rounded outward to whole GSM frames where the format needs it."""

    __tablename__ = "callrec_redactions"
    __table_args__ = (sa.Index("ix_callrec_redactions_status", "status"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_recordings.id"), index=True)
    practice_ref: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(16))  # "pbx" (paused by the phone system) or "staff"
    reason: Mapped[str] = mapped_column(sa.String(24))  # a key of redaction.REASONS
    requested: Mapped[str] = mapped_column(sa.Text)  # JSON [[start, end], ...] as asked
    ranges: Mapped[str] = mapped_column(sa.Text, default="[]")  # JSON [[start, end], ...] as silenced
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    old_storage_key: Mapped[str | None] = mapped_column(sa.String(128))
    new_storage_key: Mapped[str | None] = mapped_column(sa.String(128))
    actor_ref: Mapped[str] = mapped_column(sa.String(64))
    actor_name: Mapped[str] = mapped_column(sa.String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    recording: Mapped[Recording] = relationship(lazy="raise")  # inserts a new call before its redactions
