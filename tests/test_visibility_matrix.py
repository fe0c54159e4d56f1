"""Need to know: role × field × hold kind × page, with 0 leaks and every allowed field where it belongs.

One call of Ada Patient, handled by Rita Reception, is attached to two complaints (cX handled by
"handler", cY by "handler2"), held for law enforcement, a regulator and an internal investigation,
waiting in a disclosure to the police, assessed ("does not meet the standard") and listened to for
safety/crime with a written justification. Each detail carries a token; every page is fetched as
every role and searched for every token.
"""
import io

import pytest

from callrec_plugin import audit, evidence, exports, holds, visibility
from callrec_plugin.identity import Actor
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import Assessment, Recording, utcnow
from callrec_plugin.policy import authorize
from tests.audio_samples import wav_bytes

USERS = ("owner", "manager", "dpo", "handler", "handler2", "trainer", "reception")
MONITORING = {"owner", "manager"}

# token key -> the text searched for in every page (case-insensitive)
TOKENS = {
    "handled_by": "Rita Reception",
    "le_kind": "law enforcement",
    "le_reason": "REASON-LE",
    "le_reference": "GMP/2026/7",
    "reg_reason": "REASON-REG",
    "reg_reference": "CQC-REF-9",
    "inv_reason": "REASON-INV",
    "disclosure_reference": "DISC-REF-5",
    "note_cx": "NOTE-cX-7731",
    "note_cy": "NOTE-cY-9902",
    "title_cx": "Rude call",
    "title_cy": "Billing",
    "assessment_note": "ASSESS-NOTE-8841",
    "assessment_outcome": "Does not meet",
    "assessment_response": "ASSESS-RESPONSE-2290",
    "assessment_event": "assessment_created",
    "justification": "JUSTIFICATION-6612",
}
HOLD_DETAILS = {"le_kind", "le_reason", "le_reference", "reg_reason", "reg_reference", "inv_reason",
                "disclosure_reference"}
ASSESSMENT = {"assessment_note", "assessment_outcome", "assessment_response", "assessment_event"}

# What each user may know of, anywhere (the policy, written out independently of visibility.FIELDS).
ALLOWED = {
    "owner": set(TOKENS),
    "manager": set(TOKENS),
    "dpo": {"handled_by", "justification"} | HOLD_DETAILS,
    "handler": {"handled_by", "note_cx", "title_cx"},
    "handler2": {"handled_by", "note_cy", "title_cy"},
    "trainer": {"handled_by"},
    "reception": {"handled_by", "assessment_note", "assessment_outcome", "assessment_response"},
}
EVERYONE = set(USERS)
HOLD_VIEWERS = MONITORING | {"dpo"}

# page -> (url, {token key: users who must find it there}); None for the recording page's url.
PAGES = {
    "patient_panel": ("/patients/pat1", {
        "handled_by": EVERYONE, "le_kind": HOLD_VIEWERS, "title_cx": MONITORING | {"handler"},
        "title_cy": MONITORING | {"handler2"}}),
    "complaint_panel_cx": ("/complaints/cX", {"note_cx": MONITORING | {"handler"},
                                              "handled_by": MONITORING | {"handler"}}),
    "complaint_panel_cy": ("/complaints/cY", {"note_cy": MONITORING | {"handler2"}}),
    "recording": (None, {
        "handled_by": EVERYONE, **{key: HOLD_VIEWERS for key in HOLD_DETAILS},
        "note_cx": MONITORING | {"handler"}, "title_cx": MONITORING | {"handler"},
        "note_cy": MONITORING | {"handler2"}, "title_cy": MONITORING | {"handler2"}}),
    "holds": ("/callrec/holds", {key: MONITORING for key in HOLD_DETAILS}),
    "retention": ("/callrec/retention", {"le_kind": HOLD_VIEWERS}),
    "audit": ("/callrec/audit", {"justification": HOLD_VIEWERS, "le_reason": HOLD_VIEWERS,
                                 "note_cx": MONITORING, "assessment_event": MONITORING}),
    "audit_csv": ("/callrec/audit.csv", {"justification": HOLD_VIEWERS, "le_reason": HOLD_VIEWERS,
                                         "note_cx": MONITORING, "assessment_event": MONITORING}),
    "disclosures": ("/callrec/disclosures", {"disclosure_reference": HOLD_VIEWERS}),
    "assessments": ("/callrec/assessments", {"assessment_note": MONITORING | {"reception"},
                                             "assessment_outcome": MONITORING | {"reception"}}),
}
# Never on these pages, whoever looks: the audit trail says "assessment recorded", never the outcome.
NEVER = {"audit": {"assessment_outcome", "assessment_note", "assessment_response"},
         "audit_csv": {"assessment_outcome", "assessment_note", "assessment_response"}}
