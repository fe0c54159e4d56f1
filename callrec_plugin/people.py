"""The names of the people callrec's rows name by ref, for pages a person reads.

A row written now keeps the actor's name (``*_by_name`` columns). For rows that do not, the audit
trail has the name the host gave each person every time they acted: the latest one is used, so a
member of staff who has left still reads by name.
"""
import sqlalchemy as sa
from flask import g, has_request_context

from callrec_plugin.models import AuditEvent
from callrec_plugin.state import db_session


def name_of(practice_ref, user_ref):
    """The name ``user_ref`` last acted under in the practice's audit trail, or None."""
    if not user_ref:
        return None
    cache = g.setdefault("_callrec_people", {}) if has_request_context() else {}
    key = (practice_ref, user_ref)
    if key not in cache:
        cache[key] = db_session().scalar(
            sa.select(AuditEvent.actor_name).where(AuditEvent.practice_ref == practice_ref,
                                                   AuditEvent.actor_ref == user_ref,
                                                   AuditEvent.actor_name.is_not(None))
            .order_by(AuditEvent.seq.desc()).limit(1))
    return cache[key]


def display_name(practice_ref, user_ref, kept_name=None):
    """The name to show: the one kept on the row, else the audit trail's, else "someone" (never the ref)."""
    return kept_name or name_of(practice_ref, user_ref) or "a person callrec has no name for"
