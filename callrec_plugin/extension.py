"""The CallRec extension object: init_app, per-app state and the error messages for misuse."""
import os

from callrec_plugin.config import apply_defaults
from callrec_plugin.manager import make_plugin_manager
from callrec_plugin.state import CallRecSetupError, CallRecState, get_state

__all__ = ["CallRec", "CallRecSetupError", "get_state"]


class CallRec:
    """Embed callrec in a Flask app that already has Flask-SQLAlchemy and Flask-Login set up."""

    def __init__(self, app=None):
        if app is not None:
            self.init_app(app)

    def init_app(self, app):
        _check_host(app)
        apply_defaults(app)
        _check_storage_outside_static(app)
        pm, failed = make_plugin_manager(
            load_entry_points=app.config["CALLREC_LOAD_ENTRY_POINTS"],
            strict=app.config["CALLREC_STRICT_PLUGINS"],
        )
        app.extensions["callrec"] = CallRecState(
            extension=self, pm=pm, db=app.extensions["sqlalchemy"], failed_plugins=failed
        )
        _register_web(app)
        _register_cli(app, pm)

    def complaint_closed(self, complaint_ref):
        """Tell callrec a complaint was closed (inside an app context): its complaint holds are released
        and the grace period starts. The same as calling the hook callrec_complaint_closed."""
        get_state().pm.hook.callrec_complaint_closed(complaint_ref=str(complaint_ref))


def _check_host(app):
    if "callrec" in app.extensions:
        raise CallRecSetupError(
            "callrec is already registered on this app: call CallRec(app) or init_app(app) once per app."
        )
    if "sqlalchemy" not in app.extensions:
        raise CallRecSetupError(
            "callrec needs Flask-SQLAlchemy on the host: create db = SQLAlchemy(app) (or db.init_app(app)) "
            "before CallRec(app). callrec uses the host's session and engine and never makes its own."
        )
    if getattr(app, "login_manager", None) is None:
        raise CallRecSetupError(
            "callrec needs Flask-Login on the host: call LoginManager().init_app(app) before CallRec(app). "
            "callrec reads current_user and never makes its own LoginManager."
        )


def _check_storage_outside_static(app):
    # Flask would serve anything under its static folder to anyone, bypassing the policy.
    storage = os.path.realpath(app.config["CALLREC_STORAGE_DIR"])
    for static in filter(None, [app.static_folder, *(bp.static_folder for bp in app.blueprints.values())]):
        static = os.path.realpath(static)
        if os.path.commonpath([storage, static]) == static:
            raise CallRecSetupError(
                f"CALLREC_STORAGE_DIR ({storage}) is inside the static folder {static}, which Flask serves to "
                "anyone: put callrec's storage outside every static folder."
            )


def _register_web(app):
    from callrec_plugin.formatting import FILTERS, install_display_filter
    from callrec_plugin.security import install_security
    from callrec_plugin.slots import callrec_menu_links, callrec_slot
    from callrec_plugin.views import blueprint

    app.register_blueprint(blueprint, url_prefix=app.config["CALLREC_URL_PREFIX"])
    app.jinja_env.globals["callrec_slot"] = callrec_slot
    app.jinja_env.globals["callrec_menu_links"] = callrec_menu_links
    app.jinja_env.filters.update(FILTERS)
    install_display_filter(app)  # bidi and invisible controls shown escaped on callrec's pages, stored as received
    install_security(app)

    @app.before_request
    def callrec_check_plugins():
        # The host registers its integration after init_app: a misspelt hook there is caught here, at
        # the first request, instead of being silently never called.
        state = app.extensions["callrec"]
        if not state.plugins_checked:
            state.pm.check_pending()
            state.plugins_checked = True


def _register_cli(app, pm):
    from callrec_plugin.cli import make_cli

    group = make_cli()
    pm.hook.callrec_register_commands(cli=group)
    app.cli.add_command(group)
