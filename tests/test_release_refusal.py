"""holds.release_refusal is the one rule of who may release a hold now: the holds page offers the
button, or says why not, by asking it, and the release handler refuses with its words."""
import sqlalchemy as sa

from callrec_plugin import holds
from callrec_plugin.hold_groups import HoldGroup
from callrec_plugin.identity import Actor
from callrec_plugin.models import Hold, HoldKind, utcnow
from tests.factories import add_recording
from tests.test_evidence_and_holds import post

OWNER = Actor(user=None, ref="owner", name="Owner", roles=frozenset({"owner"}), practice_ref="pA")
MANAGER = Actor(user=None, ref="manager", name="Manager", roles=frozenset({"manager"}), practice_ref="pA")
SECOND_PERSON = "a second, different person must approve releasing a regulator or law-enforcement hold"


def _regulator_hold(app, db_session, calls=1):
    recordings = [add_recording(db_session) for _ in range(calls)]
    with app.test_request_context():
        placed = holds.place_holds(MANAGER, recordings, HoldKind.REGULATOR, "CQC inspection", "CQC-9")
    db_session.commit()
    return placed


def _released(db_session, placed):
    db_session.expire_all()
    return [db_session.get(Hold, hold.id).released_at is not None for hold in placed]


def test_the_first_approver_is_told_why_and_refused_with_the_same_words(app, db_session, login):
    placed = _regulator_hold(app, db_session, calls=2)
    owner, manager = login("owner"), login("manager")
    assert post(app, owner, f"/callrec/holds/{placed[0].id}/release", {}).status_code == 302  # 1 of 2
    db_session.expire_all()
    assert holds.release_refusal(OWNER, placed) == SECOND_PERSON

    mine = owner.get("/callrec/holds").get_data(as_text=True)
    assert "Approve release" not in mine and f'/callrec/holds/{placed[0].id}/release"' not in mine
    assert "A" + SECOND_PERSON[1:] + "." in mine  # the reason, where the button would be

    again = post(app, owner, f"/callrec/holds/{placed[1].id}/release", {})
    assert again.status_code == 409 and SECOND_PERSON in again.get_data(as_text=True)
    assert _released(db_session, placed) == [False, False]

    theirs = manager.get("/callrec/holds").get_data(as_text=True)
    assert "Approve release (2 of 2) of 2 calls" in theirs and SECOND_PERSON[1:] not in theirs
    assert post(app, manager, f"/callrec/holds/{placed[0].id}/release", {}).status_code == 302
    assert _released(db_session, placed) == [True, True]


def test_the_page_and_the_handler_follow_the_same_function(app, db_session, login, monkeypatch):
    """Whatever release_refusal says is what the page shows and what the handler does."""
    placed = _regulator_hold(app, db_session)
    owner, manager = login("owner"), login("manager")
    assert post(app, owner, f"/callrec/holds/{placed[0].id}/release", {}).status_code == 302  # 1 of 2
    monkeypatch.setattr(holds, "release_refusal",
                        lambda actor, hold_or_group: "the moon is full" if actor.ref == "manager" else None)

    theirs = manager.get("/callrec/holds").get_data(as_text=True)
    assert "The moon is full." in theirs and "Approve release" not in theirs
    refused = post(app, manager, f"/callrec/holds/{placed[0].id}/release", {})
    assert refused.status_code == 409 and "the moon is full" in refused.get_data(as_text=True)
    assert _released(db_session, placed) == [False]

    mine = owner.get("/callrec/holds").get_data(as_text=True)  # the rule now lets the first approver finish
    assert "Approve release (2 of 2)" in mine and "moon" not in mine
    assert post(app, owner, f"/callrec/holds/{placed[0].id}/release", {}).status_code == 302
    assert _released(db_session, placed) == [True]


def test_release_refusal_judges_a_hold_its_request_or_a_group_of_the_page():
    regulator = Hold(kind=HoldKind.REGULATOR, release_requested_by_ref="owner")
    group = HoldGroup("g", holds=[regulator, Hold(kind=HoldKind.REGULATOR, released_at=utcnow())])
    for given in (regulator, [regulator], group):
        assert holds.release_refusal(OWNER, given) == SECOND_PERSON
        assert holds.release_refusal(MANAGER, given) is None
    assert holds.release_refusal(OWNER, Hold(kind=HoldKind.INVESTIGATION)) is None
    assert holds.release_refusal(OWNER, Hold(kind=HoldKind.REGULATOR)) is None  # the first approval
    assert holds.release_refusal(OWNER, Hold(kind=HoldKind.COMPLAINT)).startswith("a complaint hold is released")
    assert holds.release_refusal(OWNER, Hold(kind=HoldKind.DISCLOSURE)).startswith("a disclosure hold is released")
    assert holds.release_refusal(OWNER, []) == "the hold is already released"
    assert holds.release_refusal(OWNER, Hold(kind=HoldKind.INVESTIGATION, released_at=utcnow())) == (
        "the hold is already released")


def test_holds_released_only_with_their_complaint_or_disclosure_say_so_instead_of_a_button(app, db_session, login):
    call = add_recording(db_session)
    with app.test_request_context():
        holds.place_holds(MANAGER, [call], HoldKind.COMPLAINT, "evidence", complaint_ref="cX")
        holds.place_holds(MANAGER, [call], HoldKind.DISCLOSURE, "disclosed", group_id="D1")
    db_session.commit()
    page = login("owner").get("/callrec/holds").get_data(as_text=True)
    assert "A complaint hold is released when the complaint is closed or the call detached." in page
    assert f"or a set period after its bundle was delivered ({app.config['CALLREC_DISCLOSURE_HOLD_DAYS']} days)." in page
    assert "/release\"" not in page
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Hold).where(Hold.released_at.is_(None))) == 2
