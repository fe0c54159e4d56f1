"""Rows for tests that need recordings' metadata but not their audio."""
import datetime as dt
import itertools

from callrec_plugin.models import Recording, utcnow

_counter = itertools.count(1)


def add_recording(session, practice_ref="pA", patient_ref="pat1", started_at=None, **fields):
    started_at = started_at or utcnow() - dt.timedelta(days=3)
    number = next(_counter)
    recording = Recording(
        practice_ref=practice_ref,
        patient_ref=patient_ref,
        direction=fields.pop("direction", "inbound"),
        started_at=started_at,
        duration_seconds=fields.pop("duration_seconds", 65.0),
        external_number=fields.pop("external_number", "+447700900001"),
        staff_name=fields.pop("staff_name", "Reception Desk"),
        retain_until=fields.pop("retain_until", started_at + dt.timedelta(days=183)),
        source=fields.pop("source", "test"),
        source_ref=fields.pop("source_ref", f"test-{number}"),
        mime_type="audio/wav",
        audio_format="wav",
        **fields,
    )
    session.add(recording)
    session.commit()
    return recording
