"""The Python ingest API: stored encrypted, linked to the patient, idempotent, refusals lose nothing."""
import datetime as dt
import io
import os

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest import IngestError, ingest_audio
from callrec_plugin.models import AuditEvent, PatientObjection, Recording
from callrec_plugin.playback import open_plaintext
from tests.audio_samples import wav_bytes

STARTED = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.timezone.utc)


def call(audio, **overrides):
    metadata = dict(practice_ref="pA", started_at=STARTED, direction="inbound", from_number="07700 900001",
                    to_number="201", source="python", source_ref="call-1", staff_extension="201",
                    staff_name="Rita Reception")
    metadata.update(overrides)
    return ingest_audio(io.BytesIO(audio), **metadata)


def stored_files(app):
    root = app.config["CALLREC_STORAGE_DIR"]
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def test_ingest_stores_encrypted_links_patient_and_audits(app, db_session):
    audio = wav_bytes(4.0)
    result = call(audio)
    assert result.status == "imported"
    recording = db_session.get(Recording, result.recording_id)
    assert recording.patient_ref == "pat1"
    assert recording.external_number == "+447700900001"
    assert recording.to_number == "ext:201"
    assert recording.duration_seconds == pytest.approx(4.0, abs=0.01)
    # six calendar months on the London calendar: 09:30 GMT on 2 November -> 09:30 BST on 2 May
    assert recording.retain_until == dt.datetime(2027, 5, 2, 8, 30, tzinfo=dt.timezone.utc)
    assert recording.mime_type == "audio/wav" and recording.plaintext_size == len(audio)
    (blob,) = stored_files(app)
    data = open(blob, "rb").read()
    assert data.startswith(b"CRE1") and b"RIFF" not in data and audio[200:264] not in data
    reader = open_plaintext(recording)
    assert reader.read() == audio
    reader.close()
    events = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "ingest")).all()
    assert [(e.recording_id, e.outcome, e.actor_ref) for e in events] == [(recording.id, "done", "system")]


def test_same_call_twice_adds_nothing(app, db_session):
    first, second = call(wav_bytes()), call(wav_bytes())
    assert (first.status, second.status) == ("imported", "duplicate")
    assert second.recording_id == first.recording_id
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Recording)) == 1
    assert len(stored_files(app)) == 1


@pytest.mark.parametrize("audio,status,words", [
    (b"", 415, "empty"),
    (b"%PDF-1.7 not audio at all" * 20, 415, "PDF"),
    (wav_bytes(3.0)[:-4000], 415, "truncated"),
])
def test_bad_audio_is_refused_with_a_reason_and_leaves_nothing(app, db_session, audio, status, words):
    with pytest.raises(IngestError) as refused:
        call(audio)
    assert refused.value.status == status and words.lower() in refused.value.reason.lower()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Recording)) == 0
    assert stored_files(app) == []


def test_oversized_audio_is_413(app, db_session):
    app.config["CALLREC_MAX_AUDIO_BYTES"] = 10_000
    with pytest.raises(IngestError) as refused:
        call(wav_bytes(3.0))
    assert refused.value.status == 413
    assert stored_files(app) == []


def test_short_calls_are_flagged_or_dropped_as_configured(app, db_session):
    flagged = call(wav_bytes(1.0), source_ref="short-1")
    assert db_session.get(Recording, flagged.recording_id).short_call is True
    app.config["CALLREC_SHORT_CALLS"] = "drop"
    dropped = call(wav_bytes(1.0), source_ref="short-2")
    assert dropped.status == "skipped" and dropped.recording_id is None


def test_withheld_numbers_stay_withheld_and_link_no_patient(app, db_session):
    result = call(wav_bytes(), from_number="Anonymous")
    recording = db_session.get(Recording, result.recording_id)
    assert recording.from_number == "withheld" and recording.patient_ref is None


@pytest.mark.parametrize("number", ["9" * 40, "DROP TABLE", "../../etc/passwd", "☎️☎️"])
def test_garbage_numbers_are_refused_clearly(app, db_session, number):
    with pytest.raises(IngestError, match="from_number"):
        call(wav_bytes(), from_number=number)
    assert stored_files(app) == []


def test_bad_metadata_is_refused(app, db_session):
    with pytest.raises(IngestError, match="timezone-aware"):
        call(wav_bytes(), started_at=dt.datetime(2026, 1, 1))
    with pytest.raises(IngestError, match="direction"):
        call(wav_bytes(), direction="sideways")


def test_a_call_from_a_patient_who_objected_is_flagged(app, db_session, login):
    db_session.add(PatientObjection(practice_ref="pA", patient_ref="pat1", recorded_by_ref="reception"))
    db_session.commit()
    recording = db_session.get(Recording, call(wav_bytes()).recording_id)
    assert recording.recorded_despite_objection is True
    page = login("reception").get("/patients/pat1").get_data(as_text=True)
    assert "Recorded after objection" in page
