"""Flask-WTF forms of callrec's pages (each carries a CSRF token)."""
import re

from flask_wtf import FlaskForm
from wtforms import DateField, Form, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from callrec_plugin.roles import PURPOSES

# Control characters (other than tab and line breaks) have no place in a note or a reason, and
# PostgreSQL refuses NUL in text outright: refuse them as a form error, not a 500.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control_characters(text):
    return isinstance(text, str) and bool(_CONTROL.search(text))


class CallrecForm(FlaskForm):
    """A Flask-WTF form (CSRF-protected) whose text fields refuse control characters."""

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        for field in self:
            if has_control_characters(field.data):
                field.errors = [*field.errors, f"{field.label.text} contains characters that are not allowed."]
                valid = False
        return valid


class SearchForm(Form):
    """Filters read from a query string (no CSRF: a search changes nothing). Text refuses control
    characters; a form with ``date_from`` and ``date_to`` refuses a reversed range, beside "to"."""

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        for field in self:
            if has_control_characters(field.data):
                field.errors = [*field.errors, f"{field.label.text} contains characters that are not allowed."]
                valid = False
        start, end = getattr(self, "date_from", None), getattr(self, "date_to", None)
        if start is not None and end is not None and start.data and end.data and end.data < start.data:
            end.errors = [*end.errors, "The end date is before the start date."]
            valid = False
        return valid


class PurposeForm(CallrecForm):
    purpose = SelectField(
        "Purpose of listening",
        choices=[SelectChoice("", "Choose the purpose…")] + [SelectChoice(k, v) for k, v in PURPOSES.items()],
        validators=[DataRequired(message="Choose the purpose for which you need to listen.")],
    )
    complaint_ref = StringField("Complaint reference (for a complaint investigation)",
                                validators=[Optional(), Length(max=64)])
    justification = TextAreaField("Justification (required for health and safety or crime)",
                                  validators=[Optional(), Length(max=2000)])
    action = HiddenField(default="play")


# How a patient let the practice know they do not wish to be recorded.
OBJECTION_METHODS = {"phone": "On the phone", "in_person": "In person", "letter": "By letter", "email": "By email"}


class ObjectionForm(CallrecForm):
    method = SelectField("How the patient told us", choices=[SelectChoice(k, v) for k, v in OBJECTION_METHODS.items()],
                         default="phone",
                         validators=[DataRequired(message="Say how the patient told the practice.")])
    recording_id = SelectField("Call during which the patient objected (optional)", choices=[],
                               validators=[Optional()], validate_choice=False)
    note = TextAreaField("Note (optional)", validators=[Optional(), Length(max=1000)])


class WithdrawObjectionForm(CallrecForm):
    objection_id = HiddenField(validators=[DataRequired(message="Choose the objection to withdraw.")])
    reason = StringField("Why the objection is withdrawn", validators=[
        DataRequired(message="Give the reason the objection is withdrawn."), Length(max=500)])


class AttachForm(CallrecForm):
    recording_id = HiddenField(validators=[DataRequired()])
    note = StringField("Note", validators=[DataRequired(message="Say what this call shows for the complaint."),
                                           Length(max=500)])


class DetachForm(CallrecForm):
    recording_id = HiddenField(validators=[DataRequired()])
    reason = StringField("Reason for detaching", validators=[DataRequired(message="Give the reason."),
                                                             Length(max=500)])


class HoldForm(CallrecForm):
    """What to hold is found by patient and date (views/holds.py lists the matches to choose from);
    ``recording_id`` and ``patient_ref`` carry the choice, never typed by a person."""
    scope = SelectField("Hold", choices=[SelectChoice("recording", "One call"),
                                         SelectChoice("patient", "All calls of a patient"),
                                         SelectChoice("range", "All calls in a date range")])
    patient_name = StringField("Patient (name, date of birth or number)", validators=[Optional(), Length(max=100)])
    call_date = DateField("Date of the call (optional)", validators=[Optional()])
    recording_id = StringField("Call", validators=[Optional(), Length(max=32)])
    patient_ref = StringField("Patient", validators=[Optional(), Length(max=64)])
    start = DateField("From", validators=[Optional()])
    end = DateField("To (inclusive)", validators=[Optional()])

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        if self.scope.data == "range" and self.start.data and self.end.data and self.end.data < self.start.data:
            self.end.errors = [*self.end.errors, "The end date is before the start date."]
            valid = False
        if self.scope.data == "range" and not (self.start.data and self.end.data):
            for field in (self.start, self.end):
                if not field.data and not field.errors:
                    field.errors = [*field.errors, "Give both dates of the range."]
            valid = False
        return valid
    kind = SelectField("Kind of hold", choices=[SelectChoice("investigation", "Internal investigation"),
                                                SelectChoice("regulator", "Regulator"),
                                                SelectChoice("law_enforcement", "Law enforcement")])
    reason = TextAreaField("Reason", validators=[DataRequired(message="Give the reason for the hold."),
                                                 Length(max=2000)])
    external_reference = StringField("External reference (optional)", validators=[Optional(), Length(max=128)])


class ConfirmForm(CallrecForm):
    """A button that changes something: only the CSRF token travels."""


class ExtendRetentionForm(CallrecForm):
    retain_until = DateField("Keep until", validators=[DataRequired(message="Give the new date.")])
    reason_code = SelectField("Reason", choices=[  # the fixed list of extensions.REASONS
        SelectChoice("complaint_expected", "A complaint is expected"), SelectChoice("legal_advice", "Legal advice"),
        SelectChoice("patient_request", "The patient asked"), SelectChoice("other", "Other (say what)")])
    reason = StringField("Details", validators=[Optional(), Length(max=500)])


class ErasureForm(CallrecForm):
    reason = TextAreaField("Lawful reason for erasure", validators=[DataRequired(message="Give the reason."),
                                                                    Length(max=2000)])


class TrainingForm(CallrecForm):
    """"yes" proposes the call for the training library (the member of staff on it is asked); "no" takes it out."""
    approve = HiddenField(default="yes")
    note = StringField("Training note (what the call shows)", validators=[Optional(), Length(max=500)])


class AssessmentForm(CallrecForm):
    """The overall note of a rubric assessment; each criterion's score and note are read by name
    (``score-<key>``, ``note-<key>``) because the practice edits its criteria (views/assessments.py)."""
    notes = TextAreaField("Overall note for the member of staff", validators=[Optional(), Length(max=4000)])


class ResponseForm(CallrecForm):
    stance = SelectField("Do you agree with this assessment?", choices=[SelectChoice("agree", "I agree"),
                                                                        SelectChoice("disagree", "I disagree")])
    response = TextAreaField("Your comment", validators=[Optional(), Length(max=4000)])
