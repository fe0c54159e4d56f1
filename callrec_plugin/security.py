"""Security headers on callrec's responses, the CSRF exemption of the signed ingest API, error pages."""
from flask import current_app, jsonify, render_template, request

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def is_callrec_request(app):
    prefix = app.config["CALLREC_URL_PREFIX"].rstrip("/") + "/"
    return request.blueprint == "callrec" or request.path.startswith(prefix)


def install_security(app):
    """Headers on every callrec response; the signed ingest API exempt from the host's CSRFProtect."""

    @app.after_request
    def callrec_security_headers(response):
        if is_callrec_request(app):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    exempt_signed_api(app)

    @app.before_request
    def callrec_exempt_signed_api():
        # Registered before a CSRFProtect set up after callrec, so its check already sees the exemption.
        exempt_signed_api(app)


SIGNED_API_VIEW = "callrec_plugin.views.ingest_api.ingest_recording"
# The phone system's signed report of paused intervals after the call was sent (views/silence_api.py).
SIGNED_SILENCE_VIEW = "callrec_plugin.views.silence_api.report_silence"


def exempt_signed_api(app):
    """Exempt the HMAC-signed ingest API (and nothing else) from the host's CSRFProtect, whenever it was set up."""
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(SIGNED_API_VIEW)
        csrf.exempt(SIGNED_SILENCE_VIEW)


def is_api_request(app):
    """Under callrec's /api/: answered in JSON whatever went wrong, for a phone system, not a person."""
    return request.path.startswith(app.config["CALLREC_URL_PREFIX"].rstrip("/") + "/api/")


def render_error(status, title, message):
    if is_api_request(current_app):
        return jsonify(error=message or title), status
    return render_template("callrec/error.html", status=status, title=title, message=message), status
