"""Security across callrec's pages: the route table, CSRF on every POST, headers, no stack traces."""
import datetime as dt

import pytest
import sqlalchemy as sa

from callrec_plugin.models import AuditEvent, utcnow
from callrec_plugin.views import ROUTE_ACTIONS
from tests.conftest import valid_csrf_token
from callrec_plugin.rubric import DEFAULT_CRITERIA
from tests.factories import add_recording


def callrec_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("callrec.")]


def test_every_route_is_in_the_route_table_and_no_more(app):
    endpoints = {rule.endpoint for rule in callrec_rules(app)}
    assert endpoints == set(ROUTE_ACTIONS), (
        f"missing from ROUTE_ACTIONS: {endpoints - set(ROUTE_ACTIONS)}; stale: {set(ROUTE_ACTIONS) - endpoints}")


PREFIXES = ("", "callrec-objection-", "callrec-attach-", "callrec-detach-", "callrec-hold-", "callrec-extend-",
            "callrec-erasure-", "callrec-training-", "callrec-assess-", "callrec-response-", "callrec-redact-",
            "callrec-card-", "callrec-match-", "callrec-undo-", "callrec-proposal-", "callrec-withdraw-")


@pytest.fixture
def targets(app, db_session):
    """For every POST route: a URL and form data that make a valid change when the token is right."""
    from callrec_plugin.models import Assessment, ComplaintLink, ErasureRequest, Hold

    call = add_recording(db_session, staff_user_ref="reception")
    library_call = add_recording(db_session, patient_ref=None, staff_user_ref="reception", approved_for_training=True)
    owners_call = add_recording(db_session, patient_ref=None, staff_user_ref="owner")  # the owner answered it
    linked = add_recording(db_session)
    db_session.add(ComplaintLink(recording_id=linked.id, practice_ref="pA", complaint_ref="cX", linked_by_ref="owner"))
    hold = Hold(recording_id=call.id, practice_ref="pA", kind="investigation", reason="r", placed_by_ref="manager")
    erasure = ErasureRequest(recording_id=call.id, practice_ref="pA", reason="court order", requested_by_ref="manager")
    assessment = Assessment(recording_id=call.id, practice_ref="pA", staff_user_ref="owner", assessor_ref="manager",
                            outcome="meets")
    from callrec_plugin.models import Disclosure, DisclosureItem, Job

    to_approve, to_refuse = (Disclosure(practice_ref="pA", recipient="Police", recipient_kind="law_enforcement",
                                        legal_basis="DPA 2018 Sch 2 para 2", reference=ref, requested_by_ref="dpo")
                             for ref in ("R1", "R2"))
    failed_job = Job(kind="reconcile", status="failed", error="boom")
    from callrec_plugin.models import PatientObjection

    standing = PatientObjection(practice_ref="pA", patient_ref="pat2", recorded_by_ref="reception")
    db_session.add_all([hold, erasure, assessment, to_approve, to_refuse, failed_job, standing])
    db_session.flush()
    db_session.add_all([DisclosureItem(disclosure_id=d.id, recording_id=call.id) for d in (to_approve, to_refuse)])
    db_session.commit()
    from tests.subject_access_support import registered

    entry = registered(db_session, "pat1", by="owner")
    from callrec_plugin.models import PatientMatch

    unmatched, matched, proposed, rejected = (add_recording(db_session, patient_ref=p)
                                              for p in (None, "pat2", None, None))
    confirmed_match, to_confirm, to_reject = (
        PatientMatch(recording_id=r.id, practice_ref="pA", patient_ref="pat2", status=status, reason="number")
        for r, status in ((matched, "confirmed"), (proposed, "proposed"), (rejected, "proposed")))
    db_session.add_all([confirmed_match, to_confirm, to_reject])
    db_session.commit()
    return {
        "callrec.match_call_view": (f"/callrec/recordings/{unmatched.id}/match", {
            "callrec-match-patient_ref": "pat2", "callrec-match-reason": "gave her name"}),
        "callrec.undo_match_view": (f"/callrec/matches/{confirmed_match.id}/undo", {"callrec-undo-reason": "wrong"}),
        "callrec.confirm_match_view": (f"/callrec/matches/{to_confirm.id}/confirm", {}),
        "callrec.reject_match_view": (f"/callrec/matches/{to_reject.id}/reject", {"callrec-proposal-reason": "no"}),
        "callrec.create_grant": (f"/callrec/recordings/{call.id}/grants", {"purpose": "compliance", "action": "play"}),
        "callrec.record_objection": ("/callrec/patients/pat1/objections", {}),
        "callrec.withdraw_objection": ("/callrec/patients/pat2/objections/withdraw", {
            "callrec-withdraw-objection_id": str(standing.id), "callrec-withdraw-reason": "patient agrees now"}),
        "callrec.create_assessment": (f"/callrec/recordings/{call.id}/assessments",
                                      {f"callrec-assess-score-{key}": "meets" for key, _ in DEFAULT_CRITERIA}),
        "callrec.respond_to_assessment": (f"/callrec/assessments/{assessment.id}/response",
                                          {"callrec-response-stance": "agree", "callrec-response-response": "Thanks"}),
        "callrec.acknowledge_assessment": (f"/callrec/assessments/{assessment.id}/acknowledge", {}),
        "callrec.open_spot_check": (f"/callrec/recordings/{call.id}/spot-check", {}),
        "callrec.sampling_plan": ("/callrec/spot-checks/plan", {"calls_per_staff": "5"}),
        "callrec.edit_rubric": ("/callrec/rubric", {"op": "add", "label": "Call closed politely"}),
        "callrec.training_listen": (f"/callrec/training/{library_call.id}/listen", {}),
        "callrec.answer_training_request": (f"/callrec/training/{owners_call.id}/answer", {"decision": "decline"}),
        "callrec.attach_call": ("/callrec/complaints/cX/links", {"callrec-attach-recording_id": call.id,
                                                                 "callrec-attach-note": "the call in question"}),
        "callrec.detach_call": ("/callrec/complaints/cX/links/detach",
                                {"callrec-detach-recording_id": linked.id, "callrec-detach-reason": "wrong call"}),
        "callrec.place_hold": ("/callrec/holds", {"callrec-hold-scope": "recording", "callrec-hold-recording_id": call.id,
                                                  "callrec-hold-kind": "investigation", "callrec-hold-reason": "check"}),
        "callrec.release_hold": (f"/callrec/holds/{hold.id}/release", {}),
        # not `call`: its lawful erasure is approved above, after which only a hold may keep it
        "callrec.extend_retention_view": (f"/callrec/recordings/{library_call.id}/retention",
                                          {"callrec-extend-retain_until": (utcnow() + dt.timedelta(days=240)).strftime("%Y-%m-%d"),
                                           "callrec-extend-reason_code": "legal_advice"}),
        "callrec.request_erasure_view": (f"/callrec/recordings/{call.id}/erasure", {"callrec-erasure-reason": "SAR"}),
        "callrec.approve_erasure_view": (f"/callrec/erasure/{erasure.id}/approve", {}),
        # a call of no patient: objections recorded or standing (pat1, pat2) keep their calls out of training
        "callrec.training_approval": (f"/callrec/recordings/{add_recording(db_session, patient_ref=None, staff_user_ref='reception').id}/training", {"callrec-training-approve": "yes"}),
        "callrec.request_export": ("/callrec/exports", {"subject_access_id": entry.id}),
        "callrec.register_subject_access": ("/callrec/subject-access", {
            "patient_ref": "pat1", "received_on": "2026-11-30", "identity_method": "passport seen at reception",
            "identity_verified_by": "Rita Reception"}),
        "callrec.extend_subject_access": (f"/callrec/subject-access/{entry.id}/extension",
                                          {"months": "1", "reason": "hundreds of calls to review"}),
        "callrec.request_disclosure": ("/callrec/disclosures", {
            "recipient": "CQC", "recipient_kind": "regulator", "legal_basis": "Health and Social Care Act 2008 s.64",
            "reference": "CQC-1", "recordings": call.id}),
        "callrec.approve_disclosure": (f"/callrec/disclosures/{to_approve.id}/approve", {}),
        "callrec.refuse_disclosure": (f"/callrec/disclosures/{to_refuse.id}/refuse", {"reason": "no basis"}),
        "callrec.retry_job": (f"/callrec/jobs/{failed_job.id}/retry", {}),
        "callrec.redact_recording": (f"/callrec/recordings/{_stored_call(db_session)}/redactions", {
            "callrec-redact-start": "1", "callrec-redact-end": "2", "callrec-redact-reason": "card_details",
            "callrec-redact-confirm": "y"}),
        "callrec.flag_card_payment": (f"/callrec/recordings/{call.id}/card-payment", {}),
    }


