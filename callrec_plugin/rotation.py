"""Key rotation: re-wrap every recording's data key with the newest key-encryption key.

Only the small wrapped keys change, never the audio. Each batch commits on its own, so a rotation
killed part way resumes where it stopped: the next run simply finds fewer rows on old keys.
"""
from collections import Counter

import sqlalchemy as sa

from callrec_plugin import audit
from callrec_plugin.identity import SYSTEM
from callrec_plugin.models import Recording


def key_usage(session):
    """{key_id: number of recordings whose data key it wraps} (purged recordings have none)."""
    rows = session.execute(
        sa.select(Recording.key_id, sa.func.count()).where(Recording.wrapped_key.is_not(None))
        .group_by(Recording.key_id)
    )
    return Counter({key_id: count for key_id, count in rows})


def rotate(session, ring, batch_size=500, progress=None):
    """Re-wrap data keys not on ring.newest_id, a batch per transaction; returns the number re-wrapped."""
    newest, done = ring.newest_id, 0
    remaining = session.scalar(sa.select(sa.func.count()).select_from(_on_old_keys(ring).subquery()))
    while True:
        batch = session.scalars(
            _on_old_keys(ring).order_by(Recording.id).limit(batch_size).with_for_update(skip_locked=True)
        ).all()
        if not batch:
            break
        for recording in batch:
            key_id, wrapped = ring.rewrap(recording.wrapped_key, recording.key_id, recording.id)
            # Only onto the key read above: SQLite takes no row lock, and a purge (key destroyed) or a
            # redaction (a new key for a new file) committed since must not be undone by the old key.
            session.execute(
                sa.update(Recording)
                .where(Recording.id == recording.id, Recording.key_id == recording.key_id,
                       Recording.wrapped_key == recording.wrapped_key)
                .values(key_id=key_id, wrapped_key=wrapped).execution_options(synchronize_session=False))
        session.commit()
        done += len(batch)
        if progress:
            progress(done, remaining)
    if done:
        audit.record("keys_rotated", "done", actor=SYSTEM, object_type="key", object_id=newest,
                     reason=f"{done} data keys re-wrapped to {newest}")
        session.commit()
    return done


def _on_old_keys(ring):
    """Recordings wrapped by an older key of the ring (keys missing from the ring are reported by status)."""
    old = [key_id for key_id in ring.ids if key_id != ring.newest_id]
    return sa.select(Recording).where(Recording.wrapped_key.is_not(None), Recording.key_id.in_(old))
