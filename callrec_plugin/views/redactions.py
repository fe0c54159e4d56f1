"""Redaction and the card-payment flag on a call's page; the player's timeline script.

Owner and manager silence a range (card details, or another reason of redaction.REASONS) and confirm;
anyone who handles calls may say a card payment was taken on a call, which lists it on the retention
page for owner and manager until it is redacted.
"""
from fractions import Fraction
from importlib.resources import files

from flask import Response, flash, redirect, url_for
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length

from callrec_plugin import audit, redaction, silencing
from callrec_plugin.forms import CallrecForm
from callrec_plugin.identity import current_actor
from callrec_plugin.models import RecordingStatus
from callrec_plugin.policy import ACTION_ROLES
from callrec_plugin.roles import Action
from callrec_plugin.scoping import recording_or_404
from callrec_plugin.state import db_session
from callrec_plugin.visibility import Field, may_see
from callrec_plugin.views import (
    UNREADABLE, FormPage, allowed_or_403, blueprint, login_required, refused, refused_409, shown_again,
    submitted_or_shown_again, unreadable_500,
)

ROUTES = {
    "callrec.redact_recording": Action.REDACT,
    "callrec.flag_card_payment": Action.FLAG_CARD_PAYMENT,
    "callrec.player_script": None,  # public static script, like the stylesheet
}

_SCRIPT = files("callrec_plugin.templates").joinpath("callrec/player.js")


class RedactionForm(CallrecForm):
    start = StringField("From (minutes:seconds, e.g. 1:05.5)", validators=[InputRequired(), Length(max=20)])
    end = StringField("To (minutes:seconds)", validators=[InputRequired(), Length(max=20)])
    reason = SelectField("Why", choices=[SelectChoice(k, v) for k, v in redaction.REASONS.items()], validators=[InputRequired()])
    confirm = BooleanField("I confirm: the audio in this range will be destroyed for good, in every copy callrec "
                           "can read", validators=[DataRequired("Tick the box to confirm the redaction.")])


class CardPaymentForm(CallrecForm):
    pass


def parse_clock(text):
    """'1:05.5' or '65.5' -> Fraction(131, 2) seconds; ValueError with a sentence otherwise."""
    text = (text or "").strip()
    minutes, _, seconds = text.rpartition(":")
    if minutes and not minutes.isdigit():
        raise ValueError(f"{text!r} is not a time like 1:05.5 (minutes:seconds)")
    value = silencing.exact_seconds(seconds) + 60 * int(minutes or 0)
    if minutes and silencing.exact_seconds(seconds) >= 60:
        raise ValueError(f"{text!r}: the seconds must be under 60")
    return Fraction(value)


def panel(recording):
    """What the call's page shows about redactions and the card-payment flag (a template global)."""
    actor = current_actor()
    rows = redaction.redactions_of([recording.id]).get(recording.id, [])
    active = recording.status == RecordingStatus.ACTIVE
    return {
        "redactions": rows,
        "timeline": redaction.timeline(recording, rows),
        "labels": redaction.REASON_LABELS,
        "clock": redaction.clock,
        "ranges_of": redaction.ranges_of,
        "may_redact": active and actor.has_any(ACTION_ROLES[Action.REDACT]),
        "may_flag": active and actor.has_any(ACTION_ROLES[Action.FLAG_CARD_PAYMENT])
        and recording.card_payment_flagged_at is None,
        # Who redacted or flagged is a member of staff's name: the field-visibility rule decides.
        "show_flagger": may_see(actor, Field.REDACTION_PEOPLE),
        "unredacted_payment": redaction.is_flagged_unredacted(recording),
        "cannot_silence": silencing.REFUSALS.get(recording.audio_format),
        "form": RedactionForm(prefix="callrec-redact"),
        "card_form": CardPaymentForm(prefix="callrec-card"),
    }


@blueprint.app_template_global("callrec_redaction_panel")
def _panel_global(recording):
    return panel(recording)


@blueprint.app_template_global("callrec_card_payment_token")
def _card_payment_token():
    """The CSRF token of the card-payment form, for the patient panel's one-button forms."""
    return CardPaymentForm(prefix="callrec-card").csrf_token.current_token


