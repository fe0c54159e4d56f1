"""The training library: no call in it without the consent of the member of staff on it; withdrawal,
a patient's objection or a law-enforcement hold takes it out at once (the next Range request is refused)."""
import datetime as dt
import io

import sqlalchemy as sa
from hypothesis import strategies as st

from callrec_plugin import training_library
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import AuditEvent, Hold, Recording, TrainingConsent, utcnow
from tests.audio_samples import wav_bytes
from tests.conftest import valid_csrf_token
from tests.factories import add_recording

NOTE = "Calm handling of a billing question"


def post(app, client, url, data):
    token = valid_csrf_token(app, client)
    return client.post(url, data={"csrf_token": token, "callrec-training-csrf_token": token,
                                  "callrec-objection-csrf_token": token, "callrec-hold-csrf_token": token, **data})


def a_call(staff="reception", ref="lib-1"):
    """A real, playable call of patient pat2 that the member of staff ``staff`` answered."""
    return ingest_audio(io.BytesIO(wav_bytes(3.0)), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=1),
                        direction="inbound", from_number="+447700900002", to_number="201", source="t",
                        source_ref=ref, staff_user_ref=staff, staff_name=staff.capitalize()).recording_id


def propose(app, login, call, note=NOTE):
    return post(app, login("owner"), f"/callrec/recordings/{call}/training",
                {"callrec-training-approve": "yes", "callrec-training-note": note})


def answer(app, client, call, decision):
    return post(app, client, f"/callrec/training/{call}/answer", {"decision": decision})


def in_library(db_session, call):
    db_session.expire_all()
    return db_session.get(Recording, call).approved_for_training


def trainer_listening(app, login, call):
    """The trainer opens the call from the library; returns the client, now holding a training grant."""
    trainer = login("trainer")
    assert post(app, trainer, f"/callrec/training/{call}/listen", {}).status_code == 302
    player = trainer.get(f"/callrec/training?playing={call}").get_data(as_text=True)
    assert f'/callrec/recordings/{call}/audio' in player
    ranged = trainer.get(f"/callrec/recordings/{call}/audio", headers={"Range": "bytes=0-"})
    assert ranged.status_code == 206 and ranged.data[:4] == b"RIFF"
    return trainer


def last_events(db_session, after_seq):
    db_session.expire_all()
    return db_session.scalars(sa.select(AuditEvent).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq)).all()


def head(db_session):
    db_session.expire_all()
    return db_session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0


def test_no_library_entry_without_the_staff_members_consent(app, db_session, login):
    call = a_call()
    assert propose(app, login, call).status_code == 302
    consent = db_session.scalar(sa.select(TrainingConsent).where(TrainingConsent.recording_id == call))
    assert (consent.status, consent.staff_user_ref, consent.training_note) == ("requested", "reception", NOTE)
    assert not in_library(db_session, call)
    trainer = login("trainer")
    assert f"call-{call}" not in trainer.get("/callrec/training").get_data(as_text=True)
    assert post(app, trainer, f"/callrec/training/{call}/listen", {}).status_code == 403
    assert post(app, trainer, f"/callrec/recordings/{call}/grants",
                {"purpose": "training", "action": "play"}).status_code == 403

    reception = login("reception")
    mine = reception.get("/callrec/assessments").get_data(as_text=True)
    assert "Training use of your calls" in mine and NOTE in mine
    assert answer(app, reception, call, "consent").status_code == 302
    assert in_library(db_session, call)
    library = trainer.get("/callrec/training").get_data(as_text=True)
    assert f"call-{call}" in library and NOTE in library
    trainer_listening(app, login, call)


def test_declining_keeps_the_call_out(app, db_session, login):
    call = a_call()
    propose(app, login, call)
    assert answer(app, login("reception"), call, "decline").status_code == 302
    assert not in_library(db_session, call)
    assert db_session.scalar(sa.select(TrainingConsent.status).where(TrainingConsent.recording_id == call)) == "declined"
    assert answer(app, login("reception"), call, "consent").status_code == 409  # no open request any more
    assert not in_library(db_session, call)


