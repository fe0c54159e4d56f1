"""Monthly spot checks: the sampling plan, the reproducible draw and its exclusions, the queue page."""
import datetime as dt
import zoneinfo

import sqlalchemy as sa
from hypothesis import given, settings, strategies as st

from callrec_plugin import spot_checks
from callrec_plugin.models import (
    AccessGrant, AuditEvent, Hold, PatientObjection, SamplingPlan, SpotCheck, SpotCheckDraw,
)
from callrec_plugin.rubric import DEFAULT_CRITERIA
from callrec_plugin.spot_checks import Candidate, pick
from tests.conftest import csrf_from
from tests.factories import add_recording

LONDON_OCTOBER = dt.datetime(2026, 10, 10, 9, 0, tzinfo=dt.timezone.utc)


def calls(session, staff, count, start=LONDON_OCTOBER, **fields):
    fields.setdefault("patient_ref", "pat2")
    return [add_recording(session, started_at=start + dt.timedelta(hours=n), staff_user_ref=staff,
                          staff_name=staff.capitalize(), **fields).id for n in range(count)]


def drawn(session, draw):
    rows = session.scalars(sa.select(SpotCheck).where(SpotCheck.draw_id == draw.id)).all()
    by_staff = {}
    for row in rows:
        by_staff.setdefault(row.staff_user_ref, set()).add(row.recording_id)
    return by_staff, rows


def test_draw_takes_the_plan_per_member_of_staff_and_all_of_a_short_month(app, db_session):
    alice = calls(db_session, "alice", 7)
    bob = calls(db_session, "bob", 2)  # fewer calls than the plan: all of them
    with app.test_request_context():
        draw, made = spot_checks.draw("pA", "2026-10")
        db_session.commit()
    by_staff, rows = drawn(db_session, draw)
    assert made and set(by_staff) == {"alice", "bob"}
    assert len(by_staff["alice"]) == 3 and by_staff["alice"] <= set(alice)
    assert by_staff["bob"] == set(bob)
    assert {(r.staff_user_ref, r.population) for r in rows} == {("alice", 7), ("bob", 2)}
    assert draw.calls_per_staff == 3 and len(draw.seed) == 32


def test_exclusions_are_never_drawn(app, db_session):
    eligible = calls(db_session, "carol", 2)
    purged = calls(db_session, "carol", 2, status="purged")
    objector = calls(db_session, "carol", 2, patient_ref="pat1")  # pat1 objected (below)
    despite = calls(db_session, "carol", 1, recorded_despite_objection=True)
    police = calls(db_session, "carol", 2)
    investigation = calls(db_session, "carol", 1)  # an internal hold does not keep a call out of a spot check
    released = calls(db_session, "carol", 1)  # a released law-enforcement hold no longer does
    calls(db_session, "carol", 2, start=LONDON_OCTOBER + dt.timedelta(days=30))  # November
    calls(db_session, "carolB", 2, practice_ref="pB")  # another practice
    add_recording(db_session, started_at=LONDON_OCTOBER, staff_user_ref=None)  # nobody on record
    db_session.add(PatientObjection(practice_ref="pA", patient_ref="pat1", recorded_by_ref="reception"))
    for rid in police:
        db_session.add(Hold(recording_id=rid, practice_ref="pA", kind="law_enforcement", reason="r",
                            placed_by_ref="owner"))
    db_session.add(Hold(recording_id=investigation[0], practice_ref="pA", kind="investigation", reason="r",
                        placed_by_ref="owner"))
    db_session.add(Hold(recording_id=released[0], practice_ref="pA", kind="law_enforcement", reason="r",
                        placed_by_ref="owner", released_at=LONDON_OCTOBER))
    db_session.add(SamplingPlan(practice_ref="pA", calls_per_staff=10, inbound_only=False, min_duration_seconds=0))
    db_session.commit()
    with app.test_request_context():
        draw, _ = spot_checks.draw("pA", "2026-10")
        db_session.commit()
    by_staff, rows = drawn(db_session, draw)
    assert by_staff == {"carol": set(eligible + investigation + released)}
    assert not by_staff["carol"] & set(purged + objector + despite + police)
    assert {r.population for r in rows} == {4}


def test_plan_inbound_only_and_minimum_duration(app, db_session):
    long_in = calls(db_session, "dan", 2, duration_seconds=120)
    calls(db_session, "dan", 2, duration_seconds=120, direction="outbound")
    calls(db_session, "dan", 2, duration_seconds=20)
    db_session.add(SamplingPlan(practice_ref="pA", calls_per_staff=5, inbound_only=True, min_duration_seconds=60))
    db_session.commit()
    with app.test_request_context():
        draw, _ = spot_checks.draw("pA", "2026-10")
        db_session.commit()
    assert drawn(db_session, draw)[0] == {"dan": set(long_in)}
    assert draw.inbound_only and draw.min_duration_seconds == 60


