"""Purpose-gated playback: the grant, then the audio stream with Range support, headers and audit."""
import datetime as dt
import io
import math

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from callrec_plugin.crypto import SEGMENT_SIZE, DecryptingReader
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import AccessGrant, AuditEvent
from tests.audio_samples import wav_bytes
from tests.conftest import csrf_from

STARTED = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture
def audio():
    return wav_bytes(20.0, rate=8000)  # 320 KB: several 64 KiB segments


@pytest.fixture
def recording_id(app, db_session, audio):
    result = ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=STARTED, direction="inbound",
                          from_number="+447700900001", to_number="201", source="test", source_ref="r1")
    return result.recording_id


def choose_purpose(client, recording_id, **fields):
    page = client.get(f"/callrec/recordings/{recording_id}")
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "action": "play", **fields}
    return client.post(f"/callrec/recordings/{recording_id}/grants", data=data)


def test_owner_chooses_purpose_then_streams_the_whole_file(app, db_session, login, recording_id, audio):
    client = login("owner")
    assert client.get(f"/callrec/recordings/{recording_id}/audio").status_code == 403
    granted = choose_purpose(client, recording_id, purpose="spot_check")
    assert granted.status_code == 302
    page = client.get(f"/callrec/recordings/{recording_id}").get_data(as_text=True)
    assert "<audio controls" in page
    response = client.get(f"/callrec/recordings/{recording_id}/audio")
    assert response.status_code == 200
    assert response.data == audio
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert int(response.headers["Content-Length"]) == len(audio)
    grants = db_session.scalars(sa.select(AccessGrant)).all()
    assert [(g.user_ref, g.purpose, g.action) for g in grants] == [("owner", "spot_check", "play")]


def test_grant_is_audited_once_not_once_per_range_request(app, db_session, login, recording_id):
    client = login("manager")
    choose_purpose(client, recording_id, purpose="compliance")
    before = db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    for start in (0, 1000, 70000, 200000):
        assert client.get(f"/callrec/recordings/{recording_id}/audio",
                          headers={"Range": f"bytes={start}-"}).status_code == 206
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before
    actions = [e.action for e in db_session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq))]
    assert actions.count("play") == 1  # the decision's event is the grant's one audit event


def test_expired_grant_gives_403(app, db_session, login, recording_id):
    client = login("owner")
    choose_purpose(client, recording_id, purpose="training")
    for grant in db_session.scalars(sa.select(AccessGrant)):
        grant.expires_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    db_session.commit()
    assert client.get(f"/callrec/recordings/{recording_id}/audio").status_code == 403


def test_grant_of_one_user_does_not_serve_another(app, db_session, login, recording_id):
    choose_purpose(login("owner"), recording_id, purpose="training")
    assert login("manager").get(f"/callrec/recordings/{recording_id}/audio").status_code == 403


def test_safety_purpose_needs_a_justification(app, db_session, login, recording_id):
    client = login("owner")
    refused = choose_purpose(client, recording_id, purpose="safety_crime", justification="")
    assert refused.status_code == 403
    assert "justification" in refused.get_data(as_text=True)
    allowed = choose_purpose(client, recording_id, purpose="safety_crime",
                             justification="Caller threatened the receptionist with violence.")
    assert allowed.status_code == 302


def test_download_is_a_separate_action(app, db_session, login, recording_id, audio):
    client = login("owner")
    choose_purpose(client, recording_id, purpose="compliance")
    assert client.get(f"/callrec/recordings/{recording_id}/download").status_code == 403
    granted = choose_purpose(client, recording_id, purpose="compliance", action="download")
    # One step: choosing the purpose leads straight to the file.
    assert granted.status_code == 302 and granted.headers["Location"].endswith(f"/recordings/{recording_id}/download")
    response = client.get(granted.headers["Location"])
    assert response.status_code == 200 and response.data == audio
    assert response.headers["Content-Disposition"].startswith("attachment;")


@pytest.fixture
def granted_client(app, login, recording_id):
    client = login("owner")
    choose_purpose(client, recording_id, purpose="spot_check")
    return client


def expected_slice(audio, header):
    """What a correct server sends for a single-range header (None: 416)."""
    spec = header[len("bytes="):]
    first, _, last = spec.partition("-")
    size = len(audio)
    if first == "":
        suffix = int(last)
        return audio[max(0, size - suffix):] if suffix > 0 else None
    start = int(first)
    stop = size if last == "" else min(size, int(last) + 1)
    return audio[start:stop] if start < size else None


