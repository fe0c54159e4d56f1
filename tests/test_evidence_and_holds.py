"""Complaints as evidence, holds and their release, retention changes, the retention page, assessments."""
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import (
    Assessment, AuditEvent, ComplaintLink, ErasureRequest, Hold, Recording, Tombstone, utcnow,
)
from callrec_plugin.retention import eligibility, eligible_for_purge
from tests import hostapp
from tests.audio_samples import wav_bytes
from tests.conftest import valid_csrf_token
from callrec_plugin.rubric import DEFAULT_CRITERIA
from tests.factories import add_recording


def post(app, client, url, data):
    token = valid_csrf_token(app, client)
    prefixed = {f"{prefix}-csrf_token": token for prefix in (
        "callrec-attach", "callrec-detach", "callrec-hold", "callrec-extend", "callrec-erasure", "callrec-training",
        "callrec-assess", "callrec-response")}
    return client.post(url, data={"csrf_token": token, **prefixed, **data})


def events(db_session, action):
    db_session.expire_all()
    return db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).all()


def active_holds(db_session, recording_id):
    db_session.expire_all()
    return db_session.scalars(sa.select(Hold).where(Hold.recording_id == recording_id, Hold.released_at.is_(None))).all()


def test_handler_finds_attaches_plays_and_detaches_evidence(app, db_session, login):
    audio = wav_bytes(3.0)
    call = ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=2),
                        direction="inbound", from_number="+447700900001", to_number="201", source="t",
                        source_ref="c1").recording_id
    other_patient = add_recording(db_session, patient_ref="pat2", external_number="+447700900002")
    handler = login("handler")
    page = handler.get("/complaints/cX").get_data(as_text=True)
    assert "Find calls to attach" in page and call in page and other_patient.id not in page  # complainant's calls
    by_number = handler.get("/complaints/cX?callrec_number=07700900002").get_data(as_text=True)
    assert other_patient.id in by_number
    assert "contains letters" in handler.get("/complaints/cX?callrec_number=abc").get_data(as_text=True)
    assert "YYYY-MM-DD" in handler.get("/complaints/cX?callrec_from=yesterday").get_data(as_text=True)

    response = post(app, handler, "/callrec/complaints/cX/links",
                    {"callrec-attach-recording_id": call, "callrec-attach-note": "the call in question"})
    assert response.status_code == 302 and response.headers["Location"] == "/complaints/cX"
    link = db_session.scalars(sa.select(ComplaintLink)).one()
    assert (link.complaint_ref, link.note, link.linked_by_ref) == ("cX", "the call in question", "handler")
    (hold,) = active_holds(db_session, call)
    assert (hold.kind, hold.complaint_ref) == ("complaint", "cX")
    assert [e.object_id for e in events(db_session, "link")] == ["cX"]
    page = handler.get("/complaints/cX").get_data(as_text=True)
    assert "the call in question" in page and "Detach" in page

    granted = post(app, handler, f"/callrec/recordings/{call}/grants",
                   {"purpose": "complaint", "complaint_ref": "cX", "action": "play"})
    assert granted.status_code == 302
    assert handler.get(f"/callrec/recordings/{call}/audio").data == audio

    again = post(app, handler, "/callrec/complaints/cX/links",
                 {"callrec-attach-recording_id": call, "callrec-attach-note": "again"})
    assert again.status_code == 409
    no_reason = post(app, handler, "/callrec/complaints/cX/links/detach", {"callrec-detach-recording_id": call})
    assert no_reason.status_code == 400
    detached = post(app, handler, "/callrec/complaints/cX/links/detach",
                    {"callrec-detach-recording_id": call, "callrec-detach-reason": "wrong call"})
    assert detached.status_code == 302
    assert active_holds(db_session, call) == []
    assert db_session.scalars(sa.select(ComplaintLink)).one().unlink_reason == "wrong call"
    assert len(events(db_session, "unlink")) == 1 and len(events(db_session, "hold_released")) == 1


