"""Every route of callrec's blueprint × every role of the test host × object scope.

The routes come from the app's url_map (endpoints ``callrec.*``), so a new route is in the matrix as
soon as it exists; who may use a route comes from ROUTE_ACTIONS and the policy's ACTION_ROLES. For
every request: never a 5xx; a role the policy does not allow never succeeds; anonymous gets the
login answer, never the content; every denial leaves exactly one "denied" audit event with a reason
and no "allowed" one; another practice's object and a missing one answer identically; an allowed
role with a valid form gets its change made.
"""
import datetime as dt
import io
import re

import pytest
import sqlalchemy as sa

from callrec_plugin import exports
from callrec_plugin.identity import Actor
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import (
    Assessment, AuditEvent, ComplaintLink, Disclosure, DisclosureItem, ErasureRequest, Export, Hold, Job,
    PatientMatch, PatientObjection, Recording, utcnow,
)
from callrec_plugin.policy import ACTION_ROLES
from callrec_plugin.views import ROUTE_ACTIONS
from tests import hostapp
from tests.audio_samples import wav_bytes
from tests.conftest import valid_csrf_token
from callrec_plugin.rubric import DEFAULT_CRITERIA
from tests.factories import add_recording
from tests.subject_access_support import registered

# Left out, each with tests of its own: the ingest API is signed with a practice's HMAC secret (no
# login, no CSRF, no roles: tests/test_ingest_http.py), and the stylesheet is public static content
# (ROUTE_ACTIONS gives it no action).
NOT_IN_MATRIX = {"callrec.ingest_recording", "callrec.stylesheet",
                 # signed like the ingest API (tests/test_redaction.py); the player's public script
                 "callrec.report_silence", "callrec.player_script",
                 # the holds form's and the export page's public scripts (static, like the stylesheet)
                 "callrec.holds_script", "callrec.export_script",
                 # signed like the ingest API, asked by the phone system (tests/test_should_record_api.py)
                 "callrec.should_record"}

# test host username -> the role the host gives it (None: signed in, no role; "anonymous": not signed in)
USERS = ["owner", "manager", "handler", "trainer", "reception", "dpo", "norole", "anonymous"]
ROLE_OF = {name: (hostapp.USERS[name][0] or None) if name in hostapp.USERS else None for name in USERS}

# Which kind of object each URL parameter names.
OBJECT_PARAMS = {
    "recording_id": "recording", "complaint_ref": "complaint", "disclosure_id": "disclosure",
    "export_id": "export", "request_id": "erasure", "hold_id": "hold", "patient_ref": "patient",
    "assessment_id": "assessment", "job_id": "job", "match_id": "match", "subject_access_id": "subject_access",
}
# Routes whose object travels in the form instead of the URL (scope then applies to it).
FORM_OBJECTS = {
    "callrec.place_hold": "recording",
    "callrec.request_disclosure": "recording",
    "callrec.request_export": "subject_access",
    "callrec.register_subject_access": "patient",
    "callrec.attach_call": "recording",
    "callrec.detach_call": "recording",
}
PREFIXES = ("", "callrec-objection-", "callrec-attach-", "callrec-detach-", "callrec-hold-", "callrec-extend-",
            "callrec-erasure-", "callrec-training-", "callrec-assess-", "callrec-response-", "callrec-match-",
            "callrec-undo-", "callrec-proposal-", "callrec-redact-", "callrec-card-", "callrec-withdraw-")
REQUEST_ID = "route-matrix-request"


def _rules():
    app = hostapp.create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    return sorted((rule for rule in app.url_map.iter_rules()
                   if rule.endpoint.startswith("callrec.") and rule.endpoint not in NOT_IN_MATRIX),
                  key=lambda rule: (rule.endpoint, rule.rule))


RULES = {rule.endpoint: rule for rule in _rules()}


def method_of(endpoint):
    return "POST" if "POST" in RULES[endpoint].methods else "GET"


