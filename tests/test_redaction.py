"""Redaction after the fact, and silence reported by the phone system at ingest or afterwards.

What a user relies on: the stored audio (decrypted) is silence in the range and byte-identical
elsewhere; the old blob and the old data key are gone; the card details never reach storage at
ingest; the page, the audit trail and the bundles say what was silenced, by whom and why."""
import datetime as dt
import io
import json
import os

import pytest
import sqlalchemy as sa

from callrec_plugin import redaction, silencing
from callrec_plugin.identity import Actor
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.ingest.pipeline import IngestError
from callrec_plugin.ingest.signing import signed_headers
from callrec_plugin.models import AuditEvent, Recording, Redaction, utcnow
from callrec_plugin.playback import open_plaintext
from tests import silencing_samples as samples
from tests.conftest import valid_csrf_token
from tests.test_silencing import check_exact

SECRET = "practice-A-shared-secret-for-tests"
MANAGER = Actor(user=None, ref="manager", name="Natalie Manager", roles=frozenset({"manager"}), practice_ref="pA")


@pytest.fixture
def app_config(app_config):
    return dict(app_config, CALLREC_API_SECRETS={"pA": SECRET})


def ingest(data, call_id="call-1", silence=None):
    return ingest_audio(io.BytesIO(data), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=1),
                        direction="inbound", from_number="+447700900001", to_number="201", source="api",
                        source_ref=call_id, silence=silence)


def stored_plaintext(db_session, recording_id):
    db_session.expire_all()
    recording = db_session.get(Recording, recording_id)
    with open_plaintext(recording) as reader:
        return reader.read()


def expected(data, intervals):
    source = io.BytesIO(data)
    plan = silencing.plan(source, silencing.parse_intervals(intervals))
    return silencing.silenced(source, plan).read()


def blob_path(app, key):
    return os.path.join(app.config["CALLREC_STORAGE_DIR"], *key.split("/"))


def all_blob_names(app):
    return {name for _, _, files in os.walk(app.config["CALLREC_STORAGE_DIR"]) for name in files}


# -- ingest: the card details never reach storage ---------------------------------------------------------


@pytest.mark.parametrize("sample", samples.all_samples(), ids=lambda s: s.name)
def test_ingest_silences_before_encryption_and_the_original_samples_are_nowhere(app, db_session, sample):
    interval = [[0.1, 0.3]]
    result = ingest(sample.data, silence=interval)
    assert result.status == "imported"
    plaintext = stored_plaintext(db_session, result.recording_id)
    check_exact(sample, sample.data, plaintext, interval)
    assert plaintext == expected(sample.data, interval)
    # The original bytes of the silenced interval: 0 hits in the stored plaintext, in 16-byte probes.
    patches = silencing.plan(io.BytesIO(sample.data), silencing.parse_intervals(interval)).patches
    patch = max(patches, key=lambda p: p.stop - p.start)
    secret = sample.data[patch.start:patch.stop]
    assert len(secret) >= 200
    hits = sum(plaintext.find(secret[i:i + 16]) != -1 for i in range(0, len(secret) - 16, 16))
    assert hits == 0
    row = db_session.scalar(sa.select(Redaction).where(Redaction.recording_id == result.recording_id))
    assert (row.source, row.reason, row.status) == ("pbx", "pbx_pause", "done")
    assert json.loads(row.ranges)[0][0] <= 0.1 and json.loads(row.ranges)[0][1] >= 0.3


def test_ingest_of_mp3_with_silence_is_refused_and_nothing_is_stored(app, db_session):
    mp3 = (bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(413)) * 200
    with pytest.raises(IngestError) as refused:
        ingest(mp3, silence=[[1, 2]])
    assert refused.value.status == 422
    assert "MP3 recordings cannot be silenced exactly" in refused.value.reason
    assert "Call Recording Format = wav" in refused.value.reason
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Recording)) == 0
    assert not all_blob_names(app)


def test_http_ingest_metadata_carries_silence(app, db_session):
    from tests.test_ingest_http import METADATA, multipart, post

    sample = samples.pcm_wav(seconds=3.0)
    body, content_type = multipart(sample.data, dict(METADATA, silence=[[1.0, 2.0]]))
    response = post(app.test_client(), body, content_type)
    assert response.status_code == 201, response.json
    assert stored_plaintext(db_session, response.json["id"]) == expected(sample.data, [[1.0, 2.0]])

    body, content_type = multipart(sample.data, dict(METADATA, call_id="x2", silence=[[2, 1]]))
    response = post(app.test_client(), body, content_type)
    assert response.status_code == 422 and "must end after it starts" in response.json["error"]


# -- the signed report after the call ----------------------------------------------------------------------


