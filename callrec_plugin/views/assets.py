"""callrec's stylesheet, served from the installed package (no static folder to misconfigure)."""
from importlib.resources import files

from flask import Response

from callrec_plugin.views import blueprint

ROUTES = {"callrec.stylesheet": None}

_STYLESHEET = files("callrec_plugin.templates").joinpath("callrec/callrec.css")


@blueprint.route("/static/callrec.css")
def stylesheet():
    response = Response(_STYLESHEET.read_text(encoding="utf-8"), mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
