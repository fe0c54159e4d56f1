"""Nothing personal left behind: a purged row, column by column against the model; the tombstone says
when, why and by what; tombstones go after their keeping period; an unclassified column stops the purge."""
import datetime as dt

import pytest
import sqlalchemy as sa

from callrec_plugin import audit, purge
from callrec_plugin.models import (
    PURGED_RECORDING_COLUMNS,
    AuditEvent,
    ComplaintLink,
    ErasureRequest,
    Hold,
    Recording,
    Tombstone,
    UTCDateTime,
    utcnow,
)
from callrec_plugin.retention import months_after
from tests import jobs_support as js

CHANGED_BY_THE_PURGE = {"status", "purged_at"}  # "kept" columns the purge itself sets


def test_every_column_of_the_recordings_table_is_classified():
    columns = set(Recording.__table__.columns.keys())
    assert sorted(columns - set(PURGED_RECORDING_COLUMNS)) == [], "classify new columns in PURGED_RECORDING_COLUMNS"
    assert sorted(set(PURGED_RECORDING_COLUMNS) - columns) == [], "a classified column no longer exists"
    assert set(PURGED_RECORDING_COLUMNS.values()) == {"kept", "cleared"}
    for name in ("patient_ref", "from_number", "to_number", "external_number", "staff_name", "staff_user_ref",
                 "staff_extension", "caller_name", "source_ref", "wrapped_key", "key_id"):
        assert PURGED_RECORDING_COLUMNS.get(name, "cleared") == "cleared", name


