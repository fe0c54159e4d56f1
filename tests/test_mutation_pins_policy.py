"""The policy's matrix asked of ``decide()`` directly: every role x action x purpose, in one fast test each.

``tests/test_permission_matrix.py`` checks the same matrix over HTTP (392 requests, about 100 s); the
mutation run (``make mutate``) uses these instead, so that a mutant of policy.py is judged in a
second, and so that a surviving mutant costs seconds, not minutes. The expected answers are written
out here from DESIGN.md section 2, independently of ``policy.ACTION_ROLES`` and the purpose matrix.
"""
import pytest

from callrec_plugin import policy
from callrec_plugin.identity import Actor
from callrec_plugin.models import ComplaintLink
from callrec_plugin.roles import Action
from tests.factories import add_recording

ROLES = ("owner", "manager", "complaint_handler", "trainer", "staff", "dpo")
PURPOSES = ("compliance", "training", "complaint", "spot_check", "safety_crime")
JUSTIFIED = "The caller threatened a receptionist by name."

# DESIGN.md section 2 (and the README's permission table), written out by hand.
NON_AUDIO = {
    Action.VIEW_METADATA: set(ROLES),
    Action.ATTACH: {"owner", "manager", "complaint_handler"},
    Action.HOLD: {"owner", "manager"},
    Action.RELEASE: {"owner", "manager"},
    Action.EXPORT: {"owner", "manager", "dpo"},
    Action.ASSESS: {"owner", "manager"},
    Action.APPROVE_TRAINING: {"owner", "manager"},
    Action.VIEW_AUDIT: {"owner", "manager", "dpo"},
    Action.RECORD_OBJECTION: {"owner", "manager", "complaint_handler", "staff"},
    Action.VIEW_RETENTION: {"owner", "manager", "dpo"},
    Action.VIEW_ASSESSMENTS: set(ROLES),
    Action.CHANGE_RETENTION: {"owner", "manager"},
    Action.MANAGE_JOBS: {"owner", "manager"},
    Action.VIEW_TRAINING_LIBRARY: {"owner", "manager", "trainer"},
    Action.VIEW_STAFF_MAPPING: {"owner", "manager"},
    Action.VIEW_CALL_LOG: {"owner", "manager", "dpo"},
    Action.MATCH_CALL: {"owner", "manager"},
    Action.REDACT: {"owner", "manager"},
    Action.FLAG_CARD_PAYMENT: {"owner", "manager", "complaint_handler", "trainer", "staff"},
}


def may_retrieve(role, purpose, action):
    """For a call approved for training and attached to open complaint cX, which `handler` handles."""
    if role in ("owner", "manager"):
        return True
    return action == Action.PLAY and (role, purpose) in {("complaint_handler", "complaint"), ("trainer", "training")}


def actor(role, ref=None, practice_ref="pA"):
    return Actor(user=None, ref=ref or role, name=role, roles=frozenset({role}), practice_ref=practice_ref)


@pytest.fixture
def call(app, db_session):
    recording = add_recording(db_session, approved_for_training=True)
    db_session.add(ComplaintLink(recording_id=recording.id, practice_ref="pA", complaint_ref="cX",
                                 linked_by_ref="owner"))
    db_session.commit()
    return recording


@pytest.mark.parametrize("role", ROLES)
def test_every_purpose_and_audio_action_of_a_role_is_decided_as_the_policy_says(app, call, role):
    ref = "handler" if role == "complaint_handler" else role
    with app.test_request_context():
        for action in (Action.PLAY, Action.DOWNLOAD):
            for purpose in PURPOSES:
                decision = policy.decide(actor(role, ref), action, call, purpose=purpose,
                                         complaint_ref="cX" if purpose == "complaint" else None,
                                         justification=JUSTIFIED if purpose == "safety_crime" else None)
                assert decision.allowed is may_retrieve(role, purpose, action), (action, purpose, decision.reason)
                assert isinstance(decision.reason, str) and decision.reason


