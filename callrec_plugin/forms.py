"""Flask-WTF forms of callrec's pages (each carries a CSRF token)."""
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TextAreaField
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