def post_silence(client, call_id, payload, practice="pA", secret=SECRET):
    path = f"/callrec/api/recordings/{call_id}/silence"
    body = json.dumps(payload).encode()
    headers = signed_headers(secret, practice, "POST", path, body)
    headers["Content-Type"] = "application/json"
    return client.post(path, data=body, headers=headers)


def test_signed_silence_report_rewrites_the_call_under_a_new_key(app, db_session):
    sample = samples.wav49(seconds=2.0)
    result = ingest(sample.data, call_id="pbx-77")
    before = db_session.get(Recording, result.recording_id)
    old_key, old_wrapped = before.storage_key, before.wrapped_key
    response = post_silence(app.test_client(), "pbx-77", {"silence": [[0.51, 0.75]]})
    assert response.status_code == 200, response.json
    assert response.json["silenced"] == [[0.5, 0.76]]  # rounded outward to whole 20 ms frames
    assert stored_plaintext(db_session, result.recording_id) == expected(sample.data, [[0.51, 0.75]])
    after = db_session.get(Recording, result.recording_id)
    assert after.storage_key != old_key and after.wrapped_key != old_wrapped
    assert not os.path.exists(blob_path(app, old_key))
    again = post_silence(app.test_client(), "pbx-77", {"silence": [[0.51, 0.75]]})
    assert again.status_code == 200 and db_session.get(Recording, result.recording_id).storage_key == after.storage_key


@pytest.mark.parametrize("payload, call_id, status, message", [
    ({"silence": [[1, 2]]}, "no-such-call", 404, "no recording with call_id"),
    ({"silence": "soon"}, "pbx-1", 400, "list of"),
    ({"pauses": []}, "pbx-1", 400, "send a JSON object"),
])
def test_silence_report_refusals(app, db_session, payload, call_id, status, message):
    ingest(samples.pcm_wav().data, call_id="pbx-1")
    response = post_silence(app.test_client(), call_id, payload)
    assert response.status_code == status and message in response.json["error"]


def test_silence_report_needs_a_valid_signature(app, db_session):
    ingest(samples.pcm_wav().data, call_id="pbx-1")
    assert post_silence(app.test_client(), "pbx-1", {"silence": [[0, 0.1]]}, secret="wrong").status_code == 401
    path = "/callrec/api/recordings/pbx-1/silence"
    body = json.dumps({"silence": [[0, 0.1]]}).encode()
    headers = signed_headers(SECRET, "pA", "POST", path, body)
    tampered = json.dumps({"silence": [[0, 0.9]]}).encode()  # same length, other bytes
    assert len(tampered) == len(body)
    assert app.test_client().post(path, data=tampered, headers=headers).status_code == 401
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Redaction)) == 0
    headers = signed_headers(SECRET, "pA", "POST", path, body)
    assert app.test_client().post(path, data=body, headers=headers).status_code == 200
    assert app.test_client().post(path, data=body, headers=headers).status_code == 409  # the nonce again


def test_silence_report_for_an_ogg_or_mp3_call_says_what_to_change(app, db_session):
    mp3 = (bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(413)) * 200
    ingest(mp3, call_id="pbx-mp3")
    response = post_silence(app.test_client(), "pbx-mp3", {"silence": [[1, 2]]})
    assert response.status_code == 409
    assert response.json["error"].startswith("MP3 recordings cannot be silenced exactly")


# -- redaction by owner or manager ---------------------------------------------------------------------------


@pytest.mark.parametrize("sample", samples.all_samples(), ids=lambda s: s.name)
def test_redaction_silences_exactly_and_shreds_the_old_blob_and_key(app, db_session, sample):
    result = ingest(sample.data)
    before = db_session.get(Recording, result.recording_id)
    old_key, old_wrapped, old_key_id = before.storage_key, before.wrapped_key, before.key_id
    # the file's start, overlapping, adjacent, edges inside GSM frames, and to the file's end
    intervals = [(0, 0.05), (0.1, 0.2), (0.15, 0.25), (0.25, 0.3125), (0.4, 99)]
    row = redaction.redact(result.recording_id, "pA", silencing.parse_intervals(intervals), actor=MANAGER,
                           reason="card_details")
    assert row.status == "done"
    stored = stored_plaintext(db_session, result.recording_id)
    check_exact(sample, sample.data, stored, intervals)  # decrypted, against the format's definition
    assert stored == expected(sample.data, intervals)
    after = db_session.get(Recording, result.recording_id)
    assert not os.path.exists(blob_path(app, old_key)), "the old blob is gone"
    assert os.path.exists(blob_path(app, after.storage_key))
    assert after.wrapped_key != old_wrapped and old_key_id  # the old wrapped key exists nowhere in the row
    stored = db_session.execute(sa.select(Recording.wrapped_key)).scalars().all()
    assert old_wrapped not in stored
    assert all_blob_names(app) == {after.storage_key.rsplit("/", 1)[1]}, "no orphan"
    event = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "redact", AuditEvent.outcome == "done"))
    assert event.actor_ref == "manager" and "Card details" in event.reason and "old data key destroyed" in event.reason


