"""callrec's blueprint. ROUTE_ACTIONS names the policy action every route needs (a test checks it is complete)."""
import functools
import importlib
from dataclasses import dataclass
from importlib.resources import files

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, make_response, render_template, request
from flask_wtf.csrf import CSRFError

from callrec_plugin import audit
from callrec_plugin.audit import AuditWriteError, request_id
from callrec_plugin.crypto import TamperedError
from callrec_plugin.formatting import call_label
from callrec_plugin.state import db_session
from callrec_plugin.identity import current_actor
from callrec_plugin.keyring import KeyRingError
from callrec_plugin.models import Recording
from callrec_plugin.people import display_name
from callrec_plugin.policy import authorize
from callrec_plugin.security import is_api_request, render_error

blueprint = Blueprint("callrec", __name__, template_folder=str(files("callrec_plugin.templates")))

# The view modules; each declares ROUTES = {endpoint: the policy action it needs, or None}.
VIEW_MODULES = (
    "assessments",
    "assets",
    "audit_log",
    "call_log",
    "disclosures",
    "evidence",
    "exports",
    "holds",
    "ingest_api",
    "jobs",
    "monitoring",
    "objections",
    "pbx_api",
    "recordings",
    "redactions",
    "retention",
    "silence_api",
    "staff",
    "subject_access",
    "training",
)


FORM_EXPIRED = "The form was not valid (it may have expired): reload the page and try again."


def form_errors(form):
    return "; ".join(message for messages in form.errors.values() for message in messages)


@dataclass(frozen=True)
class FormPage:
    """How a form is shown again when what was sent is not valid: the page's title, the form's button,
    and the page the form came from (a host page for the panels' forms) to go back to without sending."""

    title: str
    submit: object  # the button's label, or [{"label", "name", "value"}] for a choice made by button
    back_url: str
    back_label: str
    only: tuple = None  # the fields shown, when the form has some that this button does not use


def shown_again(form, page, status=400):
    """Answer with the form shown again (templates/callrec/form_again.html): the person's input kept, each
    error beside its field, a fresh CSRF token, a way back. Nothing the request did is kept: the caller
    audits a refusal first if its view audits one."""
    db_session().rollback()
    html = render_template("callrec/form_again.html", form=form, page=page, action=request.path)
    abort(make_response(html, status))


def submitted_or_shown_again(form, page):
    """The form, if it was posted valid (CSRF token included); else the same form shown again saying
    what is wrong, beside each field (no "Bad request" page for anything a person can type)."""
    if not form.validate_on_submit():
        shown_again(form, page)
    return form


def allowed_or_403(actor, action, recording=None, **details):
    """The policy's decision, audited; a refusal is a 403 with its reason."""
    decision = authorize(actor, action, recording, **details)
    if not decision:
        abort(403, decision.reason)
    return decision


def refused(status, actor, action, refusal, **audit_fields):
    """Undo what the request changed, audit the refusal once, answer ``status`` (a 404 says no more)."""
    db_session().rollback()
    audit.record(action, "denied", actor=actor, reason=str(refusal), **audit_fields)
    db_session().commit()
    abort(status, None if status == 404 else str(refusal))


def refused_409(actor, action, refusal, **audit_fields):
    """A rule of the service refused the change: undo it, audit the refusal, answer 409 with its reason."""
    refused(409, actor, action, refusal, **audit_fields)


# What reading a stored recording or bundle raises when it cannot be served.
UNREADABLE = (TamperedError, KeyRingError, FileNotFoundError)


def unreadable_500(actor, action, damage, **audit_fields):
    """Stored audio or a bundle is missing or failed its integrity check: nothing is served, the failure
    is audited and logged, and the page says so (a tampered file must be noticed, not shown as a glitch)."""
    db_session().rollback()
    if isinstance(damage, FileNotFoundError):
        reason = "the encrypted file is missing from storage"
    elif isinstance(damage, KeyRingError):
        reason = f"the file's key-encryption key is not available ({damage})"[:500]
    else:
        reason = f"the encrypted file failed its integrity check ({type(damage).__name__}: {damage})"[:500]
    current_app.logger.error("callrec %s refused, request %s: %s", action, request_id(), reason)
    audit.record(action, "failed", actor=actor, reason=reason, **audit_fields)
    db_session().commit()
    return render_error(500, "The file cannot be read",
                        "The stored file is missing, its key is unavailable, or it failed its integrity check, so "
                        "nothing was served. "
                        f"This was written to the audit trail (reference {request_id()}); tell the practice "
                        "manager or data protection lead.")