def kinds_of(endpoint):
    kinds = {OBJECT_PARAMS[name] for name in RULES[endpoint].arguments}
    if endpoint in FORM_OBJECTS:
        kinds.add(FORM_OBJECTS[endpoint])
    return kinds


def scopes_of(endpoint):
    kinds = kinds_of(endpoint)
    if not kinds:
        return ["none"]
    return ["own", "other_practice", "missing"] + (["purged"] if "recording" in kinds else [])


CASES = [(endpoint, user) for endpoint in RULES for user in USERS]


def test_every_url_parameter_has_an_object_kind():
    unknown = {(e, name) for e, rule in RULES.items() for name in rule.arguments if name not in OBJECT_PARAMS}
    assert not unknown, f"tell the route matrix which object these URL parameters name: {unknown}"


def test_matrix_leaves_out_only_the_signed_api_and_the_stylesheet():
    assert set(ROUTE_ACTIONS) - set(RULES) == NOT_IN_MATRIX
    assert all(ROUTE_ACTIONS[endpoint] for endpoint in RULES), "every route in the matrix needs a policy action"


# -- the world every case starts from --------------------------------------------------------------------

MISSING = {
    "recording": "NoSuchRecording0000000", "complaint": "cNoSuch", "patient": "patNoSuch",
    "disclosure": "NoSuchDisclosure000000", "export": "NoSuchExport0000000000", "erasure": 987654,
    "hold": 987655, "assessment": 987656, "job": "NoSuchJob0000000000000",
    "subject_access": "NoSuchRequest000000000", "match": 987657,
}


def _disclosure(session, practice_ref, recording_id, reference):
    disclosure = Disclosure(practice_ref=practice_ref, recipient="Police", recipient_kind="law_enforcement",
                            legal_basis="DPA 2018 Sch 2 para 2", reference=reference,
                            requested_by_ref="dpo" if practice_ref == "pA" else "ownerB")
    session.add(disclosure)
    session.flush()
    session.add(DisclosureItem(disclosure_id=disclosure.id, recording_id=recording_id))
    return disclosure