def filled_value(column, now):
    """A non-empty value of the column's type, so every column holds something before the purge."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return now - dt.timedelta(days=300)
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Float):
        return 12.5
    if isinstance(kind, (sa.BigInteger, sa.Integer)):
        return 4242
    if isinstance(kind, sa.LargeBinary):
        return b"\x01\x02"
    return f"+4477009{abs(hash(column.name)) % 100000:05d}"[: getattr(kind, "length", None) or 32]


def full_recording(app, session, now):
    """A recording with every column filled (the personal ones with plausible values), past retention."""
    blobs = js.Blobs(app)
    row = {column.name: filled_value(column, now) for column in Recording.__table__.columns}
    row.update(js.recording_row(now - dt.timedelta(days=300), patient_ref="pat1"))
    row.update(staff_name="Rita Reception", staff_user_ref="reception", staff_extension="201", status="active",
               purged_at=None, retain_until=now - dt.timedelta(days=100))
    for column in Recording.__table__.columns:
        if row.get(column.name) is None:
            row[column.name] = filled_value(column, now)
    row["purged_at"] = None
    row.update(blobs.write(row["id"]))
    session.execute(sa.insert(Recording), [row])
    session.commit()
    return row


def test_a_purged_row_keeps_no_personal_field(app, db_session):
    now = utcnow()
    before = full_recording(app, db_session, now)
    db_session.add(ComplaintLink(recording_id=before["id"], practice_ref="pA", complaint_ref="cX",
                                 note="Mrs Jones rang about her bill", linked_by_ref="owner", linked_by_name="Owner",
                                 linked_at=now - dt.timedelta(days=250), unlinked_at=now - dt.timedelta(days=200),
                                 unlinked_by_ref="owner", unlink_reason="wrong call, it was Mr Smith"))
    db_session.commit()
    report = purge.purge(now=now)
    assert report.purged_ids == [before["id"]]
    db_session.expire_all()
    after = db_session.get(Recording, before["id"])
    for name, fate in PURGED_RECORDING_COLUMNS.items():
        value = getattr(after, name)
        if fate == "cleared":
            expected = f"purged:{before['id']}" if name == "source_ref" else None
            assert value == expected, f"{name} kept {value!r} after the purge"
        elif name not in CHANGED_BY_THE_PURGE:
            assert value == before[name], f"{name} changed: {before[name]!r} -> {value!r}"
    assert after.status == "purged" and after.purged_at == now
    link = db_session.scalars(sa.select(ComplaintLink)).one()
    assert (link.note, link.unlink_reason) == ("", None)
    tombstone = db_session.get(Tombstone, before["id"])
    assert tombstone.reason == "retention expired" and tombstone.purged_by == f"purge run {report.run_id}"
    assert tombstone.delete_after == months_after(now, 72, "pA") and tombstone.approved_by_refs is None


def test_a_purged_calls_patient_matches_go_and_its_redactions_keep_no_name(app, db_session):
    from callrec_plugin.models import PatientMatch, Redaction

    now = utcnow()
    before = full_recording(app, db_session, now)
    db_session.add(PatientMatch(recording_id=before["id"], practice_ref="pA", patient_ref="pat2", status="confirmed",
                                reason="said she is Ben's mother", decided_by_ref="owner", decided_by_name="Owner"))
    db_session.add(Redaction(recording_id=before["id"], practice_ref="pA", source="staff", reason="card_details",
                             requested="[[1, 2]]", ranges="[[1, 2]]", status="done", actor_ref="manager",
                             actor_name="Natalie Ballantyne"))
    db_session.commit()
    purge.purge(now=now)
    db_session.expire_all()
    assert db_session.scalars(sa.select(PatientMatch)).all() == []
    redaction = db_session.scalars(sa.select(Redaction)).one()
    assert redaction.actor_name == "" and redaction.reason == "card_details"


def test_an_unclassified_column_stops_the_purge_and_destroys_nothing(app, db_session, monkeypatch):
    now = utcnow()
    row = full_recording(app, db_session, now)
    partial = {k: v for k, v in PURGED_RECORDING_COLUMNS.items() if k != "caller_name"}
    monkeypatch.setattr(purge, "PURGED_RECORDING_COLUMNS", partial)
    with pytest.raises(purge.UnclassifiedColumnError, match="caller_name"):
        purge.purge(now=now)
    db_session.rollback()
    db_session.expire_all()
    kept = db_session.get(Recording, row["id"])
    assert kept.status == "active" and kept.wrapped_key is not None and db_session.get(Tombstone, row["id"]) is None


def test_the_tombstone_says_why_and_by_whom(app, db_session):
    now = utcnow()
    blobs = js.Blobs(app)
    ids = js.seed(db_session, blobs, now, expired=2, in_grace=1)
    # a lawful erasure, requested by the owner and approved by the manager
    erased = ids["expired"][0]
    db_session.add(ErasureRequest(recording_id=erased, practice_ref="pA", reason="the patient asked (art. 17)",
                                  requested_by_ref="owner", requested_at=now - dt.timedelta(days=1),
                                  approved_by_ref="manager", approved_at=now - dt.timedelta(hours=1)))
    # the grace after a hold: released 8 days ago, past a retention that ended long before
    graced = ids["in_grace"][0]
    db_session.execute(sa.update(Hold).where(Hold.recording_id == graced).values(released_at=now - dt.timedelta(days=8)))
    db_session.commit()
    report = purge.purge(now=now)
    assert sorted(report.purged_ids) == sorted(ids["expired"] + ids["in_grace"])
    tombstones = {t.recording_id: t for t in db_session.scalars(sa.select(Tombstone))}
    assert tombstones[erased].reason == "lawful erasure" and tombstones[erased].approved_by_refs == "owner, manager"
    assert tombstones[erased].erasure_request_id is not None
    assert tombstones[graced].reason == "grace after a hold"
    assert tombstones[ids["expired"][1]].reason == "retention expired"
    reasons = dict(db_session.execute(sa.select(AuditEvent.recording_id, AuditEvent.reason)
                                      .where(AuditEvent.action == "purge")).all())
    assert "approved by owner and manager" in reasons[erased] and reasons[graced].startswith("grace after a hold")
    assert report.reasons == {"lawful erasure": 1, "grace after a hold": 1, "retention expired": 1}


def test_tombstones_are_deleted_after_their_keeping_period_by_the_purge(app, db_session):
    now = utcnow()
    blobs = js.Blobs(app)
    ids = js.seed(db_session, blobs, now, expired=2)
    purge.purge(now=now)
    just_before = months_after(now, 72, "pA") - dt.timedelta(seconds=1)
    assert purge.purge(now=just_before).tombstones_deleted == 0
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Tombstone)) == 2
    report = purge.purge(now=months_after(now, 72, "pA"))
    assert report.tombstones_deleted == 2 and "deleted 2 tombstones" in report.summary()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Tombstone)) == 0
    event = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "tombstones_expired")).one()
    assert event.reason.startswith("2 tombstones")
    # the audit trail outlives them, intact
    assert {e.recording_id for e in db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "purge"))} \
        == set(ids["expired"])
    assert audit.verify(db_session).ok


def test_batch_ids_travel_as_one_array_on_postgresql():
    """`= ANY(:ids)`: the statement text is the same for 3 ids or 500 (no growing IN list)."""
    from types import SimpleNamespace

    from sqlalchemy.dialects import postgresql

    fake = SimpleNamespace(get_bind=lambda: SimpleNamespace(dialect=SimpleNamespace(name="postgresql")))
    texts = {str(sa.select(Recording.id).where(purge.among(fake, Recording.id, [f"r{n}" for n in range(count)]))
                 .compile(dialect=postgresql.dialect())) for count in (3, 500)}
    assert len(texts) == 1 and "= ANY (" in texts.pop()
