"""The ingest API authenticates before it reads, streams the body, caps a practice's concurrent uploads,
and never lets a stranger write to the audit trail."""
import io
import json
import os

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest.auth_failures import failures
from callrec_plugin.ingest.signing import signed_headers
from callrec_plugin.ingest.upload_slots import slots
from callrec_plugin.models import ApiNonce, AuditEvent, Recording
from tests.audio_samples import wav_bytes
from tests.test_ingest_http import METADATA, PATH, SECRET, multipart


@pytest.fixture
def app_config(app_config):
    return dict(app_config, CALLREC_API_SECRETS={"pA": SECRET})


class UnreadableBody(io.RawIOBase):
    """A request body that fails the test if the server reads a byte of it."""

    def readable(self):
        return True

    def readinto(self, buffer):
        raise AssertionError("the server read the body of a request that failed authentication")


def rows(db_session, model):
    return db_session.scalar(sa.select(sa.func.count()).select_from(model))


def stored_files(app):
    return sum(len(files) for _, _, files in os.walk(app.config["CALLREC_STORAGE_DIR"]))


def signed(body, **overrides):
    headers = signed_headers(SECRET, "pA", "POST", PATH, body)
    headers.update(overrides)
    return headers


@pytest.mark.parametrize("change", ["no signature", "wrong signature", "unknown practice", "declared longer"])
def test_a_request_failing_authentication_is_refused_before_its_body_is_read(app, db_session, change):
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    headers = signed(body, **{"Content-Type": content_type, "Content-Length": str(100 * 2**20)})
    if change == "no signature":
        del headers["X-Callrec-Signature"]
    elif change == "wrong signature":
        headers["X-Callrec-Signature"] = "0" * 64
    elif change == "unknown practice":
        headers["X-Callrec-Practice"] = "somebody-else\u202e"
    before = failures(app).total
    response = app.test_client().post(PATH, headers=headers, environ_overrides={
        "wsgi.input": UnreadableBody(), "CONTENT_LENGTH": headers["Content-Length"]})
    assert response.status_code == 401 and response.is_json
    assert rows(db_session, AuditEvent) == 0 and rows(db_session, ApiNonce) == 0
    assert failures(app).total == before + 1


def test_failed_authentication_is_counted_on_the_jobs_page_and_logged_at_most_once_a_minute(app, db_session, caplog,
                                                                                             login):
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    client = app.test_client()
    for _ in range(15):
        client.post(PATH, data=body, headers=signed(body, **{"Content-Type": content_type,
                                                            "X-Callrec-Signature": "1" * 64}))
    lines = [r for r in caplog.records if "failed authentication" in r.getMessage()]
    assert len(lines) <= 1
    assert rows(db_session, AuditEvent) == 0
    page = login("owner").get("/callrec/jobs")
    assert page.status_code == 200
    assert f"{failures(app).total} in this server process, since it started" in page.get_data(as_text=True)


def test_a_body_changed_in_transit_is_refused_at_its_end_and_leaves_nothing(app, db_session):
    body, content_type = multipart(wav_bytes(2.0), METADATA)
    headers = signed(body, **{"Content-Type": content_type})
    changed = body.replace(b"RIFF", b"RIFX", 1)
    assert len(changed) == len(body)
    response = app.test_client().post(PATH, data=changed, headers=headers)
    assert response.status_code == 401 and "does not match" in response.json["error"]
    assert rows(db_session, Recording) == 0 and stored_files(app) == 0
    assert rows(db_session, AuditEvent) == 0