def test_withdrawal_refuses_the_next_range_request_and_is_audited(app, db_session, login):
    call = a_call()
    propose(app, login, call)
    reception = login("reception")
    answer(app, reception, call, "consent")
    trainer = trainer_listening(app, login, call)
    before = head(db_session)
    assert answer(app, reception, call, "withdraw").status_code == 302
    assert not in_library(db_session, call)
    refused = trainer.get(f"/callrec/recordings/{call}/audio", headers={"Range": "bytes=1000-"})
    assert refused.status_code == 403 and b"RIFF" not in refused.data
    events = [(e.action, e.outcome, e.actor_ref, e.reason) for e in last_events(db_session, before)]
    assert ("training_consent", "done", "reception", "withdrawn") in events
    assert [e for e in events if e[2] == "trainer"] and all(e[1] == "denied" for e in events if e[2] == "trainer")
    assert f"call-{call}" not in trainer.get("/callrec/training").get_data(as_text=True)


def test_a_patient_objection_takes_the_call_out_at_once(app, db_session, login):
    call = a_call()
    propose(app, login, call)
    answer(app, login("reception"), call, "consent")
    trainer = trainer_listening(app, login, call)
    assert post(app, login("reception"), "/callrec/patients/pat2/objections",
                {"callrec-objection-note": "did not want to be recorded"}).status_code == 302
    assert not in_library(db_session, call)
    assert trainer.get(f"/callrec/recordings/{call}/audio", headers={"Range": "bytes=0-"}).status_code == 403
    assert propose(app, login, call).status_code == 409  # and it cannot be proposed again


def test_a_law_enforcement_hold_keeps_the_call_out_while_it_stands(app, db_session, login):
    call = a_call()
    propose(app, login, call)
    answer(app, login("reception"), call, "consent")
    trainer = trainer_listening(app, login, call)
    placed = post(app, login("owner"), "/callrec/holds", {
        "callrec-hold-scope": "recording", "callrec-hold-recording_id": call, "callrec-hold-kind": "law_enforcement",
        "callrec-hold-reason": "police request", "callrec-hold-external_reference": "GMP/1"})
    assert placed.status_code == 302
    assert not in_library(db_session, call)
    assert trainer.get(f"/callrec/recordings/{call}/audio", headers={"Range": "bytes=0-"}).status_code == 403
    assert propose(app, login, call).status_code == 409
    hold = db_session.scalar(sa.select(Hold).where(Hold.recording_id == call))
    hold.released_at = utcnow()
    db_session.commit()
    training_library.hold_changed(call)  # what callrec_hold_changed(change="released") does
    db_session.commit()
    assert in_library(db_session, call)  # the consent stands once nothing keeps the call out


def test_only_the_member_of_staff_on_the_call_answers(app, db_session, login):
    call = a_call()
    propose(app, login, call)
    for user in ("owner", "manager", "trainer", "handler", "dpo"):
        before = head(db_session)
        response = answer(app, login(user), call, "consent")
        assert response.status_code == 404, user
        assert [(e.outcome, bool(e.reason)) for e in last_events(db_session, before)] == [("denied", True)], user
    assert not in_library(db_session, call)


def test_staff_may_say_no_before_anyone_asks_and_a_new_proposal_asks_again(app, db_session, login):
    call = a_call()
    assert answer(app, login("reception"), call, "decline").status_code == 302
    assert db_session.scalar(sa.select(TrainingConsent.status).where(TrainingConsent.recording_id == call)) == "declined"
    assert propose(app, login, call).status_code == 302
    assert db_session.scalar(sa.select(TrainingConsent.status).where(TrainingConsent.recording_id == call)) == "requested"
    assert not in_library(db_session, call)


def test_owner_takes_a_call_out_and_a_call_without_staff_cannot_be_proposed(app, db_session, login):
    call = a_call()
    propose(app, login, call)
    answer(app, login("reception"), call, "consent")
    trainer = trainer_listening(app, login, call)
    assert post(app, login("manager"), f"/callrec/recordings/{call}/training",
                {"callrec-training-approve": "no"}).status_code == 302
    assert not in_library(db_session, call)
    assert trainer.get(f"/callrec/recordings/{call}/audio", headers={"Range": "bytes=0-"}).status_code == 403
    nobody = add_recording(db_session, staff_user_ref=None).id
    assert propose(app, login, nobody).status_code == 409