def build_world(app, session, endpoint):
    audio = wav_bytes(2.0)
    main = ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=2),
                        direction="inbound", from_number="+447700900001", to_number="201", source="t",
                        source_ref="matrix-main", staff_user_ref="reception", staff_name="Reception").recording_id
    recording = session.get(Recording, main)
    recording.approved_for_training = True
    session.add(ComplaintLink(recording_id=main, practice_ref="pA", complaint_ref="cX", linked_by_ref="handler"))
    spare = add_recording(session, patient_ref="pat2", external_number="+447700900002")  # pA, not linked
    other = add_recording(session, practice_ref="pB", patient_ref="patB", staff_user_ref="receptionB")
    purged = add_recording(session, status="purged", approved_for_training=True, staff_user_ref="reception")
    session.add(ComplaintLink(recording_id=purged.id, practice_ref="pA", complaint_ref="cX", linked_by_ref="handler"))
    holds = [Hold(recording_id=rid, practice_ref=practice, kind="investigation", reason="check", placed_by_ref=by)
             for rid, practice, by in ((spare.id, "pA", "manager"), (other.id, "pB", "ownerB"))]
    erasures = [ErasureRequest(recording_id=rid, practice_ref=practice, reason="court order", requested_by_ref=by)
                for rid, practice, by in ((spare.id, "pA", "manager"), (other.id, "pB", "ownerB"))]
    assessments = [Assessment(recording_id=rid, practice_ref=practice, staff_user_ref=staff, assessor_ref=by,
                              outcome="meets")
                   for rid, practice, staff, by in ((main, "pA", "reception", "manager"),
                                                    (other.id, "pB", "receptionB", "ownerB"))]
    jobs = [Job(kind="reconcile", status="failed", error="boom", practice_ref=practice) for practice in ("pA", "pB")]
    session.add_all(holds + erasures + assessments + jobs)
    disclosures = [_disclosure(session, "pA", main, "R1"), _disclosure(session, "pB", other.id, "RB")]
    other_export = Export(practice_ref="pB", kind="subject_access", patient_ref="patB", requested_by_ref="ownerB",
                          status="queued")
    requests = [registered(session, "pat1", by="dpo"), registered(session, "patB", by="ownerB", practice_ref="pB")]
    session.add(other_export)
    unmatched = add_recording(session, patient_ref=None, external_number="+447700900002")
    matches = [PatientMatch(recording_id=rid, practice_ref=practice, patient_ref=patient, status="proposed",
                            reason="number now on the patient's record")
               for rid, practice, patient in ((unmatched.id, "pA", "pat2"), (other.id, "pB", "patB"))]
    session.add_all(matches)
    session.commit()
    spare_id = spare.id
    objects = {
        "recording": {"own": main, "other_practice": other.id, "purged": purged.id},
        "complaint": {"own": "cX", "other_practice": "cB"},
        "patient": {"own": "pat1", "other_practice": "patB"},
        "disclosure": {"own": disclosures[0].id, "other_practice": disclosures[1].id},
        "export": {"other_practice": other_export.id},
        "erasure": {"own": erasures[0].id, "other_practice": erasures[1].id},
        "hold": {"own": holds[0].id, "other_practice": holds[1].id},
        "assessment": {"own": assessments[0].id, "other_practice": assessments[1].id},
        "job": {"own": jobs[0].id, "other_practice": jobs[1].id},
        "subject_access": {"own": requests[0].id, "other_practice": requests[1].id},
        "match": {"own": matches[0].id, "other_practice": matches[1].id},
    }
    for kind, by_scope in objects.items():
        by_scope["missing"] = MISSING[kind]
    objects["export"]["own"] = None
    if endpoint.startswith("callrec.export_"):  # a real, ready bundle, requested by the data protection lead
        dpo = Actor(user=None, ref="dpo", name="Dpo", roles=frozenset({"dpo"}), practice_ref="pA")
        export, _job = exports.request_subject_access(dpo, requests[0])
        objects["export"]["own"] = export.id
        exports.build_export(export.id)
        session.commit()
    return {"objects": objects, "spare": spare_id, "audio": audio}


def object_id(world, kind, scope):
    by_scope = world["objects"][kind]
    return by_scope.get(scope, by_scope["own"])  # "purged" concerns recordings only


# -- what each POST route is sent: a valid form, for the given scope and user --------------------------

GRANT_PURPOSES = {  # a purpose whose precondition each role can meet (others are refused on role anyway)
    "handler": {"purpose": "complaint", "complaint_ref": "cX"},
    "trainer": {"purpose": "training"},
}


def _standing_objection():
    """A fresh objection of the own patient (each allowed withdrawal uses one up)."""
    objection = PatientObjection(practice_ref="pA", patient_ref="pat1", recorded_by_ref="reception")
    hostapp.db.session.add(objection)
    hostapp.db.session.commit()
    return str(objection.id)


def _form_recording(world, scope, own=None):
    return own if scope == "own" and own else object_id(world, "recording", scope)


