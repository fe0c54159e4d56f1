"""Flask-WTF forms of callrec's pages (each carries a CSRF token)."""
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from callrec_plugin.roles import PURPOSES


class PurposeForm(FlaskForm):
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


class ObjectionForm(FlaskForm):
    recording_id = SelectField("Call during which the patient objected (optional)", choices=[],
                               validators=[Optional()], validate_choice=False)
    note = TextAreaField("Note (optional)", validators=[Optional(), Length(max=1000)])


class AttachForm(FlaskForm):
    recording_id = HiddenField(validators=[DataRequired()])
    note = StringField("Note", validators=[Optional(), Length(max=500)])


class DetachForm(FlaskForm):
    recording_id = HiddenField(validators=[DataRequired()])
    reason = StringField("Reason for detaching", validators=[DataRequired(message="Give the reason."),
                                                             Length(max=500)])


class HoldForm(FlaskForm):
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


class ConfirmForm(FlaskForm):
    """A button that changes something: only the CSRF token travels."""


class ExtendRetentionForm(FlaskForm):
    retain_until = DateField("Keep until", validators=[DataRequired(message="Give the new date.")])
    reason = StringField("Reason", validators=[DataRequired(message="Give the reason."), Length(max=500)])


class ErasureForm(FlaskForm):
    reason = TextAreaField("Lawful reason for erasure", validators=[DataRequired(message="Give the reason."),
                                                                    Length(max=2000)])


class TrainingForm(FlaskForm):
    approve = HiddenField(default="yes")


class AssessmentForm(FlaskForm):
    outcome = SelectField("Call handling", choices=[SelectChoice("meets", "Meets the standard"),
                                                   SelectChoice("partly", "Partly meets the standard"),
                                                   SelectChoice("does_not_meet", "Does not meet the standard")])
    notes = TextAreaField("Notes for the member of staff", validators=[Optional(), Length(max=4000)])


class ResponseForm(FlaskForm):
    response = TextAreaField("Your response", validators=[DataRequired(message="Write your response."),
                                                          Length(max=4000)])
