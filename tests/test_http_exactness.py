"""HTTP as RFC 9110 says: If-Range compared strongly, one Date header over a real server, Range on bundle
downloads, and a damaged segment inside a Range answered with callrec's error page and an audit event."""
import http.client
import io
import threading

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from callrec_plugin.crypto import HEADER_SIZE, SEGMENT_SIZE, TAG_SIZE
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import AuditEvent, Export
from tests import jobs_support as js
from tests.audio_samples import wav_bytes
from tests.test_damaged_files import STARTED, blob_path, failures, granted_owner

PORT = 18210


@pytest.fixture
def long_call(app, db_session):
    audio = wav_bytes(20.0, rate=8000)  # 320 KB: five segments
    result = ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=STARTED, direction="inbound",
                          from_number="+447700900001", to_number="201", source="test", source_ref="exact-1")
    return result.recording_id, audio


@pytest.mark.parametrize("if_range,status", [
    ("strong", 206),
    ("weak", 200),            # RFC 9110 §13.1.5: If-Range uses the strong comparison; W/ never matches
    ("date", 200),            # no Last-Modified is sent, so a date never matches either
    ("other", 200),
])
def test_if_range_is_compared_strongly(app, db_session, login, long_call, if_range, status):
    recording_id, audio = long_call
    client = granted_owner(login, recording_id)
    etag = client.get(f"/callrec/recordings/{recording_id}/audio", headers={"Range": "bytes=0-0"}).headers["ETag"]
    assert etag.startswith('"')
    value = {"strong": etag, "weak": "W/" + etag, "date": "Thu, 03 Dec 2026 09:00:00 GMT", "other": '"x"'}[if_range]
    response = client.get(f"/callrec/recordings/{recording_id}/audio",
                          headers={"Range": "bytes=100-199", "If-Range": value})
    assert response.status_code == status
    assert response.data == (audio[100:200] if status == 206 else audio)


def test_a_damaged_segment_met_inside_a_range_answers_the_error_page_and_is_audited(app, db_session, login,
                                                                                    long_call):
    recording_id, _ = long_call
    path = blob_path(app, db_session, recording_id)
    data = bytearray(open(path, "rb").read())
    data[HEADER_SIZE + 2 * (SEGMENT_SIZE + TAG_SIZE) + 10] ^= 0x01  # inside the third segment
    open(path, "wb").write(bytes(data))
    client = granted_owner(login, recording_id)
    response = client.get(f"/callrec/recordings/{recording_id}/audio",
                          headers={"Range": f"bytes={2 * SEGMENT_SIZE + 5}-"})
    assert response.status_code == 500
    assert b"integrity check" in response.data and b"Traceback" not in response.data
    (event,) = failures(db_session, recording_id)
    assert event.action == "play" and "integrity" in event.reason
    # A Range before the damage still plays: only what is damaged is refused.
    assert client.get(f"/callrec/recordings/{recording_id}/audio", headers={"Range": "bytes=0-99"}).status_code == 206


def test_bundle_downloads_honour_range_and_if_range_so_they_can_be_resumed(app, db_session, login):
    from tests.test_exports import add_calls

    add_calls(db_session, js.Blobs(app), "pat1", 3, size=100_000)
    owner = login("owner")
    export_id = js.request_bundle(owner, app, "pat1")
    whole = owner.get(f"/callrec/exports/{export_id}/download")
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    bundle, etag = whole.data, whole.headers["ETag"]
    resumed = owner.get(f"/callrec/exports/{export_id}/download",
                        headers={"Range": f"bytes={len(bundle) // 2}-", "If-Range": etag})
    assert resumed.status_code == 206 and resumed.data == bundle[len(bundle) // 2:]
    assert resumed.headers["Content-Range"] == f"bytes {len(bundle) // 2}-{len(bundle) - 1}/{len(bundle)}"
    stale = owner.get(f"/callrec/exports/{export_id}/download", headers={"Range": "bytes=10-", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.data == bundle
    events = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.object_id == export_id,
                                                            AuditEvent.action == "export_download")).all()
    assert [e.outcome for e in events] == ["done", "done", "done"]
    assert "206" in events[1].reason


def test_a_damaged_bundle_segment_inside_a_range_answers_the_error_page(app, db_session, login):
    from tests.test_exports import add_calls

    add_calls(db_session, js.Blobs(app), "pat1", 3, size=200_000)
    owner = login("owner")
    export_id = js.request_bundle(owner, app, "pat1")
    path = js.Blobs(app).path(db_session.get(Export, export_id).storage_key)
    data = bytearray(open(path, "rb").read())
    data[HEADER_SIZE + (SEGMENT_SIZE + TAG_SIZE) + 10] ^= 0x01  # inside the second segment
    open(path, "wb").write(bytes(data))
    response = owner.get(f"/callrec/exports/{export_id}/download", headers={"Range": f"bytes={SEGMENT_SIZE}-"})
    assert response.status_code == 500 and b"PK" not in response.data
    events = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.object_id == export_id,
                                                            AuditEvent.action == "export_download")).all()
    assert [(e.outcome, "integrity" in e.reason) for e in events] == [("failed", True)]


def test_audio_over_a_real_server_carries_exactly_one_date_header(app, db_session, login, long_call):
    recording_id, audio = long_call
    cookie_client = granted_owner(login, recording_id)
    server = make_server("127.0.0.1", PORT, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # The test client's session, sent as the browser would send its cookie.
        cookie = "; ".join(f"{c.key}={c.value}" for c in cookie_client._cookies.values())
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
        connection.request("GET", f"/callrec/recordings/{recording_id}/audio",
                           headers={"Range": "bytes=0-99", "Cookie": cookie})
        response = connection.getresponse()
        body = response.read()
        dates = [value for name, value in response.getheaders() if name.lower() == "date"]
        connection.close()
    finally:
        server.shutdown()
        thread.join(5)
    assert response.status == 206 and body == audio[:100]
    assert len(dates) == 1, dates