FORMS = {
    "callrec.create_grant": lambda w, s, u: {"action": "play", **GRANT_PURPOSES.get(u, {"purpose": "compliance"})},
    "callrec.record_objection": lambda w, s, u: {"callrec-objection-method": "phone",
                                                 "callrec-objection-note": "Did not want to be recorded"},
    "callrec.withdraw_objection": lambda w, s, u: {"callrec-withdraw-objection_id": _standing_objection(),
                                                   "callrec-withdraw-reason": "patient now agrees"},
    "callrec.create_assessment": lambda w, s, u: {
        **{f"callrec-assess-score-{key}": "meets" for key, _label in DEFAULT_CRITERIA},
        "callrec-assess-notes": "Polite and clear"},
    "callrec.respond_to_assessment": lambda w, s, u: {"callrec-response-stance": "agree",
                                                      "callrec-response-response": "Thank you"},
    "callrec.acknowledge_assessment": lambda w, s, u: {},
    "callrec.open_spot_check": lambda w, s, u: {},
    "callrec.sampling_plan": lambda w, s, u: {"calls_per_staff": "4", "min_duration_seconds": "20"},
    "callrec.edit_rubric": lambda w, s, u: {"op": "add", "label": "Call closed politely"},
    "callrec.training_listen": lambda w, s, u: {},
    # the member of staff on the call may say no to training use at any time, asked or not
    "callrec.answer_training_request": lambda w, s, u: {"decision": "decline"},
    # attaching needs a call not attached yet; detaching one that is (the main call is linked to cX)
    "callrec.attach_call": lambda w, s, u: {"callrec-attach-recording_id": _form_recording(w, s, w["spare"]),
                                            "callrec-attach-note": "the call in question"},
    "callrec.detach_call": lambda w, s, u: {"callrec-detach-recording_id": _form_recording(w, s),
                                            "callrec-detach-reason": "wrong call"},
    "callrec.place_hold": lambda w, s, u: {"callrec-hold-scope": "recording",
                                           "callrec-hold-recording_id": _form_recording(w, s),
                                           "callrec-hold-kind": "investigation",
                                           "callrec-hold-reason": "internal investigation"},
    "callrec.release_hold": lambda w, s, u: {},
    # within the practice's cap (six further months past the call's own date), with a listed reason
    "callrec.extend_retention_view": lambda w, s, u: {
        "callrec-extend-retain_until": (utcnow() + dt.timedelta(days=240)).strftime("%Y-%m-%d"),
        "callrec-extend-reason_code": "other", "callrec-extend-reason": "pending claim"},
    "callrec.request_erasure_view": lambda w, s, u: {"callrec-erasure-reason": "successful erasure request"},
    "callrec.approve_erasure_view": lambda w, s, u: {},
    "callrec.training_approval": lambda w, s, u: {"callrec-training-approve": "yes"},
    "callrec.request_export": lambda w, s, u: {"subject_access_id": object_id(w, "subject_access", s)},
    "callrec.register_subject_access": lambda w, s, u: {
        "patient_ref": object_id(w, "patient", s), "received_on": "2026-11-30",
        "identity_method": "passport seen at reception", "identity_verified_by": "Rita Reception"},
    "callrec.extend_subject_access": lambda w, s, u: {"months": "2", "reason": "hundreds of calls to review"},
    "callrec.request_disclosure": lambda w, s, u: {
        "recipient": "CQC, inspector Smith", "recipient_kind": "regulator",
        "legal_basis": "Health and Social Care Act 2008 s.64", "reference": "CQC-1",
        "recordings": _form_recording(w, s)},
    "callrec.approve_disclosure": lambda w, s, u: {},
    "callrec.refuse_disclosure": lambda w, s, u: {"reason": "no legal basis given"},
    "callrec.retry_job": lambda w, s, u: {},
    "callrec.redact_recording": lambda w, s, u: {"callrec-redact-start": "0:00.5", "callrec-redact-end": "1",
                                                 "callrec-redact-reason": "card_details", "callrec-redact-confirm": "y"},
    "callrec.flag_card_payment": lambda w, s, u: {"flag": "yes"},
    "callrec.match_call_view": lambda w, s, u: {"callrec-match-patient_ref": "pat2",
                                                "callrec-match-reason": "caller gave her name"},
    "callrec.undo_match_view": lambda w, s, u: {"callrec-undo-reason": "wrong patient"},
    "callrec.confirm_match_view": lambda w, s, u: {},
    "callrec.reject_match_view": lambda w, s, u: {"callrec-proposal-reason": "a shared family phone"},
}

