"""Server-side sign-in sessions: signing out really ends the session.

Flask's session is a signed cookie the browser keeps: clearing it on logout does not stop a copy of
the old cookie (in another tab, a proxy's log, a stolen laptop) from working until the secret key
changes. So each sign-in gets a row here, its random id goes into the cookie, and every request's
user is loaded only while that row exists and is not revoked. Logout revokes the row; the old
cookie then finds nothing and is sent to the sign-in page.
"""
import secrets

import sqlalchemy as sa
from flask import session
from flask_login import login_user, logout_user
from sqlalchemy.orm import Mapped, mapped_column

from .models import Staff, db, utcnow

SESSION_KEY = "login_session"


class LoginSession(db.Model):
    __tablename__ = "host_login_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # random, in the session cookie
    staff_id: Mapped[int] = mapped_column(sa.Integer, index=True)
    created_at: Mapped[object] = mapped_column(sa.DateTime)
    revoked_at: Mapped[object | None] = mapped_column(sa.DateTime, nullable=True)


def start(staff):
    """Sign ``staff`` in with a fresh server-side session (the old cookie's content is dropped)."""
    session.clear()
    entry = LoginSession(id=secrets.token_urlsafe(32), staff_id=staff.id, created_at=utcnow())
    db.session.add(entry)
    db.session.commit()
    session[SESSION_KEY] = entry.id
    login_user(staff)


def load_user(user_id):
    """Flask-Login's user loader: the staff member, only while this cookie's session is live."""
    try:
        staff_id = int(user_id)
    except (TypeError, ValueError):
        return None
    session_id = session.get(SESSION_KEY)
    if not isinstance(session_id, str):
        return None
    live = db.session.scalar(sa.select(LoginSession.id).where(
        LoginSession.id == session_id, LoginSession.staff_id == staff_id, LoginSession.revoked_at.is_(None)))
    if live is None:
        return None
    staff = db.session.get(Staff, staff_id)
    return staff if staff is not None and staff.is_active else None


def end():
    """Sign out: revoke this session on the server, then forget it in the browser."""
    session_id = session.get(SESSION_KEY)
    if isinstance(session_id, str):
        db.session.execute(sa.update(LoginSession).where(LoginSession.id == session_id,
                                                         LoginSession.revoked_at.is_(None))
                           .values(revoked_at=utcnow()))
        db.session.commit()
    logout_user()
    session.clear()