range_headers = st.one_of(
    st.integers(0, 400_000).map(lambda n: f"bytes={n}-"),
    st.tuples(st.integers(0, 400_000), st.integers(0, 70_000)).map(lambda t: f"bytes={t[0]}-{t[0] + t[1]}"),
    st.integers(1, 400_000).map(lambda n: f"bytes=-{n}"),
)


@pytest.fixture
def decryptions(monkeypatch):
    """Every DecryptingReader made while the fixture lives: count its segments_decrypted (calls, not time)."""
    readers = []
    original_init = DecryptingReader.__init__

    def counting_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        readers.append(self)

    monkeypatch.setattr(DecryptingReader, "__init__", counting_init)
    return readers


def segment_bound(served_bytes):
    return math.ceil(served_bytes / SEGMENT_SIZE) + 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=range_headers)
def test_random_ranges_serve_exactly_the_original_slice(granted_client, recording_id, audio, decryptions, header):
    decryptions.clear()
    response = granted_client.get(f"/callrec/recordings/{recording_id}/audio", headers={"Range": header})
    expected = expected_slice(audio, header)
    if expected is None:
        assert response.status_code == 416
        assert response.headers["Content-Range"] == f"bytes */{len(audio)}"
    else:
        assert response.status_code == 206, header
        assert response.data == expected
        start = len(audio) - len(expected) if header.startswith("bytes=-") else int(header[6:].split("-")[0])
        assert response.headers["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{len(audio)}"
    served = len(response.data)
    decrypted = sum(reader.segments_decrypted for reader in decryptions)
    assert decryptions, "the audio was not read through a DecryptingReader"
    assert decrypted <= segment_bound(served), (header, served, decrypted)


# Werkzeug refuses a Range it cannot parse with 416 (RFC 9110 §14.2 lets a server ignore or reject an
# invalid ranges-specifier; callrec rejects, with the complete length). A range unit it does not know
# MUST be ignored (§14.2), so "lines=" gets the whole file. Several ranges are refused: callrec sends
# no multipart/byteranges, and a player never asks for them.
MALFORMED_RANGES = {
    "bytes=": 416,
    "bytes=-": 416,
    "bytes=abc": 416,
    "bytes=5-2": 416,
    "bytes=1-2-3": 416,
    "bytes=0-1,5-9": 416,
    "lines=0-5": 200,
}
@pytest.mark.parametrize(("header", "status"), MALFORMED_RANGES.items())
def test_malformed_and_multi_ranges_never_give_5xx(granted_client, recording_id, audio, header, status):
    response = granted_client.get(f"/callrec/recordings/{recording_id}/audio", headers={"Range": header})
    assert response.status_code == status, header
    if status == 200:
        assert response.data == audio
        assert "Content-Range" not in response.headers
    else:
        assert response.headers["Content-Range"] == f"bytes */{len(audio)}"
        assert response.data != audio


def test_a_multi_range_request_is_refused_with_416(granted_client, recording_id, audio):
    response = granted_client.get(f"/callrec/recordings/{recording_id}/audio", headers={"Range": "bytes=0-1,5-6"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(audio)}"


@pytest.mark.parametrize("validator", ['"not-this-recording"', 'W/"weak"', "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_if_range_with_a_stale_validator_gets_the_whole_file(granted_client, recording_id, audio, validator):
    response = granted_client.get(f"/callrec/recordings/{recording_id}/audio",
                                  headers={"Range": "bytes=100-199", "If-Range": validator})
    assert response.status_code == 200
    assert response.data == audio
    assert "Content-Range" not in response.headers


def test_if_range_with_the_current_validator_gets_the_range(granted_client, recording_id, audio):
    whole = granted_client.get(f"/callrec/recordings/{recording_id}/audio")
    validator = whole.headers.get("ETag") or whole.headers.get("Last-Modified")
    assert validator, "the audio response carries no ETag or Last-Modified, so an If-Range can never match"
    response = granted_client.get(f"/callrec/recordings/{recording_id}/audio",
                                  headers={"Range": "bytes=100-199", "If-Range": validator})
    assert response.status_code == 206
    assert response.data == audio[100:200]
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(audio)}"


def test_range_decrypts_only_the_segments_it_touches(app, granted_client, recording_id, audio, decryptions):
    for start, length in [(0, 65536), (100_000, 65536), (250_000, 1000), (len(audio) - 10, 10)]:
        decryptions.clear()
        response = granted_client.get(f"/callrec/recordings/{recording_id}/audio",
                                      headers={"Range": f"bytes={start}-{start + length - 1}"})
        assert response.data == audio[start:start + length]
        (reader,) = decryptions
        assert reader.segments_decrypted <= segment_bound(length)
