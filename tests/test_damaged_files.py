"""A recording or bundle whose stored file is missing or tampered with: nothing is served, the failure
is audited and the page says so in words, not as a stack trace."""
import datetime as dt
import io
import os
import shutil

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import AuditEvent, Recording
from tests import jobs_support as js
from tests.audio_samples import wav_bytes
from tests.conftest import csrf_from

STARTED = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.timezone.utc)


def ingest(n):
    result = ingest_audio(io.BytesIO(wav_bytes(3.0 + n, rate=8000)), practice_ref="pA", started_at=STARTED,
                          direction="inbound", from_number="+447700900001", to_number="201", source="test",
                          source_ref=f"damaged-{n}")
    return result.recording_id


def blob_path(app, db_session, recording_id):
    return js.Blobs(app).path(db_session.get(Recording, recording_id).storage_key)


def granted_owner(login, recording_id):
    client = login("owner")
    page = client.get(f"/callrec/recordings/{recording_id}")
    response = client.post(f"/callrec/recordings/{recording_id}/grants", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "action": "play", "purpose": "compliance"})
    assert response.status_code == 302
    return client


def failures(db_session, recording_id):
    return db_session.scalars(sa.select(AuditEvent).where(
        AuditEvent.recording_id == recording_id, AuditEvent.outcome == "failed")).all()


@pytest.mark.parametrize("damage", ["moved from another call", "bit flipped in the header", "missing",
                                    "truncated", "key id unknown"])
def test_damaged_audio_is_refused_audited_and_explained(app, db_session, login, damage):
    victim, other = ingest(1), ingest(2)
    path = blob_path(app, db_session, victim)
    if damage == "moved from another call":
        shutil.copyfile(blob_path(app, db_session, other), path)
    elif damage == "bit flipped in the header":
        data = bytearray(open(path, "rb").read())
        data[20] ^= 0x01
        open(path, "wb").write(bytes(data))
    elif damage == "missing":
        os.unlink(path)
    elif damage == "key id unknown":
        db_session.get(Recording, victim).key_id = "k-no-such-key"
        db_session.commit()
    else:
        os.truncate(path, os.path.getsize(path) - 100)
    client = granted_owner(login, victim)
    response = client.get(f"/callrec/recordings/{victim}/audio", headers={"Range": "bytes=0-"})
    assert response.status_code == 500
    body = response.get_data()
    assert b"RIFF" not in body and b"integrity check" in body and b"Traceback" not in body
    (event,) = failures(db_session, victim)
    assert event.action == "play" and event.actor_ref == "owner"
    expected = {"missing": "missing", "key id unknown": "key-encryption key"}.get(damage, "integrity")
    assert expected in event.reason
    # The other call still plays.
    assert granted_owner(login, other).get(f"/callrec/recordings/{other}/audio").data[:4] == b"RIFF"


def test_a_damaged_bundle_is_not_downloaded(app, db_session, login):
    from callrec_plugin.models import Export
    from tests.test_exports import add_calls

    add_calls(db_session, js.Blobs(app), "pat1", 2)
    owner = login("owner")
    export_id = js.request_bundle(owner, app, "pat1")
    export = db_session.get(Export, export_id)
    path = js.Blobs(app).path(export.storage_key)
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 0x40  # in the final segment's tag
    open(path, "wb").write(bytes(data))
    response = owner.get(f"/callrec/exports/{export_id}/download")
    assert response.status_code == 500 and b"PK" not in response.get_data()
    events = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.object_id == export_id,
                                                            AuditEvent.action == "export_download")).all()
    assert [(e.outcome, "integrity" in e.reason) for e in events] == [("failed", True)]


def test_tampering_found_while_streaming_cuts_the_answer_and_is_audited(app, db_session, login):
    from callrec_plugin.crypto import HEADER_SIZE, SEGMENT_SIZE, TAG_SIZE, TamperedError

    result = ingest_audio(io.BytesIO(wav_bytes(20.0, rate=8000)), practice_ref="pA", started_at=STARTED,
                          direction="inbound", from_number="+447700900001", to_number="201", source="test",
                          source_ref="damaged-mid")
    victim = result.recording_id
    path = blob_path(app, db_session, victim)
    data = bytearray(open(path, "rb").read())
    data[HEADER_SIZE + 2 * (SEGMENT_SIZE + TAG_SIZE) + 100] ^= 0x01  # inside the third segment
    open(path, "wb").write(bytes(data))
    client = granted_owner(login, victim)
    response = client.get(f"/callrec/recordings/{victim}/audio", buffered=False)
    assert response.status_code == 200  # the final segment checks out: the answer starts
    received = b""
    with pytest.raises(TamperedError):
        for chunk in response.response:
            received += chunk
    assert len(received) == 2 * SEGMENT_SIZE  # nothing past the bad segment
    (event,) = failures(db_session, victim)
    assert event.action == "play" and event.actor_ref == "owner" and "while streaming" in event.reason
    assert event.request_id


def test_a_bundle_tampered_in_the_middle_is_cut_off_and_audited(app, db_session, login):
    from callrec_plugin.crypto import HEADER_SIZE, SEGMENT_SIZE, TAG_SIZE, TamperedError
    from callrec_plugin.models import Export
    from tests.test_exports import add_calls

    add_calls(db_session, js.Blobs(app), "pat1", 3, size=200_000)
    owner = login("owner")
    export_id = js.request_bundle(owner, app, "pat1")
    export = db_session.get(Export, export_id)
    path = js.Blobs(app).path(export.storage_key)
    data = bytearray(open(path, "rb").read())
    assert len(data) > HEADER_SIZE + 4 * (SEGMENT_SIZE + TAG_SIZE)
    data[HEADER_SIZE + (SEGMENT_SIZE + TAG_SIZE) + 10] ^= 0x01  # inside the second segment
    open(path, "wb").write(bytes(data))
    response = owner.get(f"/callrec/exports/{export_id}/download", buffered=False)
    assert response.status_code == 200
    received = b""
    with pytest.raises(TamperedError):
        for chunk in response.response:
            received += chunk
    assert len(received) == SEGMENT_SIZE
    outcomes = [(e.outcome, "while streaming" in (e.reason or "")) for e in db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.object_id == export_id, AuditEvent.action == "export_download"))]
    assert outcomes == [("done", False), ("failed", True)]