@blueprint.app_template_global("callrec_unredacted_card_payments")
def _unredacted_card_payments():
    """Flagged, unredacted calls of the practice for owner and manager; None for anyone else."""
    actor = current_actor()
    if not actor.has_any(ACTION_ROLES[Action.REDACT]) or not may_see(actor, Field.REDACTION_PEOPLE):
        return None
    return redaction.flagged_unredacted(actor.practice_ref)


def _back(recording, anchor="callrec-redactions"):
    return redirect(_page_of(recording, anchor))


def _page_of(recording, anchor="callrec-redactions"):
    return url_for("callrec.recording_page", recording_id=recording.id) + f"#{anchor}"


@blueprint.route("/recordings/<recording_id>/redactions", methods=["POST"])
@login_required
def redact_recording(recording_id):
    actor = current_actor()
    form = RedactionForm(prefix="callrec-redact")
    recording = recording_or_404(actor, recording_id, Action.REDACT)
    if recording.status != RecordingStatus.ACTIVE:
        refused(404, actor, Action.REDACT, "the recording has been purged", recording=recording)
    allowed_or_403(actor, Action.REDACT, recording)
    page = FormPage("Redact part of the call", "Redact this range", _page_of(recording), "the call's page")
    submitted_or_shown_again(form, page)
    try:
        intervals = silencing.parse_intervals([(parse_clock(form.start.data), parse_clock(form.end.data))])
        redaction.plan_for(recording, intervals)  # refuses MP3 and Ogg before anything is decided
    except ValueError as exc:
        # A refusal like any other (audited once), then the form again with the reason beside the times.
        db_session().rollback()
        audit.record(Action.REDACT, "denied", actor=actor, recording=recording, reason=f"invalid range: {exc}")
        db_session().commit()
        form.end.errors = [*form.end.errors, f"Not a range of this call: {exc}."]
        shown_again(form, page)
    except silencing.SilencingRefused as refusal:
        refused_409(actor, Action.REDACT, refusal.reason, recording=recording)
    except UNREADABLE as damage:
        return unreadable_500(actor, Action.REDACT, damage, recording=recording)
    db_session().commit()  # the decision is kept whatever happens to the rewrite
    try:
        row = redaction.redact(recording.id, actor.practice_ref, intervals, actor=actor, reason=form.reason.data)
    except redaction.RedactionRefused as refusal:
        audit.record(Action.REDACT, "failed", actor=actor, recording=recording, reason=refusal.reason)
        db_session().commit()
        flash(f"Not redacted: {refusal.reason}", "callrec-info")
        return _back(recording)
    except UNREADABLE as damage:
        return unreadable_500(actor, Action.REDACT, damage, recording=recording)
    if row.status != redaction.DONE:  # purged while it was being redacted
        flash("Not redacted: the call was deleted while it was being redacted.", "callrec-info")
        return _back(recording)
    spans = ", ".join(f"{redaction.clock(a)} to {redaction.clock(b)}" for a, b in redaction.ranges_of(row))
    flash(f"Redacted {spans}: that audio is now silence, under a new key; the original is destroyed.",
          "callrec-info")
    return _back(recording)


@blueprint.route("/recordings/<recording_id>/card-payment", methods=["POST"])
@login_required
def flag_card_payment(recording_id):
    actor = current_actor()
    form = CardPaymentForm(prefix="callrec-card")
    recording = recording_or_404(actor, recording_id, Action.FLAG_CARD_PAYMENT)
    if recording.status != RecordingStatus.ACTIVE:
        refused(404, actor, Action.FLAG_CARD_PAYMENT, "the recording has been purged", recording=recording)
    allowed_or_403(actor, Action.FLAG_CARD_PAYMENT, recording)
    submitted_or_shown_again(form, FormPage("Card payment", "A card payment was taken on this call",
                                            _page_of(recording, "callrec-card-payment"), "the call's page"))
    if redaction.flag_card_payment(recording, actor):
        audit.record("card_payment_flagged", "done", actor=actor, recording=recording,
                     reason="a card payment was taken on this call: to be redacted by the owner or manager")
        flash("Thank you: the owner and manager will redact the card details from this call.", "callrec-info")
    else:
        flash("This call was already flagged as a card payment.", "callrec-info")
    db_session().commit()
    return _back(recording, "callrec-card-payment")


@blueprint.route("/static/callrec-player.js")
def player_script():
    response = Response(_SCRIPT.read_text(encoding="utf-8"), mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