@pytest.mark.parametrize("action", sorted(NON_AUDIO))
def test_every_other_action_is_open_to_exactly_its_roles(app, db_session, action):
    recording = add_recording(db_session)
    with app.test_request_context():
        allowed = {role for role in ROLES if policy.decide(actor(role), action, recording=recording)}
        assert allowed == NON_AUDIO[action]
        assert not policy.decide(Actor(user=None, ref="x", name="x", roles=frozenset(), practice_ref="pA"), action)


def test_an_allowed_decision_is_true_and_a_refusal_false(app, call):
    with app.test_request_context():
        yes = policy.decide(actor("owner"), Action.PLAY, call, purpose="compliance")
        no = policy.decide(actor("staff"), Action.PLAY, call, purpose="compliance")
    assert (bool(yes), yes.allowed, bool(no), no.allowed) == (True, True, False, False)
    assert (policy.allow().allowed, policy.allow().reason) == (True, "allowed")
    assert (policy.deny("why").allowed, policy.deny("why").reason) == (False, "why")


def test_the_trainer_may_not_play_a_call_not_approved_for_training(app, db_session):
    recording = add_recording(db_session, approved_for_training=False)
    with app.test_request_context():
        assert not policy.decide(actor("trainer"), Action.PLAY, recording, purpose="training")
        recording.approved_for_training = True
        assert policy.decide(actor("trainer"), Action.PLAY, recording, purpose="training")


def test_safety_purpose_needs_a_justification_for_every_monitoring_role(app, call):
    with app.test_request_context():
        for role in ("owner", "manager"):
            assert not policy.decide(actor(role), Action.PLAY, call, purpose="safety_crime")
            assert not policy.decide(actor(role), Action.PLAY, call, purpose="safety_crime", justification="")
            assert policy.decide(actor(role), Action.PLAY, call, purpose="safety_crime", justification=JUSTIFIED)


def test_attaching_evidence_needs_a_complaint_the_user_handles(app, call):
    handler = actor("complaint_handler", "handler")
    with app.test_request_context():
        handled = policy.complaint_summary("cX")
        other = policy.complaint_summary("cY")
        assert policy.decide(handler, Action.ATTACH, call, complaint=handled)
        refused = policy.decide(handler, Action.ATTACH, call, complaint=other)
        assert (refused.allowed, refused.reason) == (False, "the user does not handle this complaint")
        assert policy.decide(actor("owner"), Action.ATTACH, call, complaint=other)  # owners handle every complaint
        assert policy.decide(handler, Action.ATTACH, call)  # no complaint named yet: the role decides


def test_handles_needs_the_handler_role_as_well_as_the_name(app):
    named = {"ref": "cX", "handler_refs": ["handler"]}
    assert policy.handles(actor("complaint_handler", "handler"), named) is True
    assert policy.handles(actor("trainer", "handler"), named) is False  # named, but not a complaint handler
    assert policy.handles(actor("complaint_handler", "handler2"), named) is False
    assert policy.handles(actor("complaint_handler", "7"), {"ref": "cX", "handler_refs": [7]}) is True  # ids as str


def test_authorize_audits_the_decision_with_everything_it_was_about(app, db_session):
    from callrec_plugin.models import AuditEvent
    import sqlalchemy as sa

    call = add_recording(db_session, patient_ref="pat2")
    with app.test_request_context():
        allowed = policy.authorize(actor("owner"), Action.PLAY, call, purpose="safety_crime", justification=JUSTIFIED,
                                   object_type="grant", object_id="g1", patient_ref="patQ", detail="filters: x")
        db_session.rollback()  # an allow is only flushed: the caller commits it with what it allowed
        refused = policy.authorize(actor("staff"), Action.VIEW_AUDIT, detail=None)
        db_session.rollback()  # a denial was committed at once
    assert allowed.allowed and allowed.event.reason == "play allowed for purpose safety_crime; filters: x"
    assert (allowed.event.object_type, allowed.event.object_id, allowed.event.patient_ref) == ("grant", "g1", "patQ")
    assert (allowed.event.purpose, allowed.event.justification, allowed.event.outcome) == (
        "safety_crime", JUSTIFIED, "allowed")
    events = db_session.scalars(sa.select(AuditEvent)).all()
    assert [(e.action, e.outcome, e.reason, e.actor_ref) for e in events] == [
        ("view_audit", "denied", "no role of the user may view audit", "staff")]
    assert refused.event.seq == events[0].seq and not refused


