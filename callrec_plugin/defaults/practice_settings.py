"""Built-in answers about a practice, used only when no host plugin answers: the app config's settings,
and no name (callrec never knows a practice's name by itself)."""
from flask import current_app

from callrec_plugin.hooks import hookimpl
from callrec_plugin.practice_settings import config_settings


@hookimpl(trylast=True)
def callrec_practice_settings(practice_ref):
    return config_settings(current_app.config)


@hookimpl(trylast=True)
def callrec_practice_summary(practice_ref):
    # Without the host's name the practice goes unnamed: its ref is an id, never shown to a person.
    return None