def test_a_body_shorter_than_declared_or_without_a_length_is_refused(app, db_session):
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    client = app.test_client()
    short = client.post(PATH, headers=signed(body, **{"Content-Type": content_type}), environ_overrides={
        "wsgi.input": io.BytesIO(body[:-100]), "CONTENT_LENGTH": str(len(body))})
    assert short.status_code == 400 and "ended after" in short.json["error"]
    chunked = client.post(PATH, headers=signed(body, **{"Content-Type": content_type}), environ_overrides={
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input_terminated": True})
    assert chunked.status_code == 411 and "Content-Length" in chunked.json["error"]
    assert rows(db_session, Recording) == 0 and stored_files(app) == 0


def test_a_practice_over_its_concurrent_upload_cap_gets_429_with_retry_after(app, db_session):
    app.config["CALLREC_API_MAX_CONCURRENT_UPLOADS"] = 2
    body, content_type = multipart(wav_bytes(1.0), METADATA)
    with app.app_context():
        pool = slots(app)
        with pool.taken("pA", 2), pool.taken("pA", 2):
            busy = app.test_client().post(PATH, data=body, headers=signed(body, **{"Content-Type": content_type}))
        assert pool.running("pA") == 0
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"
    assert rows(db_session, Recording) == 0
    ok = app.test_client().post(PATH, data=body, headers=signed(body, **{"Content-Type": content_type}))
    assert ok.status_code == 201


def post_metadata(app, metadata, audio=None):
    body, content_type = multipart(wav_bytes(1.0) if audio is None else audio, metadata)
    return app.test_client().post(PATH, data=body, headers=signed(body, **{"Content-Type": content_type}))


@pytest.mark.parametrize("metadata,words", [
    (dict(METADATA, call_id="x" * 161), "never shortened"),
    (dict(METADATA, call_id=1700000000.42), "must be a string"),
    (dict(METADATA, call_id={"id": 1}), "must be a string"),
    (dict(METADATA, started_at="9999-12-31T23:59:59+00:00"), "started_at must be between"),
    (dict(METADATA, started_at="0001-01-01T00:00:00+01:00"), "started_at must be between"),
    (dict(METADATA, started_at="2100-01-01T00:00:00+00:00"), "started_at must be between"),
    (dict(METADATA, started_at=17000000), "ISO 8601"),
    (dict(METADATA, direction=["inbound"]), "direction"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
])
def test_bad_metadata_is_a_clear_json_400_and_keeps_nothing(app, db_session, metadata, words):
    response = post_metadata(app, metadata)
    assert response.status_code == 400 and response.is_json, response.data[:200]
    assert words in response.json["error"]
    assert rows(db_session, Recording) == 0 and stored_files(app) == 0


def test_two_calls_sharing_their_first_160_characters_stay_two_calls(app, db_session):
    prefix = "c" * 159
    assert post_metadata(app, dict(METADATA, call_id=prefix + "1")).status_code == 201
    assert post_metadata(app, dict(METADATA, call_id=prefix + "2")).status_code == 201
    assert rows(db_session, Recording) == 2


@pytest.mark.parametrize("audio,words", [
    (wav_bytes(0.5)[:44] + bytes(2 * 2**20), "follow the"),
    (wav_bytes(0.5)[:40] + b"\0\0\0\0", "no audio samples"),
    (b"", "empty"),
])
def test_a_wav_header_with_uncounted_bytes_or_no_audio_is_refused(app, db_session, audio, words):
    response = post_metadata(app, METADATA, audio)
    assert response.status_code == 415 and words in response.json["error"]
    assert rows(db_session, Recording) == 0 and stored_files(app) == 0


def test_api_paths_answer_404_and_405_in_json(app, db_session):
    client = app.test_client()
    missing = client.get("/callrec/api/nothing-here")
    assert missing.status_code == 404 and missing.json == {"error": "no such API endpoint"}
    posted = client.post("/callrec/api/nothing-here", data={"a": "b"})  # no CSRF page in the way either
    assert posted.status_code == 404 and posted.is_json
    wrong = client.get(PATH)
    assert wrong.status_code == 405 and "POST" in wrong.json["error"] and "POST" in wrong.headers["Allow"]
    assert client.get("/callrec/not-api").status_code == 404  # the HTML page for people stays HTML
    assert not client.get("/callrec/not-api").is_json


def test_metadata_sent_before_or_after_the_audio_is_read_the_same(app, db_session):
    audio = wav_bytes(1.0)
    boundary = "b0undary"
    meta = json.dumps(dict(METADATA, call_id="audio-first")).encode()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n".encode()
            + audio + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n".encode()
            + meta + f"\r\n--{boundary}--\r\n".encode())
    headers = signed(body, **{"Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = app.test_client().post(PATH, data=body, headers=headers)
    assert response.status_code == 201, response.json
    recording = db_session.get(Recording, response.json["id"])
    assert recording.source_ref == "audio-first" and recording.plaintext_size == len(audio)