def test_the_call_must_still_be_attached_to_the_complaint_named(app, db_session, call):
    from callrec_plugin.models import ComplaintLink as Link, utcnow
    import sqlalchemy as sa

    with app.test_request_context():
        assert policy.linked_complaint_refs(call.id) == {"cX"}
        link = db_session.scalar(sa.select(Link).where(Link.recording_id == call.id))
        link.unlinked_at = utcnow()
        db_session.commit()
        assert policy.linked_complaint_refs(call.id) == set()
        other = add_recording(db_session)
        db_session.add(Link(recording_id=other.id, practice_ref="pA", complaint_ref="cY", linked_by_ref="owner"))
        db_session.commit()
        assert policy.linked_complaint_refs(call.id) == set() and policy.linked_complaint_refs(other.id) == {"cY"}


def test_a_permission_plugin_vetoes_only_by_answering_false(app, call):
    from callrec_plugin.hooks import hookimpl
    from callrec_plugin.state import get_state

    answers = {"value": None}

    class Veto:
        @hookimpl
        def callrec_permission(self, user, action, recording, purpose):
            answers.setdefault("asked", []).append((action, recording.id if recording else None, purpose))
            return answers["value"]

    get_state(app).pm.register(Veto(), name="veto")
    with app.test_request_context():
        for value, allowed in ((None, True), (True, True), (0, True), (False, False)):
            answers["value"] = value
            decision = policy.decide(actor("owner"), Action.PLAY, call, purpose="compliance")
            assert decision.allowed is allowed, value
        assert decision.reason == "refused by a callrec_permission plugin"
    assert answers["asked"][-1] == (Action.PLAY, call.id, "compliance")


def test_a_permission_plugin_is_told_which_user_asks(app, call):
    from callrec_plugin.hooks import hookimpl
    from callrec_plugin.state import get_state

    seen = []

    class WhoAsks:
        @hookimpl
        def callrec_permission(self, user, action, recording, purpose):
            seen.append(user)

    get_state(app).pm.register(WhoAsks(), name="who_asks")
    host_user = object()  # the host's own user object, as Flask-Login holds it
    owner = Actor(user=host_user, ref="owner", name="owner", roles=frozenset({"owner"}), practice_ref="pA")
    with app.test_request_context():
        policy.decide(owner, Action.PLAY, call, purpose="compliance")
    assert seen == [host_user]


def test_a_closed_complaint_refuses_attaching_with_its_reason(app, call):
    closed = {"ref": "cX", "practice_ref": "pA", "status": "closed", "handler_refs": ["handler"]}
    with app.test_request_context():
        refused = policy.decide(actor("complaint_handler", "handler"), Action.ATTACH, call, complaint=closed)
    assert (refused.allowed, refused.reason) == (
        False, "the complaint is closed: the calls attached to it stay as they are")


def test_a_practice_may_open_the_call_log_and_matching_to_more_roles_of_its_own(app):
    from callrec_plugin.hooks import hookimpl
    from callrec_plugin.practice_settings import forget_cached
    from callrec_plugin.state import get_state

    class PracticeA:
        @hookimpl
        def callrec_practice_settings(self, practice_ref):
            if practice_ref == "pA":
                return {"call_log_roles": ["staff"], "match_call_roles": ["complaint_handler"]}
            return None

    get_state(app).pm.register(PracticeA(), name="practice_a")
    with app.test_request_context():
        forget_cached()
        assert "staff" in policy.roles_for(actor("staff"), Action.VIEW_CALL_LOG)
        assert "staff" not in policy.roles_for(actor("staff", practice_ref="pB"), Action.VIEW_CALL_LOG)
        assert "complaint_handler" in policy.roles_for(actor("complaint_handler"), Action.MATCH_CALL)
        assert "staff" not in policy.roles_for(actor("staff"), Action.MATCH_CALL)
        assert policy.roles_for(actor("staff"), Action.VIEW_AUDIT) == set(policy.ACTION_ROLES[Action.VIEW_AUDIT])
