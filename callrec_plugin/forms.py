"""Flask-WTF forms of callrec's pages (each carries a CSRF token)."""
import re

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField
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


class ObjectionForm(CallrecForm):
    recording_id = SelectField("Call during which the patient objected (optional)", choices=[],
                               validators=[Optional()], validate_choice=False)
    note = TextAreaField("Note (optional)", validators=[Optional(), Length(max=1000)])


class AttachForm(CallrecForm):
    recording_id = HiddenField(validators=[DataRequired()])
    note = StringField("Note", validators=[Optional(), Length(max=500)])


class DetachForm(CallrecForm):
    recording_id = HiddenField(validators=[DataRequired()])
    reason = StringField("Reason for detaching", validators=[DataRequired(message="Give the reason."),
                                                             Length(max=500)])


class HoldForm(CallrecForm):
    scope = SelectField("Hold", choices=[SelectChoice("recording", "One call"),
                                         SelectChoice("patient", "All calls of a patient"),
                                         SelectChoice("range", "All calls in a date range")])
    recording_id = StringField("Call id", validators=[Optional(), Length(max=32)])
    patient_ref = StringField("Patient reference", validators=[Optional(), Length(max=64)])
    start = DateField("From", validators=[Optional()])
    end = DateField("To (inclusive)", validators=[Optional()])
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
    reason = StringField("Reason", validators=[DataRequired(message="Give the reason."), Length(max=500)])


class ErasureForm(CallrecForm):
    reason = TextAreaField("Lawful reason for erasure", validators=[DataRequired(message="Give the reason."),
                                                                    Length(max=2000)])


class TrainingForm(CallrecForm):
    approve = HiddenField(default="yes")


class AssessmentForm(CallrecForm):
    outcome = SelectField("Call handling", choices=[SelectChoice("meets", "Meets the standard"),
                                                   SelectChoice("partly", "Partly meets the standard"),
                                                   SelectChoice("does_not_meet", "Does not meet the standard")])
    notes = TextAreaField("Notes for the member of staff", validators=[Optional(), Length(max=4000)])


class ResponseForm(CallrecForm):
    response = TextAreaField("Your response", validators=[DataRequired(message="Write your response."),
                                                          Length(max=4000)])