def test_the_draw_is_reproducible_from_its_recorded_seed(app, db_session):
    for name in ("erin", "frank", "gita"):
        calls(db_session, name, 9)
    with app.test_request_context():
        draw, _ = spot_checks.draw("pA", "2026-10")
        db_session.commit()
        again = pick(spot_checks.eligible_calls("pA", "2026-10", draw.inbound_only, draw.min_duration_seconds),
                     draw.seed, draw.calls_per_staff)
        other_seed = pick(spot_checks.eligible_calls("pA", "2026-10", False, 0), "another seed", 3)
        same_draw, made = spot_checks.draw("pA", "2026-10")
    recorded = drawn(db_session, draw)[0]
    assert {staff: {c.recording_id for c in chosen} for staff, chosen in again.items()} == recorded
    assert {staff: {c.recording_id for c in chosen} for staff, chosen in other_seed.items()} != recorded
    assert same_draw.id == draw.id and not made  # a month is drawn once; drawing again keeps it
    event = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "spot_checks_drawn"))
    assert event.object_type == "spot_check_draw" and draw.seed in event.reason


def test_months_are_the_practice_calendar_months(app, db_session):
    # 00:30 on 1 July in London is 23:30 UTC on 30 June: a July call for the practice.
    july = add_recording(db_session, started_at=dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.timezone.utc),
                         staff_user_ref="hana", patient_ref="pat2").id
    with app.test_request_context():
        assert spot_checks.eligible_calls("pA", "2026-06", False, 0) == {}
        assert [c.recording_id for c in spot_checks.eligible_calls("pA", "2026-07", False, 0)["hana"]] == [july]
        # 23:30 UTC on 31 July is already 1 August in London: the month before is July.
        london = zoneinfo.ZoneInfo("Europe/London")
        assert spot_checks.previous_month(dt.datetime(2026, 7, 31, 23, 30, tzinfo=dt.timezone.utc), london) == "2026-07"


def test_a_month_not_over_cannot_be_drawn(app, db_session):
    with app.test_request_context():
        this_month = spot_checks.previous_month(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=32),
                                                dt.timezone.utc)
        try:
            spot_checks.draw("pA", this_month)
        except spot_checks.SpotCheckError as error:
            assert "has not ended" in str(error)
        else:
            raise AssertionError("drew a month that has not ended")


def test_the_scheduler_draws_last_month_once(app, db_session):
    november = dt.datetime(2026, 11, 12, 10, tzinfo=dt.timezone.utc)
    calls(db_session, "ivan", 4, start=november)
    calls(db_session, "jo", 1, start=november, practice_ref="pB")
    first_of_december = dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.timezone.utc)
    with app.test_request_context():
        made = spot_checks.draw_due(first_of_december)
        assert spot_checks.draw_due(first_of_december + dt.timedelta(minutes=1)) == []  # checked today
        from callrec_plugin.state import get_state
        get_state().cache.pop("spot_checks_checked")
        assert spot_checks.draw_due(first_of_december + dt.timedelta(hours=5)) == []  # drawn already
    draws = db_session.scalars(sa.select(SpotCheckDraw).order_by(SpotCheckDraw.practice_ref)).all()
    assert len(made) == 2 and [(d.practice_ref, d.month, d.drawn_by_ref) for d in draws] == [
        ("pA", "2026-11", "system"), ("pB", "2026-11", "system")]


def test_cli_draws_a_given_month(app, db_session):
    calls(db_session, "kim", 5)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["callrec", "spot-checks", "draw", "--month", "2026-10", "--practice", "pA"])
    assert result.exit_code == 0, result.output
    assert "pA 2026-10: drew 3 calls of 1 members of staff" in result.output
    again = runner.invoke(args=["callrec", "spot-checks", "draw", "--month", "2026-10", "--practice", "pA"])
    assert "already drawn" in again.output
    bad = runner.invoke(args=["callrec", "spot-checks", "draw", "--month", "October"])
    assert bad.exit_code != 0 and "YYYY-MM" in bad.output