def test_handler_of_another_complaint_may_not_attach(app, db_session, login):
    call = add_recording(db_session)
    response = post(app, login("handler2"), "/callrec/complaints/cX/links", {"callrec-attach-recording_id": call.id})
    assert response.status_code == 403
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ComplaintLink)) == 0
    (refusal,) = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "attach")).all()
    assert refusal.outcome == "denied" and "does not handle" in refusal.reason  # one event, no "allowed" first
    assert post(app, login("reception"), "/callrec/complaints/cX/links",
                {"callrec-attach-recording_id": call.id}).status_code == 403
    assert post(app, login("handler"), "/callrec/complaints/cB/links",
                {"callrec-attach-recording_id": call.id}).status_code == 404  # other practice's complaint


def test_closing_the_complaint_releases_its_holds(app, db_session, login):
    call = add_recording(db_session)
    post(app, login("handler"), "/callrec/complaints/cX/links",
         {"callrec-attach-recording_id": call.id, "callrec-attach-note": "the call"})
    assert len(active_holds(db_session, call.id)) == 1
    with app.test_request_context():
        app.extensions["callrec"].extension.complaint_closed("cX")
    (hold,) = db_session.scalars(sa.select(Hold).where(Hold.recording_id == call.id)).all()
    assert hold.released_at is not None and hold.released_by_ref == "system"


def test_a_host_that_forgets_to_say_the_complaint_closed_is_caught_by_the_purge_run(app, db_session, login):
    from callrec_plugin.purge import purge

    call = add_recording(db_session)
    post(app, login("handler"), "/callrec/complaints/cX/links",
         {"callrec-attach-recording_id": call.id, "callrec-attach-note": "the call"})
    with app.test_request_context():
        assert purge().complaint_holds_released == 0
        assert len(active_holds(db_session, call.id)) == 1
        db_session.get(hostapp.Complaint, "cX").status = "closed"
        db_session.commit()
        assert purge().complaint_holds_released == 1
    assert active_holds(db_session, call.id) == []


def test_a_closed_complaint_is_read_only_evidence(app, db_session, login):
    """Nothing is attached to or detached from a closed complaint, and its panel offers neither."""
    attached = add_recording(db_session, external_number="+447700900001")
    db_session.add(ComplaintLink(recording_id=attached.id, practice_ref="pA", complaint_ref="cX", linked_by_ref="owner"))
    db_session.get(hostapp.Complaint, "cX").status = "closed"
    db_session.commit()
    call = add_recording(db_session, external_number="+447700900001")
    owner = login("owner")
    page = owner.get("/complaints/cX").get_data(as_text=True)
    assert "This complaint is closed" in page and attached.id in page
    assert "Find calls to attach" not in page and "Detach" not in page and ">Attach<" not in page
    refused = post(app, owner, "/callrec/complaints/cX/links",
                   {"callrec-attach-recording_id": call.id, "callrec-attach-note": "late evidence"})
    assert refused.status_code == 403 and "the complaint is closed" in refused.get_data(as_text=True)
    detached = post(app, owner, "/callrec/complaints/cX/links/detach",
                    {"callrec-detach-recording_id": attached.id, "callrec-detach-reason": "tidy up"})
    assert detached.status_code == 403
    assert [link.recording_id for link in db_session.scalars(sa.select(ComplaintLink))] == [attached.id]
    assert active_holds(db_session, call.id) == []
    assert [e.outcome for e in events(db_session, "attach")] == ["denied", "denied"]