def test_library_membership_follows_consent_and_blockers_in_any_order(app, db_session):
    """A state machine over proposals, answers, removal, objections and law-enforcement holds: the call
    is in the library exactly when its member of staff consents and nothing keeps it out."""
    import itertools

    from hypothesis import settings
    from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

    from callrec_plugin.identity import Actor
    from callrec_plugin.models import PatientObjection

    owner = Actor(user=None, ref="owner", name="Owner", roles=frozenset({"owner"}), practice_ref="pA")
    staff = Actor(user=None, ref="reception", name="Reception", roles=frozenset({"staff"}), practice_ref="pA")
    numbers = itertools.count()

    class Membership(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.patient = f"patSM{next(numbers)}"
            self.call = add_recording(db_session, staff_user_ref="reception", patient_ref=self.patient)
            self.status, self.objected, self.holds = None, False, []

        def blocked(self):
            return self.objected or bool(self.holds)

        def attempt(self, change, allowed):
            try:
                change()
            except training_library.TrainingError:
                db_session.rollback()
                assert not allowed
                return False
            db_session.commit()
            assert allowed
            return True

        @rule()
        def propose(self):
            if self.attempt(lambda: training_library.propose(owner, self.call, "note"), not self.blocked()):
                self.status = self.status if self.status in ("requested", "consented") else "requested"

        @rule()
        def consent(self):
            if self.attempt(lambda: training_library.answer(staff, self.call, "consent"),
                            self.status == "requested" and not self.blocked()):
                self.status = "consented"

        @rule()
        def proposed_and_consented_at_once(self):  # reaches the library often enough to test leaving it
            self.propose()
            self.consent()

        @rule(decision=st.sampled_from(["decline", "withdraw"]))
        def say_no(self, decision):
            self.attempt(lambda: training_library.answer(staff, self.call, decision), True)
            self.status = "withdrawn" if self.status == "consented" else "declined"

        @rule()
        def remove(self):
            self.attempt(lambda: training_library.remove(owner, self.call), True)
            if self.status in ("requested", "consented"):
                self.status = "removed"

        @rule()
        def patient_objects(self):
            db_session.add(PatientObjection(practice_ref="pA", patient_ref=self.patient, recorded_by_ref="reception"))
            training_library.patient_objected("pA", self.patient)
            db_session.commit()
            self.objected = True

        @rule()
        def police_hold(self):
            hold = Hold(recording_id=self.call.id, practice_ref="pA", kind="law_enforcement", reason="r",
                        placed_by_ref="owner")
            db_session.add(hold)
            db_session.commit()
            training_library.hold_changed(self.call.id)
            db_session.commit()
            self.holds.append(hold)

        @rule()
        def release(self):
            if self.holds:
                self.holds.pop().released_at = utcnow()
                db_session.commit()
                training_library.hold_changed(self.call.id)
                db_session.commit()

        @invariant()
        def in_library_exactly_when_consented_and_unblocked(self):
            db_session.refresh(self.call)
            assert self.call.approved_for_training == (self.status == "consented" and not self.blocked())

    run_state_machine_as_test(Membership, settings=settings(max_examples=100, stateful_step_count=12, deadline=None))


def test_calls_approved_before_consent_existed_become_requests(tmp_path, database_url):
    """The upgrade to 0008: an approval nobody asked the member of staff about waits for their consent."""
    from callrec_plugin import migrate
    from tests.test_migrations import fresh_engine

    engine = fresh_engine(tmp_path, database_url)
    migrate.upgrade(engine, "0007")
    table = sa.Table("callrec_recordings", sa.MetaData(), autoload_with=engine)
    filler = {sa.String: "x", sa.Text: "x", sa.Boolean: False, sa.Integer: 0, sa.BigInteger: 0, sa.Float: 0.0,
              sa.DateTime: dt.datetime(2026, 11, 1), sa.LargeBinary: b""}

    def row(rid, staff, approved):
        values = {c.name: next(v for t, v in filler.items() if isinstance(c.type, t))
                  for c in table.columns if not c.nullable}
        return {**values, "id": rid, "source_ref": rid, "staff_user_ref": staff, "approved_for_training": approved,
                "training_approved_by_ref": "owner" if approved else None}

    with engine.begin() as connection:
        connection.execute(table.insert(), [row("withstaff", "reception", True), row("nostaff", None, True),
                                            row("plain", "reception", False)])
    migrate.upgrade(engine)
    with engine.connect() as connection:
        approved = connection.execute(sa.text(
            "SELECT id FROM callrec_recordings WHERE approved_for_training = :yes"), {"yes": True}).all()
        consents = connection.execute(sa.text(
            "SELECT recording_id, staff_user_ref, status, proposed_by_ref FROM callrec_training_consents")).all()
    assert approved == []
    assert [tuple(c) for c in consents] == [("withstaff", "reception", "requested", "owner")]