# What the host's own page shows around the panel (the complaint page's heading is its title).
HOST_SHOWS = {"complaint_panel_cx": {"title_cx"}, "complaint_panel_cy": {"title_cy"}}
# Those who may only know that a call is held see a plain "Held" badge.
PLAIN_HELD = {"patient_panel": {"trainer", "reception", "handler", "handler2"},
              "recording": {"trainer", "reception", "handler", "handler2"}}


def _actor(ref, role):
    return Actor(user=None, ref=ref, name=ref.capitalize(), roles=frozenset({role}), practice_ref="pA")


def build_world(db_session):
    result = ingest_audio(io.BytesIO(wav_bytes(2.0)), practice_ref="pA", started_at=utcnow(), direction="inbound",
                          from_number="+447700900001", to_number="201", source="test", source_ref="visibility",
                          staff_user_ref="reception", staff_name="Rita Reception")
    recording = db_session.get(Recording, result.recording_id)
    owner, manager, dpo = _actor("owner", "owner"), _actor("manager", "manager"), _actor("dpo", "dpo")
    evidence.link(owner, recording, {"ref": "cX", "status": "open"}, "NOTE-cX-7731 caller shouted")
    evidence.link(owner, recording, {"ref": "cY", "status": "open"}, "NOTE-cY-9902 billing dispute")
    holds.place_holds(manager, [recording], "law_enforcement", "REASON-LE Suspected fraud by staff member X",
                      "GMP/2026/7")
    holds.place_holds(manager, [recording], "regulator", "REASON-REG inspection", "CQC-REF-9")
    holds.place_holds(manager, [recording], "investigation", "REASON-INV internal review")
    db_session.commit()
    exports.request_disclosure(dpo, recipient="Greater Manchester Police", recipient_kind="law_enforcement",
                               legal_basis="DPA 2018 Schedule 2 paragraph 2", reference="DISC-REF-5",
                               recording_ids=[recording.id])
    assessment = Assessment(recording_id=recording.id, practice_ref="pA", staff_user_ref="reception",
                            assessor_ref="manager", assessor_name="Manager", outcome="does_not_meet",
                            notes="ASSESS-NOTE-8841", response="ASSESS-RESPONSE-2290", created_at=utcnow())
    db_session.add(assessment)
    db_session.flush()
    audit.record("assessment_created", "done", actor=manager, recording=recording, object_type="assessment",
                 object_id=str(assessment.id), reason=visibility.ASSESSMENT_RECORDED)
    # An event written before the fix, with the outcome in its reason: the page must not show it.
    audit.record("assessment_created", "done", actor=manager, recording=recording, object_type="assessment",
                 object_id=str(assessment.id), reason="Does not meet the standard")
    decision = authorize(owner, "play", recording, purpose="safety_crime",
                         justification="JUSTIFICATION-6612 threats made to reception")
    assert decision
    db_session.commit()
    return recording.id


def found(body, key):
    return TOKENS[key].lower() in body.lower()


@pytest.mark.parametrize("user", USERS)
def test_each_role_sees_only_what_it_may_on_every_page(app, db_session, login, user):
    recording_id = build_world(db_session)
    client = login(user)
    leaks, missing, statuses = [], [], {}
    for page, (url, expected) in PAGES.items():
        response = client.get(url or f"/callrec/recordings/{recording_id}")
        statuses[page] = response.status_code
        assert response.status_code in (200, 403), (page, user, response.status_code)
        body = response.get_data(as_text=True)
        forbidden = (set(TOKENS) - ALLOWED[user] - HOST_SHOWS.get(page, set())) | NEVER.get(page, set())
        leaks += [(page, key) for key in sorted(forbidden) if found(body, key)]
        if response.status_code == 200:
            missing += [(page, key) for key, users in expected.items() if user in users and not found(body, key)]
            if user in PLAIN_HELD.get(page, ()):
                assert ">Held<" in body, (page, user, "the call is held: say so")
        else:
            assert not any(user in users for users in expected.values()), (page, user, "refused a page it may see")
    assert leaks == [], f"{user} sees what they may not: {leaks}"
    assert missing == [], f"{user} misses what they may see: {missing}"


