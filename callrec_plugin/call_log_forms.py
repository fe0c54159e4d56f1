"""The call log's search form (GET, no CSRF: it changes nothing) and the forms that link calls to patients."""
from wtforms import (
    BooleanField, DateField, HiddenField, IntegerField, SelectField, StringField, TextAreaField, TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from callrec_plugin.call_log import (
    DIRECTIONS, FLAGS, MAX_DAYS_WITH_TIME_OF_DAY, CallSearch, Cursor, NumberFilter, SearchError,
)
from callrec_plugin.formatting import direction_label
from callrec_plugin.forms import CallrecForm, SearchForm

MAX_SECONDS = 24 * 3600


class CallSearchForm(SearchForm):
    """Filters of the call log, read from the query string; ``search()`` gives the CallSearch."""

    date_from = DateField("From (date)", validators=[Optional()])
    date_to = DateField("To (date)", validators=[Optional()])
    time_from = TimeField("From (time of day)", validators=[Optional()])
    time_to = TimeField("To (time of day)", validators=[Optional()])
    number = StringField("Number, or its last digits", validators=[Optional(), Length(max=40)],
                         description="Any form: 01632 960123, +44 1632 960123, …0123, or “withheld”.")
    direction = SelectField("Direction", choices=[SelectChoice("", "Any")] + [
        SelectChoice(d, direction_label(d)) for d in DIRECTIONS], validators=[Optional()])
    staff = SelectField("Handled by", choices=[SelectChoice("", "Anyone")], validators=[Optional()],
                        validate_choice=False)
    patient = HiddenField()
    patient_name = StringField("Patient (name, date of birth or number)", validators=[Optional(), Length(max=100)])
    no_patient = BooleanField("Only calls matched to no patient")
    min_seconds = IntegerField("At least (seconds)", validators=[Optional(), NumberRange(0, MAX_SECONDS)])
    max_seconds = IntegerField("At most (seconds)", validators=[Optional(), NumberRange(0, MAX_SECONDS)])
    held = SelectField("Held", choices=[SelectChoice("", "Held or not"), SelectChoice("yes", "Held"),
                                        SelectChoice("no", "Not held")], validators=[Optional()])
    flag_short_call = BooleanField(FLAGS["short_call"])
    flag_after_objection = BooleanField(FLAGS["after_objection"])
    flag_card_payment = BooleanField(FLAGS["card_payment"])
    after = HiddenField()

    def __init__(self, formdata, region, today):
        super().__init__(formdata)
        self.region, self.today = region, today

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        if (self.min_seconds.data is not None and self.max_seconds.data is not None
                and self.max_seconds.data < self.min_seconds.data):
            self.max_seconds.errors = [*self.max_seconds.errors, "The longest is shorter than the shortest."]
            valid = False
        time_of_day = self.time_from.data or self.time_to.data
        if time_of_day and self.date_from.data and self._days() > MAX_DAYS_WITH_TIME_OF_DAY:
            self.date_from.errors = [*self.date_from.errors,
                                     f"With a time of day, search at most {MAX_DAYS_WITH_TIME_OF_DAY} days."]
            valid = False
        for name in ("number", "after"):
            try:
                self._parsed(name)
            except SearchError as error:
                getattr(self, name).errors = [*getattr(self, name).errors, str(error)]
                valid = False
        return valid

    def _days(self):
        return ((self.date_to.data or self.today) - self.date_from.data).days + 1

    def _parsed(self, name):
        if name == "number":
            return NumberFilter.parse(self.number.data, self.region)
        return Cursor.parse(self.after.data)

    def search(self):
        flags = frozenset(flag for flag in FLAGS if getattr(self, f"flag_{flag}").data)
        return CallSearch(
            date_from=self.date_from.data, date_to=self.date_to.data,
            time_from=self.time_from.data, time_to=self.time_to.data,
            number=self._parsed("number"), direction=self.direction.data or None,
            staff_ref=self.staff.data or None, patient_ref=(self.patient.data or None) if not self.no_patient.data
            else None, no_patient=bool(self.no_patient.data),
            min_seconds=self.min_seconds.data, max_seconds=self.max_seconds.data,
            held={"yes": True, "no": False}.get(self.held.data), flags=flags)

    def cursor(self):
        return self._parsed("after")


class MatchForm(CallrecForm):
    patient_ref = HiddenField(validators=[DataRequired(message="Choose the patient.")])
    reason = TextAreaField("How do you know this call is theirs?",
                           validators=[DataRequired(message="Say how you know this call is the patient's."),
                                       Length(max=500)])


class MatchDecisionForm(CallrecForm):
    """Undo a link, or reject a proposal: a reason is required. Confirming a proposal needs none."""

    reason = TextAreaField("Reason", validators=[Optional(), Length(max=500)])