def test_redaction_of_a_range_past_the_end_is_refused(app, db_session):
    result = ingest(samples.pcm_wav(seconds=0.5).data)
    with pytest.raises(redaction.RedactionRefused, match="outside the recording"):
        redaction.redact(result.recording_id, "pA", silencing.parse_intervals([[5, 6]]), actor=MANAGER,
                         reason="card_details")


def test_redaction_in_another_practice_is_not_found(app, db_session):
    result = ingest(samples.pcm_wav().data)
    with pytest.raises(redaction.RedactionRefused) as refused:
        redaction.redact(result.recording_id, "pB", silencing.parse_intervals([[0, 0.1]]), actor=MANAGER,
                         reason="card_details")
    assert refused.value.status == 404


# -- the page ---------------------------------------------------------------------------------------------------


def redact_on_page(app, client, recording_id, start, end, reason="card_details", confirm=True):
    data = {"callrec-redact-start": start, "callrec-redact-end": end, "callrec-redact-reason": reason,
            "callrec-redact-csrf_token": valid_csrf_token(app, client)}
    if confirm:
        data["callrec-redact-confirm"] = "y"
    return client.post(f"/callrec/recordings/{recording_id}/redactions", data=data)


def test_manager_redacts_on_the_page_and_it_is_listed_with_who_when_why(app, db_session, login):
    sample = samples.pcm_wav(seconds=3.0)
    result = ingest(sample.data)
    manager = login("manager")
    response = redact_on_page(app, manager, result.recording_id, "0:01.5", "2")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert stored_plaintext(db_session, result.recording_id) == expected(sample.data, [[1.5, 2]])
    page = manager.get(f"/callrec/recordings/{result.recording_id}").get_data(as_text=True)
    assert "0:01.50 to 0:02.00" in page and "Card details (number, expiry date or security code)" in page
    assert "<td>Manager</td>" in page  # who (owner and manager see the name), when and why
    staff_view = login("reception").get(f"/callrec/recordings/{result.recording_id}").get_data(as_text=True)
    assert "0:01.50 to 0:02.00" in staff_view and "<td>Manager</td>" not in staff_view


def test_redaction_needs_confirmation_and_a_monitoring_role(app, db_session, login):
    result = ingest(samples.pcm_wav(seconds=3.0).data)
    manager = login("manager")
    assert redact_on_page(app, manager, result.recording_id, "1", "2", confirm=False).status_code == 400
    reception = login("reception")
    assert redact_on_page(app, reception, result.recording_id, "1", "2").status_code == 403
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Redaction)) == 0


def test_redaction_of_an_mp3_call_is_refused_on_the_page_with_the_reason(app, db_session, login):
    mp3 = (bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(413)) * 200
    result = ingest(mp3)
    owner = login("owner")
    page = owner.get(f"/callrec/recordings/{result.recording_id}").get_data(as_text=True)
    assert "This call cannot be redacted: MP3 recordings cannot be silenced exactly" in page
    response = redact_on_page(app, owner, result.recording_id, "1", "2")
    assert response.status_code == 409
    assert "MP3 recordings cannot be silenced exactly" in response.get_data(as_text=True)


def test_audio_served_after_redaction_is_the_silenced_one_with_a_new_validator(app, db_session, login):
    sample = samples.pcm_wav(seconds=3.0)
    result = ingest(sample.data)
    owner = login("owner")
    owner.post(f"/callrec/recordings/{result.recording_id}/grants",
               data={"action": "play", "purpose": "compliance", "csrf_token": valid_csrf_token(app, owner)})
    first = owner.get(f"/callrec/recordings/{result.recording_id}/audio")
    assert first.data == sample.data
    redact_on_page(app, owner, result.recording_id, "1", "2")
    resumed = owner.get(f"/callrec/recordings/{result.recording_id}/audio",
                        headers={"Range": "bytes=100-", "If-Range": first.headers["ETag"]})
    assert resumed.status_code == 200, "an If-Range naming the old audio must get the whole new file"
    assert resumed.data == expected(sample.data, [[1, 2]])
    page = owner.get(f"/callrec/recordings/{result.recording_id}").get_data(as_text=True)
    assert 'class="callrec-redacted"' in page and 'data-start="1.0"' in page and 'data-end="2.0"' in page


# -- bundles carry the notes ---------------------------------------------------------------------------------