def _stored_call(db_session):
    """A call with real encrypted audio (redaction rewrites it)."""
    import datetime as dt
    import io

    from callrec_plugin.ingest import ingest_audio
    from callrec_plugin.models import utcnow
    from tests.audio_samples import wav_bytes

    return ingest_audio(io.BytesIO(wav_bytes(3.0)), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=1),
                        direction="inbound", from_number="+447700900001", to_number="201", source="t",
                        source_ref="csrf-redaction").recording_id


def fingerprint(db_session):
    """Every row of every callrec table: any change at all shows."""
    from callrec_plugin.models import metadata

    db_session.expire_all()
    return {table.name: sorted(map(repr, db_session.execute(table.select()).all())) for table in metadata.sorted_tables}


def post_routes(app):
    return sorted(rule.endpoint for rule in callrec_rules(app)
                  if "POST" in rule.methods
                  and rule.endpoint not in ("callrec.ingest_recording", "callrec.report_silence"))  # HMAC-signed


def with_token(data, token):
    return {**data, **({f"{prefix}csrf_token": token for prefix in PREFIXES} if token else {})}


@pytest.mark.parametrize("token_kind", ["missing", "wrong", "other_session"])
def test_every_post_route_refuses_a_bad_csrf_token_and_changes_nothing(app, db_session, login, targets, token_kind):
    owner = login("owner")
    own_token = valid_csrf_token(app, owner)  # the owner's session has a token of its own
    bad = {"missing": None, "wrong": "not-a-token", "other_session": valid_csrf_token(app, login("manager"))}
    for endpoint in post_routes(app):
        assert endpoint in targets, f"add {endpoint} to the CSRF test's targets"
        url, data = targets[endpoint]
        before = fingerprint(db_session)
        response = owner.post(url, data=with_token(data, bad[token_kind]))
        assert response.status_code == 400, (endpoint, response.status_code)
        assert fingerprint(db_session) == before, endpoint
    # the same requests with the session's own token do change something: the test can fail
    for endpoint in post_routes(app):
        url, data = targets[endpoint]
        before = fingerprint(db_session)
        response = owner.post(url, data=with_token(data, own_token))
        assert response.status_code == 302, (endpoint, response.status_code, response.get_data(as_text=True)[-300:])
        assert fingerprint(db_session) != before, endpoint


def test_security_headers_on_callrec_pages(app, db_session, login):
    recording = add_recording(db_session)
    for url in (f"/callrec/recordings/{recording.id}", "/callrec/audit", "/callrec/recordings/nope"):
        response = login("owner").get(url)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_carry_no_inline_script(app, db_session, login):
    recording = add_recording(db_session)
    client = login("owner")
    for url in (f"/callrec/recordings/{recording.id}", "/callrec/audit", "/patients/pat1"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>" not in html and "onclick=" not in html and "style=" not in html


def test_an_unexpected_error_shows_no_stack_trace(app, db_session, login, monkeypatch):
    from callrec_plugin.views import recordings

    recording = add_recording(db_session)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(recordings, "_page_context", explode)
    response = login("owner").get(f"/callrec/recordings/{recording.id}")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "secret internal detail" not in body
    assert "reference" in body


def test_every_denied_request_leaves_one_audit_event(app, db_session, login):
    recording = add_recording(db_session)
    login("reception").get(f"/callrec/recordings/{recording.id}/audio")
    events = db_session.scalars(sa.select(AuditEvent)).all()
    assert [(e.action, e.outcome, e.actor_ref, e.recording_id) for e in events] == [
        ("play", "denied", "reception", recording.id)]