# Roles the policy allows for the route's action, but a rule of the service then refuses (own scope,
# valid form): the status they get. Each is a denial like any other (audited once, as denied).
SERVICE_REFUSALS = {
    ("callrec.export_download", "owner"): 403,    # only the requester (dpo) may download the bundle
    ("callrec.export_download", "manager"): 403,
    ("callrec.approve_disclosure", "dpo"): 403,   # the requester; and only owner or manager approve
    ("callrec.refuse_disclosure", "dpo"): 403,
    ("callrec.approve_erasure_view", "manager"): 409,  # the requester: a second person must approve
    ("callrec.request_export", "owner"): 403,  # only the person who registered the request (dpo) builds it
    ("callrec.request_export", "manager"): 403,
    ("callrec.match_call_view", "owner"): 409,  # the main call is already the patient's: undo that first
    ("callrec.match_call_view", "manager"): 409,
    ("callrec.undo_match_view", "owner"): 409,  # the match is a proposal, not a confirmed link
    ("callrec.undo_match_view", "manager"): 409,
}
# Roles the policy allows to open the page, but who find no such object there (own scope).
NOT_THEIRS = {
    # only the member of staff assessed (reception) may respond to an assessment
    **{("callrec.respond_to_assessment", user): 404 for user in ("owner", "manager", "handler", "trainer", "dpo")},
    **{("callrec.acknowledge_assessment", user): 404 for user in ("owner", "manager", "handler", "trainer", "dpo")},
    # only the member of staff on the call (reception) may answer a training request about it
    **{("callrec.answer_training_request", user): 404 for user in ("owner", "manager", "handler", "trainer", "dpo")},
}


def test_every_post_route_has_a_form():
    missing = {e for e in RULES if method_of(e) == "POST"} - set(FORMS)
    assert not missing, f"give the route matrix a valid form for {missing}"


def url_for_case(endpoint, world, scope):
    rule = RULES[endpoint]
    values = {name: object_id(world, OBJECT_PARAMS[name], scope) for name in rule.arguments}
    path = rule.rule
    for name, value in values.items():
        path = re.sub(rf"<(?:\w+:)?{name}>", str(value), path)
    return path


def client_for(app, login, user):
    return app.test_client() if user == "anonymous" else login(user)


def give_grant(app, client, world, user, action):
    """Let a user the policy allows to retrieve audio choose a purpose first, as the page would."""
    data = {"action": action, **GRANT_PURPOSES.get(user, {"purpose": "compliance"})}
    response = client.post(f"/callrec/recordings/{world['objects']['recording']['own']}/grants",
                           data=with_token(data, valid_csrf_token(app, client)))
    assert response.status_code == 302, (user, action, response.status_code)


def with_token(data, token):
    return {**data, **{f"{prefix}csrf_token": token for prefix in PREFIXES}}


def send(app, client, endpoint, world, scope, user):
    url = url_for_case(endpoint, world, scope)
    headers = {"X-Request-ID": REQUEST_ID}
    if method_of(endpoint) == "GET":
        return client.get(url, headers=headers)
    data = FORMS[endpoint](world, scope, user)
    return client.post(url, data=with_token(data, valid_csrf_token(app, client)), headers=headers)


def head_seq(session):
    session.expire_all()
    return session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0


def events_after(session, seq):
    session.expire_all()
    return session.scalars(sa.select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)).all()


def policy_allows(endpoint, user):
    role = ROLE_OF[user]
    return role is not None and role in ACTION_ROLES[ROUTE_ACTIONS[endpoint]]


def describe(events):
    return [(e.action, e.outcome, e.reason) for e in events]


@pytest.fixture
def world(request, app, db_session):
    return build_world(app, db_session, request.node.callspec.params["endpoint"])