def test_subject_access_bundle_carries_the_redaction_notes_without_staff_names(app, db_session, login, tmp_path):
    import csv
    import zipfile

    from tests import jobs_support as js

    sample = samples.pcm_wav(seconds=3.0)
    paused = ingest(sample.data, call_id="sar-1", silence=[[0.5, 1.0]])
    redaction.redact(paused.recording_id, "pA", silencing.parse_intervals([[2, 2.5]]), actor=MANAGER,
                     reason="card_details")
    client = login("dpo")
    export_id = js.request_bundle(client, app, "pat1")
    response = client.get(f"/callrec/exports/{export_id}/download")
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    js.unpack_and_verify(response.data, tmp_path)
    with zipfile.ZipFile(io.BytesIO(response.data)) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        notes = manifest["redactions"][paused.recording_id]
        assert [(n["silenced_seconds"], n["by"]) for n in notes] == [
            ([[0.5, 1.0]], "the phone system"), ([[2.0, 2.5]], "practice owner or manager")]
        rows = list(csv.DictReader(io.StringIO(bundle.read("redactions.csv").decode())))
        assert [row["reason"] for row in rows] == ["Paused by the phone system (card payment)",
                                                   "Card details (number, expiry date or security code)"]
        entry = next(c["file"] for c in manifest["calls"] if c["recording_id"] == paused.recording_id)
        assert bundle.read(entry) == expected(sample.data, [[0.5, 1.0], [2, 2.5]])
        assert b"Natalie" not in bundle.read("redactions.csv") and b"Manager" not in bundle.read("redactions.csv")


def test_two_redactions_of_one_call_at_once_both_apply(app, db_session):
    """The second was decided against the original file; the first swapped first. The second builds
    on the first's result (never a lost redaction, never two blobs left)."""
    sample = samples.pcm_wav(seconds=3.0)
    result = ingest(sample.data)
    original_key = db_session.get(Recording, result.recording_id).storage_key
    redaction.redact(result.recording_id, "pA", silencing.parse_intervals([[0.5, 1]]), actor=MANAGER,
                     reason="card_details")
    late = Redaction(recording_id=result.recording_id, practice_ref="pA", source="staff", reason="bank_details",
                     requested=redaction.intervals_json(silencing.parse_intervals([[2, 2.5]])), ranges="[[2.0, 2.5]]",
                     status="pending", old_storage_key=original_key, actor_ref="owner", actor_name="Owner")
    from callrec_plugin.playback import storage_backend

    late.new_storage_key = storage_backend().new_key(f"{result.recording_id}_late")
    db_session.add(late)
    db_session.commit()
    assert redaction.finish_interrupted() == 1
    assert stored_plaintext(db_session, result.recording_id) == expected(sample.data, [[0.5, 1], [2, 2.5]])
    recording = db_session.get(Recording, result.recording_id)
    assert all_blob_names(app) == {recording.storage_key.rsplit("/", 1)[1]}
    assert [r.status for r in db_session.scalars(sa.select(Redaction).order_by(Redaction.id))] == ["done", "done"]


def test_disclosure_bundle_carries_the_redaction_notes(app, db_session):
    import zipfile

    from callrec_plugin import exports

    sample = samples.pcm_wav(seconds=3.0)
    call = ingest(sample.data, call_id="disc-1")
    redaction.redact(call.recording_id, "pA", silencing.parse_intervals([[1, 1.5]]), actor=MANAGER,
                     reason="card_details")
    dpo = Actor(user=None, ref="dpo", name="Dpo", roles=frozenset({"dpo"}), practice_ref="pA")
    owner = Actor(user=None, ref="owner", name="Owner", roles=frozenset({"owner"}), practice_ref="pA")
    disclosure = exports.request_disclosure(dpo, recipient="Police, PC Smith", recipient_kind="law_enforcement",
                                            legal_basis="DPA 2018 Schedule 2 paragraph 2", reference="CRIME-1",
                                            recording_ids=[call.recording_id])
    disclosure_id = disclosure.id
    exports.approve_disclosure(owner, disclosure)
    db_session.expire_all()
    export_id = db_session.scalar(sa.select(exports.Export.id).where(exports.Export.disclosure_id == disclosure_id))
    exports.build_export(export_id)
    db_session.expire_all()
    with exports.open_bundle(db_session.get(exports.Export, export_id)) as reader:
        data = reader.read()
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        notes = json.loads(bundle.read("manifest.json"))["redactions"][call.recording_id]
        assert [(n["silenced_seconds"], n["reason"]) for n in notes] == [
            ([[1.0, 1.5]], "Card details (number, expiry date or security code)")]
        assert b"Card details" in bundle.read("redactions.csv")