def test_queue_page_counts_done_and_opens_a_call_for_a_spot_check(app, db_session, login):
    calls(db_session, "reception", 4)
    with app.test_request_context():
        draw, _ = spot_checks.draw("pA", "2026-10")
        db_session.commit()
    checks = drawn(db_session, draw)[1]
    manager = login("manager")
    page = manager.get("/callrec/spot-checks")
    assert page.status_code == 200
    assert "Spot checks for October 2026: 0 of 3 done" in page.get_data(as_text=True)
    target = checks[0].recording_id
    token = csrf_from(page.get_data(as_text=True))
    opened = manager.post(f"/callrec/recordings/{target}/spot-check", data={"csrf_token": token})
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"/recordings/{target}/assess#player")
    grant = db_session.scalar(sa.select(AccessGrant).where(AccessGrant.recording_id == target))
    assert grant.purpose == "spot_check" and grant.user_ref == "manager"
    event = db_session.get(AuditEvent, grant.audit_seq)
    assert (event.action, event.outcome, event.purpose) == ("play", "allowed", "spot_check")
    form = manager.get(f"/callrec/recordings/{target}/assess").get_data(as_text=True)
    scores = {f"callrec-assess-score-{key}": "meets" for key, _ in DEFAULT_CRITERIA}
    done = manager.post(f"/callrec/recordings/{target}/assessments",
                        data={**scores, "callrec-assess-csrf_token": csrf_from(form)})
    assert done.status_code == 302
    assert "Spot checks for October 2026: 1 of 3 done" in manager.get("/callrec/spot-checks").get_data(as_text=True)


def test_sampling_plan_is_edited_by_owner_and_manager_only(app, db_session, login):
    owner = login("owner")
    token = csrf_from(owner.get("/callrec/spot-checks").get_data(as_text=True))
    saved = owner.post("/callrec/spot-checks/plan", data={"calls_per_staff": "5", "inbound_only": "y",
                                                          "min_duration_seconds": "30", "csrf_token": token})
    assert saved.status_code == 302
    plan = db_session.get(SamplingPlan, "pA")
    assert (plan.calls_per_staff, plan.inbound_only, plan.min_duration_seconds, plan.updated_by_ref) == (
        5, True, 30.0, "owner")
    assert owner.post("/callrec/spot-checks/plan", data={"calls_per_staff": "0", "csrf_token": token}).status_code == 400
    for user in ("handler", "trainer", "reception", "dpo"):
        assert login(user).get("/callrec/spot-checks").status_code == 403


# -- the sample itself, for any calls --------------------------------------------------------------------

staff_calls = st.dictionaries(
    st.sampled_from(["s1", "s2", "s3", "s4"]),
    st.lists(st.text("abcdef0123456789", min_size=4, max_size=8), min_size=0, max_size=12, unique=True),
    max_size=4)


def candidates(raw):
    return {staff: [Candidate(rid, staff, staff) for rid in ids] for staff, ids in raw.items()}


@settings(max_examples=200, deadline=None)
@given(raw=staff_calls, seed=st.text(min_size=1, max_size=32), k=st.integers(1, 6))
def test_pick_is_a_reproducible_fair_share(raw, seed, k):
    chosen = pick(candidates(raw), seed, k)
    assert chosen == pick(candidates(raw), seed, k)  # the seed reproduces it
    assert set(chosen) == set(raw)
    for staff, ids in raw.items():
        ids_chosen = [c.recording_id for c in chosen[staff]]
        assert len(ids_chosen) == min(k, len(ids)) == len(set(ids_chosen))
        assert set(ids_chosen) <= set(ids)


@settings(max_examples=100, deadline=None)
@given(raw=staff_calls, seed=st.text(min_size=1, max_size=32), k=st.integers(1, 6),
       extra=st.lists(st.text("ghij", min_size=3, max_size=5), min_size=1, max_size=5, unique=True))
def test_one_member_of_staff_calls_never_change_another_sample(raw, seed, k, extra):
    before = pick(candidates(raw), seed, k)
    changed = dict(raw, s9=extra)
    after = pick(candidates(changed), seed, k)
    assert {s: v for s, v in after.items() if s != "s9"} == before


def test_the_scheduler_round_makes_the_monthly_draw(app, db_session):
    from callrec_plugin import queueing

    calls(db_session, "lena", 2, start=dt.datetime(2026, 11, 3, 10, tzinfo=dt.timezone.utc))
    with app.test_request_context():
        done = queueing.scheduler_tick(now=dt.datetime(2026, 12, 1, 0, 1, tzinfo=dt.timezone.utc))
    draw = db_session.scalar(sa.select(SpotCheckDraw))
    assert done["spot_checks"] == [draw.id] and draw.month == "2026-11"
    assert [(r.staff_user_ref, r.population) for r in drawn(db_session, draw)[1]] == [("lena", 2), ("lena", 2)]
