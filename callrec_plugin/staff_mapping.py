"""Who handled a call: the phone extension on it mapped to a member of staff by the host
(``callrec_staff_for_extension``), at ingest and again later by ``flask callrec staff remap``."""
import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from callrec_plugin import audit
from callrec_plugin.identity import SYSTEM
from callrec_plugin.models import Recording, RecordingStatus
from callrec_plugin.state import db_session, get_state

REMAP_BATCH = 500


@dataclass(frozen=True)
class StaffMember:
    ref: str
    name: str


def staff_for(extension, practice_ref, at):
    """The member of staff on ``extension`` in the practice at ``at``, or None if the host maps it to nobody."""
    if not extension:
        return None
    answer = get_state().pm.hook.callrec_staff_for_extension(extension=str(extension), practice_ref=practice_ref,
                                                           at=at)
    if not answer or not answer.get("ref"):
        return None
    ref = str(answer["ref"])[:64]
    return StaffMember(ref=ref, name=str(answer.get("name") or ref)[:128])


def _unmapped(practice_ref=None, since=None):
    query = sa.select(Recording).where(Recording.staff_extension.is_not(None), Recording.staff_user_ref.is_(None),
                                       Recording.status == RecordingStatus.ACTIVE)
    if practice_ref is not None:
        query = query.where(Recording.practice_ref == practice_ref)
    if since is not None:
        query = query.where(Recording.started_at >= since)
    return query.order_by(Recording.started_at, Recording.id)


def remap(since=None, practice_ref=None):
    """Fill in the staff of calls stored before their extension mapped to anyone. Returns (mapped, still unmapped)."""
    session = db_session()
    mapped = unmapped = 0
    after = None
    while True:
        query = _unmapped(practice_ref, since).limit(REMAP_BATCH)
        if after is not None:
            query = query.where(sa.tuple_(Recording.started_at, Recording.id) > after)
        batch = session.scalars(query).all()
        if not batch:
            break
        for recording in batch:
            member = staff_for(recording.staff_extension, recording.practice_ref, recording.started_at)
            if member is None:
                unmapped += 1
                continue
            recording.staff_user_ref, recording.staff_name = member.ref, member.name
            mapped += 1
        after = (batch[-1].started_at, batch[-1].id)
        session.commit()
    if mapped:
        audit.record("staff_remap", "done", actor=SYSTEM, practice_ref=practice_ref, object_type="recordings",
                     reason=f"{mapped} calls given their member of staff; {unmapped} extensions still map to nobody")
        session.commit()
    return mapped, unmapped


@dataclass(frozen=True)
class UnmappedExtension:
    extension: str
    calls: int
    first: dt.datetime
    last: dt.datetime


def unmapped_extensions(practice_ref):
    """Extensions on the practice's calls that map to nobody, with how many calls and when (one query)."""
    rows = db_session().execute(
        sa.select(Recording.staff_extension, sa.func.count(), sa.func.min(Recording.started_at),
                  sa.func.max(Recording.started_at))
        .where(Recording.practice_ref == practice_ref, Recording.staff_extension.is_not(None),
               Recording.staff_user_ref.is_(None), Recording.status == RecordingStatus.ACTIVE)
        .group_by(Recording.staff_extension)
        .order_by(sa.func.count().desc(), Recording.staff_extension)
    ).all()
    return [UnmappedExtension(extension, calls, _aware(first), _aware(last)) for extension, calls, first, last in rows]


def _aware(moment):
    # min()/max() over a TypeDecorator column come back as the driver gives them (naive UTC on SQLite).
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment
