"""Who is asking: the current user as callrec sees them (ref, name, roles, practice)."""
from dataclasses import dataclass

import flask_login
from flask import g

from callrec_plugin.state import get_state
from callrec_plugin.roles import ROLES


@dataclass(frozen=True)
class Actor:
    user: object
    ref: str | None
    name: str
    roles: frozenset
    practice_ref: str | None

    @property
    def authenticated(self):
        return self.ref is not None

    def has_any(self, roles):
        return bool(self.roles & set(roles))


ANONYMOUS = Actor(user=None, ref=None, name="anonymous", roles=frozenset(), practice_ref=None)
SYSTEM = Actor(user=None, ref="system", name="callrec system", roles=frozenset(), practice_ref=None)


def actor_for(user):
    """Ask the host's hooks about a user; unknown role names are ignored (deny by default)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS
    hook = get_state().pm.hook
    roles = frozenset(role for role in (hook.callrec_user_roles(user=user) or ()) if role in ROLES)
    identity = hook.callrec_user_ref(user=user) or {}
    practice_ref = hook.callrec_practice_ref(user=user)
    return Actor(
        user=user,
        ref=str(identity.get("ref") or user.get_id()),
        name=str(identity.get("name") or identity.get("ref") or user.get_id()),
        roles=roles,
        practice_ref=None if practice_ref is None else str(practice_ref),
    )


def current_actor():
    """The Actor for the current user, asked of the hooks once per user per request."""
    user = flask_login.current_user._get_current_object()
    cached = g.get("_callrec_actor")
    if cached is None or cached.user is not user:
        cached = g._callrec_actor = actor_for(user)
    return cached
