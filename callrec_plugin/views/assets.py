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


# Small scripts of callrec's pages (the CSP forbids inline script); each page works without them.
ROUTES.update({"callrec.holds_script": None, "callrec.export_script": None})


def _script(name):
    text = files("callrec_plugin.templates").joinpath(f"callrec/{name}").read_text(encoding="utf-8")
    response = Response(text, mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.route("/static/callrec-holds.js")
def holds_script():
    return _script("holds.js")


@blueprint.route("/static/callrec-export.js")
def export_script():
    return _script("export.js")
