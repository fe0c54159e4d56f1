"""Sign-in throttling with Flask-Limiter: a password cannot be guessed at speed.

Only failed sign-ins count (``deduct_when``): five for one username in 15 minutes, or thirty from
one address, and every further attempt — the right password included — is answered 429 with
``Retry-After`` until the window has passed. A colleague who mistypes twice is never slowed; a
script trying a list of passwords stops at five.

The counters live where the demo keeps its state: in its Redis (``CALLREC_REDIS_URL``) when it has
one, so that several server processes share them; otherwise in the memory of the one embedded
server process (the default demo), where a restart forgets them. ``RATELIMIT_STORAGE_URI`` overrides.
"""
from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

PER_USERNAME = "5 per 15 minutes"
PER_ADDRESS = "30 per 15 minutes"


def _username():
    return "user:" + (request.form.get("username") or "").strip().lower()[:64]


def _failed(response):
    return response.status_code != 302  # a successful sign-in redirects; anything else was refused


def throttle_login(app, endpoint="login"):
    """Put the sign-in view of ``app`` behind the limits above; returns the Limiter."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("CALLREC_REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)  # Retry-After on the 429
    limiter = Limiter(key_func=get_remote_address, app=app)
    view = app.view_functions[endpoint]
    view = limiter.limit(PER_USERNAME, key_func=_username, methods=["POST"], deduct_when=_failed,
                         scope="login-username")(view)
    view = limiter.limit(PER_ADDRESS, methods=["POST"], deduct_when=_failed, scope="login-address")(view)
    app.view_functions[endpoint] = view
    return limiter