def test_holds_page_places_holds_on_a_patient_and_a_date_range(app, db_session, login):
    now = utcnow()
    mine = [add_recording(db_session, started_at=now - dt.timedelta(days=d)) for d in (1, 10, 40)]
    other_patient = add_recording(db_session, patient_ref="pat2", started_at=now - dt.timedelta(days=10))
    add_recording(db_session, practice_ref="pB", patient_ref="pat1")  # never held by pA's owner
    owner = login("owner")
    assert owner.get("/callrec/holds").status_code == 200
    assert login("reception").get("/callrec/holds").status_code == 403
    response = post(app, owner, "/callrec/holds", {
        "callrec-hold-scope": "patient", "callrec-hold-patient_ref": "pat1", "callrec-hold-kind": "regulator",
        "callrec-hold-reason": "CQC inspection", "callrec-hold-external_reference": "CQC-123"})
    assert response.status_code == 302
    held = {h.recording_id for h in db_session.scalars(sa.select(Hold))}
    assert held == {r.id for r in mine}
    start = (now - dt.timedelta(days=15)).strftime("%Y-%m-%d")
    end = (now - dt.timedelta(days=5)).strftime("%Y-%m-%d")
    post(app, owner, "/callrec/holds", {"callrec-hold-scope": "range", "callrec-hold-start": start,
                                        "callrec-hold-end": end, "callrec-hold-kind": "investigation",
                                        "callrec-hold-reason": "staff conduct"})
    ranged = {h.recording_id for h in db_session.scalars(sa.select(Hold).where(Hold.kind == "investigation"))}
    assert ranged == {mine[1].id, other_patient.id}
    missing_reason = post(app, owner, "/callrec/holds", {"callrec-hold-scope": "patient",
                                                         "callrec-hold-patient_ref": "pat1"})
    assert missing_reason.status_code == 400 and "reason" in missing_reason.get_data(as_text=True)
    nothing = post(app, owner, "/callrec/holds", {"callrec-hold-scope": "patient", "callrec-hold-patient_ref": "patB",
                                                  "callrec-hold-kind": "investigation", "callrec-hold-reason": "x"})
    assert nothing.status_code == 400 and "nothing was held" in nothing.get_data(as_text=True)
    page = owner.get("/callrec/holds").get_data(as_text=True)
    assert "CQC-123" in page and "Approve release (1 of 2)" in page


def test_regulator_hold_needs_two_different_approvers(app, db_session, login):
    call = add_recording(db_session)
    hold = Hold(recording_id=call.id, practice_ref="pA", kind="law_enforcement", reason="police request",
                placed_by_ref="owner")
    db_session.add(hold)
    db_session.commit()
    owner, manager = login("owner"), login("manager")
    assert post(app, owner, f"/callrec/holds/{hold.id}/release", {}).status_code == 302
    assert active_holds(db_session, call.id), "one approval must not release it"
    twice = post(app, owner, f"/callrec/holds/{hold.id}/release", {})
    assert twice.status_code == 409 and "second, different person" in twice.get_data(as_text=True)
    assert active_holds(db_session, call.id)
    assert post(app, manager, f"/callrec/holds/{hold.id}/release", {}).status_code == 302
    assert active_holds(db_session, call.id) == []
    assert [e.actor_ref for e in events(db_session, "hold_release_requested")] == ["owner"]
    assert [e.actor_ref for e in events(db_session, "hold_released")] == ["manager"]
    other = add_recording(db_session, practice_ref="pB", patient_ref="patB")
    foreign = Hold(recording_id=other.id, practice_ref="pB", kind="investigation", reason="x", placed_by_ref="ownerB")
    db_session.add(foreign)
    db_session.commit()
    assert post(app, owner, f"/callrec/holds/{foreign.id}/release", {}).status_code == 404


def test_retention_extends_but_never_silently_shortens(app, db_session, login):
    call = add_recording(db_session)
    before = call.retain_until
    owner = login("owner")
    later = (before + dt.timedelta(days=90)).strftime("%Y-%m-%d")
    assert post(app, owner, f"/callrec/recordings/{call.id}/retention",
                {"callrec-extend-retain_until": later, "callrec-extend-reason_code": "other",
                 "callrec-extend-reason": "audit"}).status_code == 302
    db_session.expire_all()
    assert db_session.get(Recording, call.id).retain_until.strftime("%Y-%m-%d") == later
    earlier = (before - dt.timedelta(days=30)).strftime("%Y-%m-%d")
    refused = post(app, owner, f"/callrec/recordings/{call.id}/retention",
                   {"callrec-extend-retain_until": earlier, "callrec-extend-reason_code": "legal_advice",
                    "callrec-extend-reason": "tidy"})
    assert refused.status_code == 400 and "lawful erasure" in refused.get_data(as_text=True)  # beside the date
    db_session.expire_all()
    assert db_session.get(Recording, call.id).retain_until.strftime("%Y-%m-%d") == later
    assert post(app, login("reception"), f"/callrec/recordings/{call.id}/retention",
                {"callrec-extend-retain_until": "2040-01-01", "callrec-extend-reason_code": "other",
                 "callrec-extend-reason": "x"}).status_code == 403


