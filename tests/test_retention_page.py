"""The retention page as people read it: the purge's state, one list of calls due by week, held calls
with their holds, two charts whose numbers equal direct counts, extensions with who and why, and a
filter by patient. Also extending a call: a listed reason, the practice's cap, then only a hold."""
import datetime as dt
import re

import sqlalchemy as sa

from callrec_plugin import purge, queueing
from callrec_plugin.charts import bar_chart, chart_values
from callrec_plugin.models import Hold, Job, Recording, RetentionExtension, Tombstone, utcnow
from tests.factories import add_recording
from tests.test_evidence_and_holds import post


def section(page, element_id):
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</figure>", start)]


def test_charts_read_back_their_numbers_and_escape_labels():
    svg = bar_chart([("<script>", 3), ("b", 0)], "T", horizontal=True)
    assert "<script>" not in str(svg) and chart_values(svg) == [("<script>", 3), ("b", 0)]
    assert 'role="img"' in str(svg) and "<title>T: &lt;script&gt; 3; b 0</title>" in str(svg)
    assert "Nothing" in str(bar_chart([], "T"))


def test_retention_page_lists_due_and_held_calls_and_charts_equal_direct_counts(app, db_session, login):
    now = utcnow()
    due_soon = add_recording(db_session, patient_ref="pat1", started_at=now - dt.timedelta(days=180),
                             retain_until=now + dt.timedelta(days=2), staff_name="Rita Reception")
    due_later = add_recording(db_session, patient_ref="pat2", started_at=now - dt.timedelta(days=160),
                              retain_until=now + dt.timedelta(days=20))
    add_recording(db_session, started_at=now - dt.timedelta(days=60), retain_until=now + dt.timedelta(days=120))
    held = add_recording(db_session, patient_ref="pat1", started_at=now - dt.timedelta(days=220),
                         retain_until=now - dt.timedelta(days=40))
    other_practice = add_recording(db_session, practice_ref="pB", patient_ref="patB",
                                   retain_until=now + dt.timedelta(days=3))
    for recording, kind, reason in ((held, "investigation", "staff grievance"), (due_later, "regulator", "CQC")):
        db_session.add(Hold(recording_id=recording.id, practice_ref="pA", kind=kind, reason=reason,
                            placed_by_ref="owner", placed_at=now - dt.timedelta(days=10)))
    db_session.add(Hold(recording_id=other_practice.id, practice_ref="pB", kind="law_enforcement", reason="x",
                        placed_by_ref="ownerB", placed_at=now))
    for month, count in ((dt.datetime(2026, 5, 3, tzinfo=dt.timezone.utc), 2), (now, 1)):
        for n in range(count):
            db_session.add(Tombstone(recording_id=f"gone{month:%m}{n}", practice_ref="pA", started_at=month,
                                     retain_until=month, purged_at=month, reason="retention expired"))
    db_session.add(Tombstone(recording_id="goneB", practice_ref="pB", started_at=now, retain_until=now, purged_at=now,
                             reason="retention expired"))
    db_session.commit()

    response = login("dpo").get("/callrec/retention")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    # one list, by week, with patient, handler and days left; held and far-off calls are not in it
    due = page[page.index("callrec-due-heading"):page.index("callrec-held-heading")]
    assert due_soon.id in due and "Ada Patient" in due and "?patient=pat1" in due
    assert "Rita Reception" in due and "Deleted in 2 days" in due and "Week of" in due
    assert due_later.id not in due and held.id not in due and other_practice.id not in due
    # held past their date: the hold, its reason and its age
    kept = page[page.index("callrec-held-heading"):page.index("callrec-charts-heading")]
    assert held.id in kept and "staff grievance" in kept and "10 days" in kept
    # the charts' numbers equal a direct count of this practice's rows
    direct_holds = dict(db_session.execute(sa.select(Hold.kind, sa.func.count()).where(
        Hold.practice_ref == "pA", Hold.released_at.is_(None)).group_by(Hold.kind)).all())
    labels = {"investigation": "Internal investigation", "regulator": "Regulator"}
    assert dict(chart_values(section(page, "callrec-holds-chart"))) == {labels[k]: v for k, v in direct_holds.items()}
    deleted = dict(chart_values(section(page, "callrec-deleted-chart")))
    direct = {}
    for purged_at in db_session.scalars(sa.select(Tombstone.purged_at).where(Tombstone.practice_ref == "pA")):
        direct[purged_at.strftime("%Y-%m")] = direct.get(purged_at.strftime("%Y-%m"), 0) + 1
    assert {k: v for k, v in deleted.items() if v} == {k: v for k, v in direct.items() if k in deleted}
    assert deleted[now.strftime("%Y-%m")] == 1 and len(deleted) == 12
    assert "<td>Regulator</td><td>1</td>" in page  # the table one click away
    # the filter by patient
    mine = login("owner").get("/callrec/retention?patient=pat2").get_data(as_text=True)
    assert due_soon.id not in mine
    assert login("owner").get("/callrec/retention?patient=patB").status_code == 404  # another practice's patient
    assert login("reception").get("/callrec/retention").status_code == 403