@pytest.mark.parametrize(("endpoint", "user"), CASES)
def test_route_role_every_scope(app, db_session, login, world, endpoint, user):
    """One world per route and user, every scope in turn: the refusals first (they change nothing but
    the audit trail), then the user's own object, where an allowed change is made."""
    client = client_for(app, login, user)
    answers = {scope: check_scope(app, db_session, client, world, endpoint, user, scope)
               for scope in sorted(scopes_of(endpoint), key=lambda scope: scope == "own")}
    if user != "anonymous" and "other_practice" in answers:
        assert normalised(answers["other_practice"], world) == normalised(answers["missing"], world), \
            (endpoint, user, "another practice's object and a missing one must answer the same")
    if user != "anonymous" and method_of(endpoint) == "POST" and not policy_allows(endpoint, user):
        check_bad_form(app, db_session, client, world, endpoint, user)


def check_scope(app, db_session, client, world, endpoint, user, scope):
    allowed = policy_allows(endpoint, user)
    audio_action = {"callrec.recording_audio": "play", "callrec.recording_download": "download"}.get(endpoint)
    if audio_action and allowed and scope == "own":
        give_grant(app, client, world, user, audio_action)
    before = head_seq(db_session)
    response = send(app, client, endpoint, world, scope, user)
    status = response.status_code
    new = events_after(db_session, before)
    case = (endpoint, user, scope, status, describe(new))

    assert status < 500, case
    if user == "anonymous":
        assert status == 401 or (status == 302 and "login" in response.headers["Location"]), case
        assert world["audio"] not in response.data
        return response
    if not allowed:
        assert status >= 400, case
    if scope in ("other_practice", "missing"):
        assert status >= 400, case
    if status in (403, 404, 409):
        assert [e.outcome for e in new] == ["denied"] and new[0].reason, case
    if allowed and scope == "own":
        expected = SERVICE_REFUSALS.get((endpoint, user)) or NOT_THEIRS.get((endpoint, user))
        if expected:
            assert status == expected, case
        else:
            assert status < 400, case
            if audio_action:  # audited once, when the grant was issued, not per request
                assert response.data == world["audio"] and new == [], case
            else:
                assert any(e.outcome in ("allowed", "done") for e in new), case
    return response


# An unauthorised user whose form is also wrong is refused, and the refusal is in the audit trail: a
# 400 about the form that leaves no trace would hide an attempt the policy never saw.
def check_bad_form(app, db_session, client, world, endpoint, user):
    url = url_for_case(endpoint, world, "own")
    before = head_seq(db_session)
    # a valid CSRF token, every other field empty or wrong
    data = with_token({key: "" for key in FORMS[endpoint](world, "own", user)}, valid_csrf_token(app, client))
    response = client.post(url, data=data)
    new = events_after(db_session, before)
    case = (endpoint, user, "bad form", response.status_code, describe(new))
    assert response.status_code in (400, 403, 404), case
    assert [e.outcome for e in new] == ["denied"] and new[0].reason, case


def normalised(response, world):
    body = response.get_data(as_text=True)
    body = re.sub(r'(name="(?:[\w-]+-)?csrf_token" type="hidden" value=")[^"]+"', r'\1"', body)
    body = body.replace(REQUEST_ID, "<request>")
    for kind, by_scope in world["objects"].items():
        for scope in ("other_practice", "missing"):
            body = body.replace(str(by_scope[scope]), f"<{kind}>")
    return response.status_code, response.headers.get("Content-Type"), body


@pytest.mark.parametrize("endpoint", ["callrec.attach_call", "callrec.detach_call"])
def test_handler_of_another_complaint_is_refused_once(app, db_session, login, world, endpoint):
    """handler2 has the role to attach, but handles cY, not cX: one denial, no "allowed" beside it."""
    client = login("handler2")
    before = head_seq(db_session)
    response = send(app, client, endpoint, world, "own", "handler2")
    new = events_after(db_session, before)
    assert response.status_code == 403, (response.status_code, describe(new))
    assert [e.outcome for e in new] == ["denied"] and new[0].reason, describe(new)
