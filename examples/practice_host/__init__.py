"""The demo host: a small practice-management system for "The Dental Implant Clinic" with callrec embedded.

From the repository root::

    flask --app examples.practice_host init-db           # the host's own tables
    flask --app examples.practice_host callrec db upgrade # callrec's tables
    flask --app examples.practice_host seed              # practices, staff, patients, complaints, calls
    flask --app examples.practice_host run

State lives under ``.demo/`` at the repository root (database, secret key, key file, encrypted audio).
"""
import logging
import os
import sys
import secrets
from pathlib import Path

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from callrec_plugin import CallRec
from callrec_plugin.config import from_environment

from . import login_sessions
from .database import private_database_file, private_directory, sqlite_file, tune_sqlite
from .models import ROLE_LABELS, Practice, db
from .throttling import throttle_login

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO_ROOT / ".demo"
DATABASE_ENV = "PRACTICE_HOST_DATABASE_URL"
TRUSTED_PROXIES_ENV = "PRACTICE_HOST_TRUSTED_PROXIES"  # how many reverse proxies sit in front (0: none)

HOST_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _demo_defaults():
    return {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{DEMO_DIR / 'practice.db'}",
        "CALLREC_STORAGE_DIR": str(DEMO_DIR / "storage"),
        "CALLREC_KEY_FILE": str(DEMO_DIR / "keys.txt"),
        "CALLREC_AUDIT_SIGNING_KEY_FILE": str(DEMO_DIR / "audit-signing.pem"),
        "CALLREC_BASE_TEMPLATE": "layout.html",
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_HTTPONLY": True,
        # Secure on every request that came over HTTPS anyway (_SessionInterface); True forces it always.
        "SESSION_COOKIE_SECURE": False,
        # The demo never sets a remember-me cookie; these are the safe values if a host does.
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "PRACTICE_HOST_NAME": "PracticeDesk",
    }


def _secret_key(path):
    """Read the demo's secret key, generating it (mode 0600) the first time."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_hex(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        return key


def _ensure_key_file(path):
    """Generate callrec's key-encryption key file if missing, and say where (stderr: not in command output)."""
    if not path or os.path.exists(path):
        return
    from callrec_plugin.keyring import generate_key_file

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    key_id = generate_key_file(path)
    print(f"callrec demo: generated key-encryption key {key_id} in {path} "
          "(a demo key: keep real keys outside the application's directory)", file=sys.stderr)


def _ensure_signing_key(path):
    """Generate the Ed25519 key that signs audit checkpoints if missing (PKCS#8 PEM, mode 0600)."""
    if not path or os.path.exists(path):
        return
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie is ``Secure`` whenever the request came over HTTPS (directly, or through
    a proxy trusted with PRACTICE_HOST_TRUSTED_PROXIES), or always with SESSION_COOKIE_SECURE."""

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (has_request_context() and request.is_secure)


def _session_cookies(app):
    app.session_interface = _SessionInterface()
    proxies = int(os.environ.get(TRUSTED_PROXIES_ENV) or app.config.get(TRUSTED_PROXIES_ENV) or 0)
    if proxies:
        # Behind a TLS-terminating proxy: believe its X-Forwarded-Proto/-For (so request.is_secure and
        # the throttling's client address are the real ones), from exactly that many proxies.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)


def create_app(test_config=None):
    """The demo PMS with callrec embedded. ``test_config`` overrides everything, then the environment."""
    app = Flask(__name__)
    app.config.from_mapping(_demo_defaults())
    for key in _demo_defaults():  # the demo's defaults give way to CALLREC_* set in the environment
        if key.startswith("CALLREC_") and key in os.environ:
            app.config[key] = from_environment(key, os.environ[key])
    if os.environ.get(DATABASE_ENV):
        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ[DATABASE_ENV]
    if test_config:
        app.config.from_mapping(test_config)

    uses_demo_dir = any(
        str(app.config.get(key) or "").find(str(DEMO_DIR)) >= 0
        for key in ("SQLALCHEMY_DATABASE_URI", "CALLREC_STORAGE_DIR", "CALLREC_KEY_FILE",
                    "CALLREC_AUDIT_SIGNING_KEY_FILE")
    )
    if uses_demo_dir:
        private_directory(DEMO_DIR)  # 0700: the database, keys and audio of a practice
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(DEMO_DIR / "secret_key")
    if app.config.get("CALLREC_STORAGE_DIR"):
        os.makedirs(app.config["CALLREC_STORAGE_DIR"], mode=0o700, exist_ok=True)
    _ensure_key_file(app.config.get("CALLREC_KEY_FILE"))
    _ensure_signing_key(app.config.get("CALLREC_AUDIT_SIGNING_KEY_FILE"))

    database_file = sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])
    if database_file:
        private_database_file(database_file)  # 0600 before SQLite creates it with the umask's mode
    db.init_app(app)
    with app.app_context():
        tune_sqlite(db.engine)  # WAL and a busy timeout: concurrent users queue for the write lock
    _session_cookies(app)
    login_manager = LoginManager()
    login_manager.login_view = "login"
    login_manager.login_message = "Please sign in to see this page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    login_manager.init_app(app)

    # Only while the cookie's server-side session is live: logout revokes it (login_sessions.py).
    login_manager.user_loader(login_sessions.load_user)

    CSRFProtect(app)
    CallRec(app)

    from . import integrator

    pm = app.extensions["callrec"].pm
    pm.register(integrator, name="practice_host")
    pm.check_pending()

    from .commands import register_commands
    from .views import register_views

    register_views(app)
    throttle_login(app)  # failed sign-ins are counted; the sixth for a username in 15 minutes gets 429
    register_commands(app)

    @app.context_processor
    def host_context():
        practice = None
        if current_user.is_authenticated:
            practice = db.session.get(Practice, current_user.practice_id)
        return {"current_practice": practice, "role_labels": ROLE_LABELS,
                "host_name": app.config["PRACTICE_HOST_NAME"]}

    @app.after_request
    def host_security_headers(response):
        # callrec sets the same headers on its own pages; these cover the host's.
        if request.blueprint != "callrec":
            for name, value in HOST_SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        if current_user.is_authenticated:
            response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    return app