def _past_the_schedulers_slack(monkeypatch):
    """The page gives the scheduler a few minutes after each due time before it calls it missing; in
    those minutes move callrec's clock just past them (within the same hour), so the test reads the same
    whenever it runs."""
    from callrec_plugin import clock
    from callrec_plugin.retention_report import SCHEDULER_SLACK

    real = utcnow()
    shift = queueing.purge_due_at(real) + SCHEDULER_SLACK + dt.timedelta(minutes=1) - real
    if shift > dt.timedelta(0):
        monkeypatch.setattr(clock, "now", lambda: dt.datetime.now(dt.timezone.utc) + shift)


def test_the_purge_state_says_when_it_ran_what_it_did_and_why_calls_are_overdue(app, db_session, login,
                                                                                 monkeypatch):
    _past_the_schedulers_slack(monkeypatch)
    now = utcnow()
    overdue = [add_recording(db_session, retain_until=now - dt.timedelta(hours=3)) for _ in range(2)]
    page = login("owner").get("/callrec/retention").get_data(as_text=True)
    overdue_text = re.search(r'id="callrec-overdue" class="([^"]+)">([^<]+)<', page)
    assert overdue_text.group(1) == "callrec-alert" and overdue_text.group(2).startswith("2: the scheduler is not running")
    assert "Last run</dt>\n  <dd>never" in page
    # the scheduler runs a round: the purge runs in-process (no Redis) and the page says so
    queueing.scheduler_tick()
    page = login("owner").get("/callrec/retention").get_data(as_text=True)
    overdue_text = re.search(r'id="callrec-overdue" class="([^"]+)">([^<]+)<', page)
    assert overdue_text.groups() == ("callrec-ok", "0")
    assert "finished:\n      deleted 2 calls of this practice" in page
    next_run = queueing.purge_due_at(utcnow()) + queueing.purge_interval()
    assert f"{next_run:%d %b %Y %H:%M} UTC" in page
    assert all(db_session.get(Recording, r.id).status == "purged" for r in overdue)
    # a failed run is named as the reason
    db_session.execute(sa.update(Job).values(status="finished"))
    from callrec_plugin.models import PurgeRun

    from callrec_plugin import clock

    # after the run above, on callrec's clock (which the test may have moved)
    db_session.add(PurgeRun(started_at=clock.now() + dt.timedelta(seconds=1), status="failed", trigger="test",
                            error="OperationalError: disk full"))
    add_recording(db_session, retain_until=now - dt.timedelta(hours=1))
    page = login("owner").get("/callrec/retention").get_data(as_text=True)
    assert "1: the last purge run failed: OperationalError: disk full" in page


def test_keeping_a_call_longer_needs_a_listed_reason_and_stops_at_the_cap(app, db_session, login):
    call = add_recording(db_session, started_at=utcnow() - dt.timedelta(days=10))
    own = call.retain_until
    owner, manager = login("owner"), login("manager")
    url = f"/callrec/recordings/{call.id}/retention"

    def ask(client, until, code, text=""):
        return post(app, client, url, {"callrec-extend-retain_until": until.strftime("%Y-%m-%d"),
                                       "callrec-extend-reason_code": code, "callrec-extend-reason": text})

    assert ask(owner, own + dt.timedelta(days=30), "other").status_code == 400  # "other" needs words
    assert ask(owner, own + dt.timedelta(days=30), "sometimes").status_code == 400  # not on the list
    assert ask(owner, own + dt.timedelta(days=30), "complaint_expected").status_code == 302
    # the cap: six further months from the call's own date, whoever asks; beyond it only a hold
    beyond = ask(manager, own + dt.timedelta(days=200), "legal_advice")
    assert beyond.status_code == 400 and "place a hold" in beyond.get_data(as_text=True)  # beside the date
    assert ask(manager, own + dt.timedelta(days=150), "other", "solicitor's letter").status_code == 302
    rows = db_session.scalars(sa.select(RetentionExtension).order_by(RetentionExtension.id)).all()
    assert [(r.reason_code, r.extended_by_ref) for r in rows] == [("complaint_expected", "owner"), ("other", "manager")]
    assert rows[0].previous_until == own and rows[1].previous_until == rows[0].new_until
    # the call's page and the retention page show who and why
    page = owner.get(f"/callrec/recordings/{call.id}").get_data(as_text=True)
    assert "A complaint is expected" in page and "Other (say what): solicitor&#39;s letter" in page
    retention = owner.get("/callrec/retention").get_data(as_text=True)
    assert "Other (say what): solicitor&#39;s letter" in retention and "A complaint is expected" in retention
    # the purge still takes it at its new date
    db_session.expire_all()
    assert purge.purge(now=db_session.get(Recording, call.id).retain_until).purged_ids == [call.id]
