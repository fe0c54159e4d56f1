"""Per-app state and its accessors: a leaf module that imports nothing else from callrec.

Every module that needs the host's session or callrec's plugin manager takes it from here, so that
``extension.py`` (which wires views, CLI and hooks into the app) is imported by nobody but the host.
"""
from dataclasses import dataclass, field

from flask import current_app


class CallRecSetupError(RuntimeError):
    """callrec was set up in a way that cannot work; the message says what to change."""


@dataclass
class CallRecState:
    """What callrec keeps per app, in ``app.extensions["callrec"]``."""

    extension: object
    pm: object
    db: object
    failed_plugins: list = field(default_factory=list)
    cache: dict = field(default_factory=dict)  # derived from config (the key ring), rebuilt when it changes
    plugins_checked: bool = False  # check_pending ran after the host registered its own plugins

    @property
    def session(self):
        return self.db.session


def get_state(app=None):
    """The callrec state of the app (current_app by default), with a clear error if there is none."""
    app = app or current_app
    try:
        return app.extensions["callrec"]
    except KeyError:
        raise CallRecSetupError(
            "callrec is not initialised on this app: call CallRec(app) or callrec.init_app(app)."
        ) from None


def db_session():
    """The host's SQLAlchemy session, which callrec shares."""
    return get_state().session
