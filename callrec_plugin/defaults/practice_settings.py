"""Built-in answer to ``callrec_practice_settings``: every practice gets the app config's values."""
from flask import current_app

from callrec_plugin.hooks import hookimpl
from callrec_plugin.practice_settings import config_settings


@hookimpl(trylast=True)
def callrec_practice_settings(practice_ref):
    return config_settings(current_app.config)