def login_required(view):
    """Like flask_login.login_required, but through the host's LoginManager and callrec's identity."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not current_actor().authenticated:
            return current_app.login_manager.unauthorized()
        return view(*args, **kwargs)

    return wrapper


# The largest id an INTEGER column holds (PostgreSQL's is 32-bit; the ids in callrec's URLs are INTEGER):
# a larger <int:...> in a URL names nothing.
MAX_ROW_ID = 2**31 - 1


@blueprint.url_value_preprocessor
def ids_a_database_can_hold(endpoint, values):
    """``/holds/4314526296588736/release`` is a 404 like any other missing id, not an overflow in the
    database or its driver (a 500)."""
    if values and any(isinstance(value, int) and not 0 <= value <= MAX_ROW_ID for value in values.values()):
        abort(404)


@blueprint.context_processor
def policy_in_templates():
    """``callrec_may(action, recording)``: a page offers an action only to whoever may take it now (the
    policy's own decision, without an audit event: nothing is retrieved by asking)."""
    from callrec_plugin.policy import decide

    return {"callrec_may": lambda action, recording=None: decide(current_actor(), action, recording).allowed}


@blueprint.app_template_global("callrec_person_name")
def person_name(practice_ref, user_ref, kept_name=None):
    """people.display_name for templates: a person by name (kept on the row, else the audit trail's),
    never by the ref."""
    return display_name(practice_ref, user_ref, kept_name)


@blueprint.app_template_global("callrec_call_label")
def call_label_of(recording_id):
    """formatting.call_label for a call of the user's practice known only by its id."""
    started = db_session().scalar(sa.select(Recording.started_at).where(
        Recording.id == recording_id, Recording.practice_ref == current_actor().practice_ref))
    return call_label(started)


@blueprint.errorhandler(403)
def forbidden(error):
    return render_error(403, "Not allowed", getattr(error, "description", None) or "You may not do this.")


@blueprint.errorhandler(404)
def not_found(error):
    return render_error(404, "Not found", "There is no such recording or page in your practice.")


@blueprint.errorhandler(AuditWriteError)
def audit_unavailable(error):
    # Nothing may happen that the audit trail cannot record.
    return render_error(503, "Audit trail unavailable",
                        "The audit trail could not be written, so nothing was done. Try again shortly.")


@blueprint.errorhandler(500)
def internal_error(error):
    # Never a stack trace: the cause is in the log under the request id the page shows.
    original = getattr(error, "original_exception", None)
    current_app.logger.error("callrec request %s failed", request_id(), exc_info=original)
    return render_error(500, "Something went wrong",
                        f"The error was logged with reference {request_id()}. Nothing was changed.")


@blueprint.errorhandler(409)
def conflict(error):
    return render_error(409, "Not done", getattr(error, "description", None) or "That cannot be done now.")


@blueprint.errorhandler(400)
def bad_request(error):
    if isinstance(error, CSRFError):  # refused before any view ran: the form expired, or came from elsewhere
        return expired_form()
    return render_error(400, "Not done", getattr(error, "description", None) or "The request was not valid.")


def expired_form():
    """The page after a form whose CSRF token was missing, stale or another session's: nothing was done,
    and how to recover (back to the page the form came from, when the browser says it was ours). The
    input is not sent back as a form to press again: that would let another site's forged form through."""
    if is_api_request(current_app):
        return render_error(400, "Not done", "The CSRF token is missing or has expired.")
    referrer = request.referrer or ""
    back = referrer if referrer.startswith(request.host_url) and referrer != request.url else None
    return render_template("callrec/form_expired.html", back=back), 400


def _load_view_modules():
    routes = {}
    for name in VIEW_MODULES:
        routes.update(importlib.import_module(f"callrec_plugin.views.{name}").ROUTES)
    return routes


# endpoint -> the action the policy decides for it (None: no signed-in user needed); a test checks
# that every route of the blueprint is here.
ROUTE_ACTIONS = _load_view_modules()