def test_extending_a_call_that_a_purge_took_first_is_refused(app, db_session):
    from callrec_plugin.erasure import RetentionError
    from callrec_plugin.extensions import extend
    from callrec_plugin.identity import Actor

    owner = Actor(user=None, ref="owner", name="Owner", roles=frozenset({"owner"}), practice_ref="pA")

    call = add_recording(db_session)
    stale = db_session.get(Recording, call.id)
    # The purge commits in another session between this request's lookup and its change.
    db_session.execute(sa.update(Recording).where(Recording.id == call.id).values(status="purged"))
    with pytest.raises(RetentionError, match="purged"):
        extend(owner, stale, stale.retain_until + dt.timedelta(days=30), "legal_advice")


def test_lawful_erasure_needs_a_second_person_and_holds_still_win(app, db_session, login):
    call = add_recording(db_session)
    owner, manager = login("owner"), login("manager")
    assert post(app, owner, f"/callrec/recordings/{call.id}/erasure",
                {"callrec-erasure-reason": "Erasure request upheld by the DPO"}).status_code == 302
    erasure = db_session.scalars(sa.select(ErasureRequest)).one()
    assert post(app, owner, f"/callrec/erasure/{erasure.id}/approve", {}).status_code == 409
    db_session.expire_all()
    assert db_session.get(Recording, call.id).retain_until > utcnow()
    assert post(app, manager, f"/callrec/erasure/{erasure.id}/approve", {}).status_code == 302
    db_session.expire_all()
    recording = db_session.get(Recording, call.id)
    assert recording.retain_until <= utcnow()
    assert eligibility(recording, [], utcnow(), dt.timedelta(days=7)).eligible
    assert len(events(db_session, "retention_shortened")) == 1


# The retention page's own tests (the weekly list, held calls, charts against direct counts, the purge's
# state) are in tests/test_retention_page.py.


@pytest.mark.parametrize("started,check_at,eligible", [
    # six calendar months on the London calendar: eligible at the instant, never a microsecond before
    (dt.datetime(2026, 1, 1, 12, 0), dt.datetime(2026, 7, 1, 11, 0), True),  # 12:00 GMT -> 12:00 BST
    (dt.datetime(2026, 1, 1, 12, 0), dt.datetime(2026, 7, 1, 10, 59, 59, 999999), False),
    # across the spring and autumn clock changes: the same wall-clock time six months on
    (dt.datetime(2026, 3, 28, 23, 30), dt.datetime(2026, 9, 28, 22, 29), False),
    (dt.datetime(2026, 3, 28, 23, 30), dt.datetime(2026, 9, 28, 22, 30), True),
    (dt.datetime(2026, 10, 24, 23, 30), dt.datetime(2027, 4, 25, 0, 30), True),
    # a call on 29 February: 29 August; on 31 August: the last day of February
    (dt.datetime(2028, 2, 29, 9, 0), dt.datetime(2028, 8, 29, 7, 59), False),
    (dt.datetime(2028, 2, 29, 9, 0), dt.datetime(2028, 8, 29, 8, 0), True),
    (dt.datetime(2027, 8, 31, 9, 0), dt.datetime(2028, 2, 29, 9, 59), False),  # 10:00 BST -> 10:00 GMT
    (dt.datetime(2027, 8, 31, 9, 0), dt.datetime(2028, 2, 29, 10, 0), True),
])
def test_no_deletion_before_expiry_at_clock_edges(app, db_session, started, check_at, eligible):
    from callrec_plugin.retention import retain_until_for

    utc = dt.timezone.utc
    with app.app_context():
        until = retain_until_for(started.replace(tzinfo=utc), "pA")
    recording = add_recording(db_session, started_at=started.replace(tzinfo=utc), retain_until=until)
    now = check_at.replace(tzinfo=utc)
    assert eligibility(recording, [], now, dt.timedelta(days=7)).eligible is eligible
    ids = set(db_session.scalars(eligible_for_purge(now, dt.timedelta(days=7)).with_only_columns(Recording.id)))
    assert (recording.id in ids) is eligible


