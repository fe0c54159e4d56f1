"""The audit trail's filters (a GET form: it changes nothing) and the query they make.

People are found by the name the trail wrote for them (``actor_name``) or their exact ref; patients by
what a person types, through the host's ``callrec_find_patients``, or their exact ref (a machine link).
Each mistake is reported beside its field and nothing is searched, rather than showing 0 events.
"""
import datetime as dt

import sqlalchemy as sa
from wtforms import BooleanField, DateField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from callrec_plugin import visibility
from callrec_plugin.audit_labels import LABELS, OUTCOMES, page_view_clause
from callrec_plugin.forms import SearchForm
from callrec_plugin.models import AuditEvent
from callrec_plugin.patient_matching import find_candidates
from callrec_plugin.roles import PURPOSES

# The dates the filters accept: wide enough for any audit trail, narrow enough that a day can be added.
EARLIEST, LATEST = dt.date(1970, 1, 1), dt.date(2999, 12, 31)
MAX_FILTER_LENGTH = 200
# The query-string names that are filters (links and the CSV carry exactly these).
ARGUMENTS = ("person", "patient", "action", "outcome", "purpose", "from", "to", "page_views",
             "actor_ref", "patient_ref", "recording_id")


def _in_range(form, field):
    if field.data and not EARLIEST <= field.data <= LATEST:
        raise ValidationError(f"Give a date between {EARLIEST:%d/%m/%Y} and {LATEST:%d/%m/%Y}.")


def _text(label, **kwargs):
    return StringField(label, validators=[Optional(), Length(max=MAX_FILTER_LENGTH)], **kwargs)


def _choices(any_label, options):
    return [SelectChoice("", any_label)] + [SelectChoice(key, text) for key, text in options]


class AuditFilterForm(SearchForm):
    person = _text("Person (name)", description="Part of the name of whoever did it.",
                   render_kw={"list": "callrec-audit-people", "autocomplete": "off"})
    patient = _text("Patient (name or number)")
    action = SelectField("Action", validators=[Optional()])  # choices: per actor, in __init__
    outcome = SelectField("Outcome", choices=_choices("Any outcome", OUTCOMES.items()), validators=[Optional()])
    purpose = SelectField("Purpose", choices=_choices("Any purpose", PURPOSES.items()), validators=[Optional()])
    date_from = DateField("From", name="from", validators=[Optional(), _in_range],
                          render_kw={"type": "date"})
    date_to = DateField("To", name="to", validators=[Optional(), _in_range], render_kw={"type": "date"})
    page_views = BooleanField("Include page views",
                              description="Opening a list or report page; hidden unless you ask for them.")
    # Exact refs: for links from other pages and scripts, never typed by a person.
    actor_ref = _text("User ref")
    patient_ref = _text("Patient ref")
    recording_id = _text("Recording")

    def __init__(self, formdata, actor):
        super().__init__(formdata)
        self.actor = actor
        # Need to know: an action whose events this actor never sees is not offered either.
        sees_assessments = visibility.may_see(actor, visibility.Field.ASSESSMENT)

        def offered(code):
            return sees_assessments or not (code in visibility.ASSESSMENT_ACTIONS
                                            or code.startswith(visibility.ASSESSMENT_ACTION_PREFIX))

        # The value is the label, not the code: a page names no action code (they are data to tests
        # that look for leaks, and noise to a person); several codes may share a label.
        self.action.choices = _choices("Any action", [(text, text) for text in sorted(
            {text for code, text in LABELS.items() if offered(code)})])
        self.action_codes = [code for code, text in LABELS.items() if offered(code) and text == self.action.data]
        self.patients = []  # the patients a typed name matched

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        if valid and (self.patient.data or "").strip():
            self.patients = find_candidates(self.actor, self.patient.data)
            if not self.patients:
                self.patient.errors = [*self.patient.errors, "No patient of your practice matches this."]
                valid = False
        return valid

    def query(self):
        """The events this actor may read that match the filters (call after validate())."""
        actor = self.actor
        # Need to know: the data protection lead never sees that an assessment exists (visibility.py).
        query = sa.select(AuditEvent).where(AuditEvent.practice_ref == actor.practice_ref,
                                            visibility.audit_events_visible(actor))
        person = (self.person.data or "").strip()
        if person:
            query = query.where(sa.or_(AuditEvent.actor_ref == person,
                                       sa.func.lower(AuditEvent.actor_name).contains(person.lower(), autoescape=True)))
        if self.patients:
            query = query.where(AuditEvent.patient_ref.in_([str(p["ref"]) for p in self.patients]))
        if self.action_codes:
            query = query.where(AuditEvent.action.in_(self.action_codes))
        for name in ("outcome", "purpose", "actor_ref", "patient_ref", "recording_id"):
            value = (getattr(self, name).data or "").strip()
            if value:
                query = query.where(getattr(AuditEvent, name) == value)
        if self.date_from.data:
            query = query.where(AuditEvent.occurred_at >= _midnight(self.date_from.data))
        if self.date_to.data:
            query = query.where(AuditEvent.occurred_at < _midnight(self.date_to.data + dt.timedelta(days=1)))
        if not self.page_views.data:
            query = query.where(sa.not_(page_view_clause()))
        return query

    def first_error(self):
        return next((f"{field.label.text}: {' '.join(field.errors)}" for field in self if field.errors), "")


def _midnight(day):
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
