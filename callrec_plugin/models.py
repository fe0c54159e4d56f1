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
    staff_extension: Mapped[str | None] = mapped_column(sa.String(32))
    staff_user_ref: Mapped[str | None] = mapped_column(sa.String(64))
    staff_name: Mapped[str | None] = mapped_column(sa.String(128))
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

    links: Mapped[list["ComplaintLink"]] = relationship(back_populates="recording", lazy="raise")
    holds: Mapped[list["Hold"]] = relationship(back_populates="recording", lazy="raise")


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
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


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
    reason: Mapped[str] = mapped_column(sa.String(64))  # "retention expired", "lawful erasure"


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


class DisclosureItem(Base):
    __tablename__ = "callrec_disclosure_items"

    disclosure_id: Mapped[str] = mapped_column(sa.ForeignKey("callrec_disclosures.id"), primary_key=True)
    recording_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)


class Export(Base):
    """A bundle (subject access or disclosure): built aside, encrypted at rest, published atomically."""

    __tablename__ = "callrec_exports"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    practice_ref: Mapped[str] = mapped_column(sa.String(64), index=True)
    kind: Mapped[str] = mapped_column(sa.String(24))  # subject_access, disclosure
    patient_ref: Mapped[str | None] = mapped_column(sa.String(64))
    disclosure_id: Mapped[str | None] = mapped_column(sa.String(32))
    requested_by_ref: Mapped[str] = mapped_column(sa.String(64))
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
