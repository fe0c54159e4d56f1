"""The signed ingest API: 201 for a good upload, a clear JSON 4xx for every bad one, nothing lost or kept."""
import json
import os
import time

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest.signing import signed_headers
from callrec_plugin.models import AuditEvent, Recording
from tests.audio_samples import wav_bytes

PATH = "/callrec/api/recordings"
SECRET = "practice-A-shared-secret-for-tests"


@pytest.fixture
def app_config(app_config):
    return dict(app_config, CALLREC_API_SECRETS={"pA": SECRET})


def multipart(audio, metadata, boundary="callrecboundary"):
    meta = metadata if isinstance(metadata, str) else json.dumps(metadata)
    parts = [
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{meta}\r\n".encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"call.wav\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + audio + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


METADATA = {"call_id": "1700000000.42", "started_at": "2026-11-30T09:15:00+00:00", "direction": "inbound",
            "from": "07700900001", "to": "201", "staff_extension": "201", "staff_name": "Rita Reception"}


def post(client, body, content_type, practice="pA", secret=SECRET, **header_overrides):
    headers = signed_headers(secret, practice, "POST", PATH, body)
    headers.update(header_overrides)
    headers["Content-Type"] = content_type
    return client.post(PATH, data=body, headers=headers)


def recordings(db_session):
    return db_session.scalar(sa.select(sa.func.count()).select_from(Recording))


def blobs(app):
    return sum(len(files) for _, _, files in os.walk(app.config["CALLREC_STORAGE_DIR"]))


def test_signed_upload_is_stored_and_answers_201(app, db_session):
    body, content_type = multipart(wav_bytes(3.0), METADATA)
    response = post(app.test_client(), body, content_type)
    assert response.status_code == 201, response.json
    recording = db_session.get(Recording, response.json["id"])
    assert recording.patient_ref == "pat1" and recording.source == "api"
    assert recording.staff_name == "Rita Reception" and recording.external_number == "+447700900001"
    again = post(app.test_client(), body, content_type)
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    assert recordings(db_session) == 1 and blobs(app) == 1


def test_the_cdr_fields_a_phone_system_sends_are_kept(app, db_session):
    cdr = {"caller_name": "Hughes, Margaret", "cdr_userfield": "callrec-silence=12-30", "accountcode": "main",
           "linkedid": "1700000000.40"}
    body, content_type = multipart(wav_bytes(3.0), dict(METADATA, call_id="with-cdr-fields", **cdr))
    response = post(app.test_client(), body, content_type)
    assert response.status_code == 201, response.json
    recording = db_session.get(Recording, response.json["id"])
    assert {name: getattr(recording, name) for name in cdr} == cdr
    too_long = multipart(wav_bytes(3.0), dict(METADATA, call_id="long-userfield", cdr_userfield="x" * 256))
    refused = post(app.test_client(), *too_long)
    assert refused.status_code == 400 and "cdr_userfield" in refused.json["error"]


def test_csrf_does_not_apply_to_the_signed_api(app, db_session):
    assert app.config.get("WTF_CSRF_ENABLED", True)
    body, content_type = multipart(wav_bytes(3.0), METADATA)
    assert post(app.test_client(), body, content_type).status_code == 201


CASES = {
    "bad signature": (dict(secret="wrong-secret"), 401, "bad signature"),
    "unknown practice": (dict(practice="pZ", secret="whatever"), 401, "unknown practice"),
    "stale timestamp": (dict(**{"X-Callrec-Timestamp": str(int(time.time()) - 3600)}), 401, "too old"),
    "malformed nonce": (dict(**{"X-Callrec-Nonce": "short"}), 401, "Nonce"),
    # The digest is signed: changing it breaks the signature (a changed body: test_ingest_auth_before_read.py).
    "altered body digest": (dict(**{"X-Callrec-Content-SHA256": "0" * 64}), 401, "bad signature"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_authentication_is_refused_with_json_counted_and_never_audited(app, db_session, case):
    from callrec_plugin.ingest.auth_failures import failures

    overrides, status, words = CASES[case]
    body, content_type = multipart(wav_bytes(3.0), METADATA)
    before = failures(app).total
    response = post(app.test_client(), body, content_type, **overrides)
    assert response.status_code == status
    assert words in response.json["error"]
    assert recordings(db_session) == 0 and blobs(app) == 0
    # Anyone can send a request that fails authentication: it must not be able to write to the audit chain.
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0
    assert failures(app).total == before + 1


def test_replayed_nonce_is_refused(app, db_session):
    body, content_type = multipart(wav_bytes(3.0), METADATA)
    headers = signed_headers(SECRET, "pA", "POST", PATH, body)
    headers["Content-Type"] = content_type
    assert app.test_client().post(PATH, data=body, headers=headers).status_code == 201
    replay = app.test_client().post(PATH, data=body, headers=headers)
    assert replay.status_code == 409 and "replay" in replay.json["error"]


@pytest.mark.parametrize("audio,metadata,status,words", [
    (b"%PDF-1.4 definitely a document " * 50, METADATA, 415, "PDF"),
    (b"", METADATA, 415, "empty"),
    (wav_bytes(3.0)[:-3000], METADATA, 415, "truncated"),
    (wav_bytes(3.0), "{not json", 400, "not valid JSON"),
    (wav_bytes(3.0), {"direction": "inbound"}, 400, "lacks call_id, started_at"),
    (wav_bytes(3.0), dict(METADATA, started_at="yesterday"), 400, "ISO 8601"),
    (wav_bytes(3.0), dict(METADATA, started_at="2026-11-30T09:15:00"), 400, "UTC offset"),
    (wav_bytes(3.0), dict(METADATA, direction="sideways"), 422, "direction"),
    (wav_bytes(3.0), dict(METADATA, **{"from": "1" * 60}), 422, "from_number"),
    (wav_bytes(3.0), dict(METADATA, **{"from": "Zoë ☎ 07700"}), 422, "from_number"),
    (wav_bytes(3.0), dict(METADATA, staff_name="Rita\u0000Reception"), 422, "plain text"),
    (wav_bytes(3.0), dict(METADATA, call_id="../../etc/passwd"), 201, ""),
])
def test_bad_input_gets_a_clear_error_and_keeps_nothing(app, db_session, audio, metadata, status, words):
    body, content_type = multipart(audio, metadata)
    response = post(app.test_client(), body, content_type)
    assert response.status_code == status, response.json
    if status >= 400:
        assert words in response.json["error"]
        assert recordings(db_session) == 0 and blobs(app) == 0
    else:  # a hostile call id is only a label: the storage name is the server's own
        (name,) = [f for _, _, files in os.walk(app.config["CALLREC_STORAGE_DIR"]) for f in files]
        assert name == f"{response.json['id']}.cre"


def test_oversized_upload_is_413(app, db_session):
    app.config["CALLREC_MAX_AUDIO_BYTES"] = 20_000
    body, content_type = multipart(wav_bytes(3.0), METADATA)  # 48 KB of audio: under the multipart allowance
    response = post(app.test_client(), body, content_type)
    assert response.status_code == 413 and "limit" in response.json["error"]
    huge, content_type = multipart(b"\0" * (2 * 1024 * 1024), METADATA)
    assert post(app.test_client(), huge, content_type).status_code == 413
    assert recordings(db_session) == 0 and blobs(app) == 0


def test_missing_parts_and_wrong_content_type(app, db_session):
    body = json.dumps(METADATA).encode()
    response = post(app.test_client(), body, "application/json")
    assert response.status_code in (400, 415) and "multipart" in response.json["error"]


def test_a_large_upload_is_spooled_encrypted_only_and_never_held_whole(app, db_session, monkeypatch):
    import tempfile
    import tracemalloc

    spools = []
    real = tempfile.TemporaryFile

    def recorded(*args, **kwargs):
        spools.append(real(*args, **kwargs))
        return spools[-1]

    monkeypatch.setattr(tempfile, "TemporaryFile", recorded)
    audio = wav_bytes(300.0, rate=8000)
    body, content_type = multipart(audio, dict(METADATA, call_id="large-upload"))
    client = app.test_client()
    headers = signed_headers(SECRET, "pA", "POST", PATH, body)
    headers["Content-Type"] = content_type
    tracemalloc.start()
    try:
        response = client.post(PATH, data=body, headers=headers)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.json
    assert len(body) > 4 * 2**20
    # The test client's own copy of the body, plus chunks: the audio is encrypted as it is parsed.
    assert peak < len(body) + 4 * 2**20, f"peak {peak} for a {len(body)}-byte upload"
    (spool,) = spools
    assert spool.closed  # deleted once the recording is stored


def test_metadata_over_its_limit_is_413_and_a_body_that_is_not_multipart_is_415(app, db_session):
    huge = dict(METADATA, call_id="huge-metadata", staff_name=None, padding="x" * (300 * 1024))
    body, content_type = multipart(wav_bytes(3.0), huge)
    response = post(app.test_client(), body, content_type)
    assert response.status_code == 413 and "metadata" in response.json["error"]
    response = post(app.test_client(), b"a=" + b"x" * 100_000, "application/x-www-form-urlencoded")
    assert response.status_code == 415 and "multipart/form-data" in response.json["error"]
    assert recordings(db_session) == 0 and blobs(app) == 0
