"""A disclosure holds its calls from its request until it is refused, or a set period after delivery."""
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from callrec_plugin import exports, holds, purge
from callrec_plugin.identity import Actor
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import Disclosure, Hold, HoldKind, Recording, utcnow
from tests.audio_samples import wav_bytes
from tests.conftest import valid_csrf_token

DPO = Actor(user=None, ref="dpo", name="Dpo", roles=frozenset({"dpo"}), practice_ref="pA")
MANAGER = Actor(user=None, ref="manager", name="Manager", roles=frozenset({"manager"}), practice_ref="pA")


@pytest.fixture
def expired_call(app, db_session):
    """A call past its retention: the next purge would take it, unless something holds it."""
    result = ingest_audio(io.BytesIO(wav_bytes(1.0)), practice_ref="pA", started_at=utcnow() - dt.timedelta(days=200),
                          direction="inbound", from_number="+447700900001", to_number="201", source="test",
                          source_ref="disclosed", staff_name="Rita Reception")
    recording = db_session.get(Recording, result.recording_id)
    recording.retain_until = utcnow() - dt.timedelta(days=10)
    db_session.commit()
    return result.recording_id


def request(db_session, recording_id):
    disclosure = exports.request_disclosure(
        DPO, recipient="Greater Manchester Police", recipient_kind="law_enforcement",
        legal_basis="DPA 2018 Schedule 2 paragraph 2", reference="GMP/2026/7", recording_ids=[recording_id])
    return disclosure.id


def status(db_session, recording_id):
    db_session.expire_all()
    return db_session.get(Recording, recording_id).status


def test_a_requested_disclosure_holds_its_calls_while_the_second_approver_is_awaited(
        app, db_session, login, expired_call):
    disclosure_id = request(db_session, expired_call)
    hold = db_session.scalar(sa.select(Hold).where(Hold.recording_id == expired_call))
    assert (hold.kind, hold.group_id, hold.external_reference) == (HoldKind.DISCLOSURE, disclosure_id, "GMP/2026/7")
    purge.purge(now=utcnow() + dt.timedelta(days=20))
    assert status(db_session, expired_call) == "active"
    # the hold shows with the disclosure's reference to those who may see holds; to staff only as "Held"
    for user in ("owner", "manager", "dpo"):
        page = login(user).get(f"/callrec/recordings/{expired_call}").get_data(as_text=True)
        assert "GMP/2026/7" in page and "Disclosure" in page, user
    page = login("reception").get(f"/callrec/recordings/{expired_call}").get_data(as_text=True)
    assert ">Held<" in page and "GMP/2026/7" not in page and "isclosure" not in page


def test_a_disclosure_hold_is_not_released_by_hand(app, db_session, login, expired_call):
    request(db_session, expired_call)
    hold = db_session.scalar(sa.select(Hold).where(Hold.recording_id == expired_call))
    client = login("owner")
    response = client.post(f"/callrec/holds/{hold.id}/release", data={"csrf_token": valid_csrf_token(app, client)})
    assert response.status_code == 409
    db_session.expire_all()
    assert db_session.get(Hold, hold.id).released_at is None


def test_a_refused_disclosure_releases_its_calls_after_the_grace_period(app, db_session, expired_call):
    disclosure_id = request(db_session, expired_call)
    exports.refuse_disclosure(MANAGER, db_session.get(Disclosure, disclosure_id), "no lawful basis shown")
    hold = db_session.scalar(sa.select(Hold).where(Hold.recording_id == expired_call))
    assert hold.released_at is not None and hold.released_by_ref == "manager"
    purge.purge(now=utcnow() + dt.timedelta(days=1))
    assert status(db_session, expired_call) == "active"  # the grace period after a release
    purge.purge(now=utcnow() + dt.timedelta(days=30))
    assert status(db_session, expired_call) == "purged"


def test_a_delivered_disclosure_holds_its_calls_for_the_configured_period(app, db_session, login, expired_call):
    app.config["CALLREC_DISCLOSURE_HOLD_DAYS"] = 10
    disclosure_id = request(db_session, expired_call)
    export, _job = exports.approve_disclosure(MANAGER, db_session.get(Disclosure, disclosure_id))
    export_id = export.id
    exports.build_export(export_id)
    purge.purge(now=utcnow() + dt.timedelta(days=40))  # approved, not yet delivered: still held
    assert status(db_session, expired_call) == "active"
    assert login("dpo").get(f"/callrec/exports/{export_id}/download").status_code == 200
    db_session.expire_all()
    delivered = db_session.get(Disclosure, disclosure_id).delivered_at
    assert delivered is not None
    purge.purge(now=delivered + dt.timedelta(days=9))
    assert status(db_session, expired_call) == "active"
    assert holds.sync_disclosure_holds(now=delivered + dt.timedelta(days=9, hours=23)) == 0
    assert holds.sync_disclosure_holds(now=delivered + dt.timedelta(days=10, hours=1)) == 1  # purge runs this first
    hold = db_session.scalar(sa.select(Hold).where(Hold.recording_id == expired_call))
    assert hold.released_at is not None  # the grace period starts now
