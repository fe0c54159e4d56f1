"""Forms of the monitoring pages: the sampling plan, the rubric, and answers to training requests."""
from wtforms import BooleanField, DecimalField, HiddenField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange, Optional

from callrec_plugin.forms import CallrecForm
from callrec_plugin.spot_checks import MAX_CALLS_PER_STAFF


class SamplingPlanForm(CallrecForm):
    calls_per_staff = IntegerField("Calls to check per member of staff per month", validators=[
        InputRequired(message="Give the number of calls."), NumberRange(1, MAX_CALLS_PER_STAFF)])
    inbound_only = BooleanField("Inbound calls only")
    min_duration_seconds = DecimalField("Shortest call to check (seconds)", places=None, validators=[
        Optional(), NumberRange(0, 24 * 3600)])


# The rubric page's edits: what each button does (its label).
RUBRIC_EDITS = {"add": "Add", "reword": "Reword", "retire": "Retire", "up": "Move up", "down": "Move down"}


class RubricEditForm(CallrecForm):
    # Which button was pressed, never typed: carried as it came when the form is shown again.
    op = HiddenField(validators=[AnyOf(list(RUBRIC_EDITS), message="Choose what to change in the rubric.")])
    key = HiddenField(validators=[Optional(), Length(max=48)])
    label = StringField("Criterion", validators=[Optional(), Length(max=200)])


class ConsentAnswerForm(CallrecForm):
    decision = SelectField(choices=[SelectChoice("consent", "I consent"), SelectChoice("decline", "I decline"),
                                    SelectChoice("withdraw", "Withdraw my consent")],
                           validators=[DataRequired()])