def test_the_page_matrix_has_the_pages_of_the_issue():
    assert {"patient_panel", "complaint_panel_cx", "recording", "holds", "retention", "audit", "audit_csv",
            "disclosures"} <= set(PAGES)


def test_staff_never_learn_which_authority_holds_a_call(app, db_session, login):
    recording_id = build_world(db_session)
    for user in ("reception", "trainer"):
        client = login(user)
        for url in ("/patients/pat1", f"/callrec/recordings/{recording_id}"):
            body = client.get(url).get_data(as_text=True).lower()
            for word in ("law enforcement", "law_enforcement", "regulator", "investigation", "disclosure",
                         "police", "complaint hold"):
                assert word not in body, (user, url, word)


def test_the_disclosure_bundle_keeps_names_but_never_assessments(app, db_session, login):
    from callrec_plugin.models import Disclosure, Export
    from tests.subject_access_support import bundle_text

    build_world(db_session)
    disclosure = db_session.query(Disclosure).one()
    export, _job = exports.approve_disclosure(_actor("manager", "manager"), disclosure)
    export_id = export.id
    exports.build_export(export_id)
    text = bundle_text(db_session.get(Export, export_id))
    assert "Owner" in text and "Manager" in text and "Dpo" in text  # the chain of custody names people
    for key in ASSESSMENT:
        assert not found(text, key), key
    assert "assessment" not in text.lower()


def test_dpo_audit_filter_hides_assessment_events_but_keeps_events_without_object_type(app, db_session):
    from callrec_plugin.models import AuditEvent
    import sqlalchemy as sa

    audit.record("keys_rotated", "done", actor=_actor("owner", "owner"), reason="rotation")
    audit.record("assessment_acknowledged", "done", actor=_actor("reception", "staff"), object_id="1")
    db_session.commit()
    shown = db_session.scalars(sa.select(AuditEvent.action).where(
        visibility.audit_events_visible(_actor("dpo", "dpo")))).all()
    assert "keys_rotated" in shown and "assessment_acknowledged" not in shown
    assert db_session.scalars(sa.select(AuditEvent.action).where(
        visibility.audit_events_visible(_actor("trainer", "trainer")))).all() == []


def test_role_terms():
    assert visibility.role_term("manager") == "practice manager"
    assert visibility.role_term("manager,owner") == "practice owner"
    assert visibility.role_term("dpo") == "data protection lead"
    assert visibility.role_term("") == "the practice"


def test_recording_an_assessment_writes_assessment_recorded_never_the_outcome(app, db_session, login):
    from callrec_plugin import rubric
    from callrec_plugin.models import AuditEvent
    from tests.conftest import valid_csrf_token
    import sqlalchemy as sa

    recording_id = build_world(db_session)
    manager = login("manager")
    data = {"callrec-assess-csrf_token": valid_csrf_token(app, manager), "callrec-assess-notes": "ASSESS-NOTE-2"}
    for criterion in rubric.criteria("pA"):
        data[f"callrec-assess-score-{criterion.key}"] = rubric.DOES_NOT_MEET
    assert manager.post(f"/callrec/recordings/{recording_id}/assessments", data=data).status_code == 302
    event = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "assessment_created")
                               .order_by(AuditEvent.seq.desc())).first()
    assert event.reason == "assessment recorded"
    for user in ("owner", "dpo"):
        for url in ("/callrec/audit", "/callrec/audit.csv"):
            body = login(user).get(url).get_data(as_text=True)
            assert "does not meet" not in body.lower() and "ASSESS-NOTE" not in body, (user, url)
            assert ("assessment recorded" in body) == (user == "owner"), (user, url)