def test_assessments_are_seen_by_managers_and_the_assessed_only(app, db_session, login):
    call = add_recording(db_session, staff_user_ref="reception", staff_name="Rita")
    manager = login("manager")
    rubric = {f"callrec-assess-score-{key}": "meets" for key, _label in DEFAULT_CRITERIA}
    assert post(app, manager, f"/callrec/recordings/{call.id}/assessments",
                {**rubric, "callrec-assess-score-courtesy": "partly",
                 "callrec-assess-notes": "Rushed the caller"}).status_code == 302
    assert post(app, login("reception"), f"/callrec/recordings/{call.id}/assessments", rubric).status_code == 403
    assert "Rushed the caller" in login("owner").get("/callrec/assessments").get_data(as_text=True)
    reception = login("reception")
    mine = reception.get("/callrec/assessments").get_data(as_text=True)
    assert "Rushed the caller" in mine and "Assessment recorded" in mine  # the audit of their own result
    for user in ("handler", "trainer", "dpo"):
        assert "Rushed the caller" not in login(user).get("/callrec/assessments").get_data(as_text=True)
    assessment = db_session.scalars(sa.select(Assessment)).one()
    assert post(app, login("handler"), f"/callrec/assessments/{assessment.id}/response",
                {"callrec-response-stance": "agree", "callrec-response-response": "not mine"}).status_code == 404
    assert post(app, reception, f"/callrec/assessments/{assessment.id}/response",
                {"callrec-response-stance": "disagree",
                 "callrec-response-response": "The surgery was full that day"}).status_code == 302
    db_session.expire_all()
    assert db_session.get(Assessment, assessment.id).response == "The surgery was full that day"


def test_training_approval_lets_the_trainer_listen(app, db_session, login):
    call = ingest_audio(io.BytesIO(wav_bytes(3.0)), practice_ref="pA", started_at=utcnow(), direction="inbound",
                        from_number="+447700900001", to_number="201", source="t", source_ref="tr",
                        staff_user_ref="reception", staff_name="Reception").recording_id
    trainer = login("trainer")
    refused = post(app, trainer, f"/callrec/recordings/{call}/grants", {"purpose": "training", "action": "play"})
    assert refused.status_code == 403
    assert post(app, login("owner"), f"/callrec/recordings/{call}/training",
                {"callrec-training-approve": "yes"}).status_code == 302
    # Proposed is not approved: the member of staff on the call consents first (tests/test_training_library.py).
    assert post(app, trainer, f"/callrec/recordings/{call}/grants",
                {"purpose": "training", "action": "play"}).status_code == 403
    assert post(app, login("reception"), f"/callrec/training/{call}/answer", {"decision": "consent"}).status_code == 302
    assert post(app, trainer, f"/callrec/recordings/{call}/grants",
                {"purpose": "training", "action": "play"}).status_code == 302
    assert trainer.get(f"/callrec/recordings/{call}/audio").status_code == 200


@pytest.mark.parametrize("url,field", [
    ("/callrec/complaints/cX/links", "callrec-attach-note"),
    ("/callrec/holds", "callrec-hold-reason"),
])
def test_control_characters_are_a_form_error_not_a_500(app, db_session, login, url, field):
    call = add_recording(db_session)
    data = {"callrec-attach-recording_id": call.id, "callrec-hold-scope": "recording",
            "callrec-hold-recording_id": call.id, "callrec-hold-kind": "investigation",
            "callrec-hold-reason": "ok", field: "bad\x00text"}
    response = post(app, login("owner"), url, data)
    assert response.status_code == 400 and "not allowed" in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ComplaintLink)) == 0
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Hold)) == 0


def test_a_form_refused_after_the_decision_leaves_no_allowed_event(app, db_session, login):
    call = add_recording(db_session)
    before = db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    response = post(app, login("owner"), f"/callrec/recordings/{call.id}/retention",
                    {"callrec-extend-retain_until": "not a date", "callrec-extend-reason": "audit"})
    assert response.status_code == 400
    db_session.commit()  # the test holds the app context: what the request left pending would land now
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before
