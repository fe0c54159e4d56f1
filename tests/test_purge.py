"""Purge: the retention state machine extended with "run purge", statements per batch, reconciler, dry run.

The machine ingests recordings (metadata rows and small real CRE1 blobs), places and releases holds,
moves the clock, runs the purge (sometimes interrupted at a named point, as a crash would) and checks:
no held, unexpired or in-grace recording is ever purged; every eligible one is purged by the next
complete run; every purge leaves exactly one tombstone and one audit event, no data key and no blob.
"""
import datetime as dt
import os
import time

import pytest
import sqlalchemy as sa
from flask import current_app
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from callrec_plugin import audit, purge
from callrec_plugin.models import AuditEvent, Hold, Recording, Tombstone, new_id, utcnow
from tests import hostapp
from tests import jobs_support as js
from tests.conftest import empty_tables

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
GRACE = dt.timedelta(days=7)
CRASH_POINTS = ("after_lock", "before_commit", "after_commit", "mid_delete", "after_delete", "after_purged")


class Crash(BaseException):
    """Stands for SIGKILL inside the process: nothing after the point runs, nothing is tidied."""


class PurgeMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.session = hostapp.db.session
        self.session.rollback()
        empty_tables(self.session)
        self.blobs = js.Blobs(current_app)
        self.now = START
        self.retain = {}  # recording id -> retain_until
        self.holds = {}  # hold id -> [recording id, released_at or None]
        self.purged = set()
        self.keys = {}  # recording id -> storage key

    # -- the model --

    def expected_eligible(self, recording_id):
        mine = [released for rid, released in self.holds.values() if rid == recording_id]
        if any(released is None for released in mine):
            return False
        return self.now >= max([self.retain[recording_id]] + [released + GRACE for released in mine])

    def active_ids(self):
        return sorted(self.session.scalars(sa.select(Recording.id).where(Recording.status == "active")))

    # -- rules --

    @rule(days_ago=st.integers(0, 220), retention_days=st.sampled_from([183, 183, 30, 400]))
    def ingest(self, days_ago, retention_days):
        started = self.now - dt.timedelta(days=days_ago, minutes=len(self.retain))
        row = js.recording_row(started, retention=dt.timedelta(days=retention_days))
        row.update(self.blobs.write(row["id"]))
        self.session.execute(sa.insert(Recording), [row])
        self.session.commit()
        self.retain[row["id"]] = row["retain_until"]
        self.keys[row["id"]] = row["storage_key"]

    @precondition(lambda self: len(self.purged) < len(self.retain))
    @rule(index=st.integers(0, 200), kind=st.sampled_from(["investigation", "regulator", "complaint"]))
    def place_hold(self, index, kind):
        active = self.active_ids()  # holds are placed on active recordings only (holds.place_holds)
        if not active:
            return
        recording_id = active[index % len(active)]
        hold = Hold(recording_id=recording_id, practice_ref="pA", kind=kind, reason="machine", placed_by_ref="owner",
                    placed_at=self.now)
        self.session.add(hold)
        self.session.commit()
        self.holds[hold.id] = [recording_id, None]

    @precondition(lambda self: any(released is None for _, released in self.holds.values()))
    @rule(index=st.integers(0, 200))
    def release_hold(self, index):
        active = sorted(hold_id for hold_id, (_, released) in self.holds.items() if released is None)
        hold_id = active[index % len(active)]
        self.session.execute(sa.update(Hold).where(Hold.id == hold_id).values(released_at=self.now,
                                                                               released_by_ref="manager"))
        self.session.commit()
        self.holds[hold_id][1] = self.now

    @rule(days=st.integers(0, 90), hours=st.integers(0, 23))
    def advance_clock(self, days, hours):
        self.now += dt.timedelta(days=days, hours=hours)

    @rule(batch_size=st.sampled_from([1, 3, 500]))
    def run_purge(self, batch_size):
        due = {rid for rid in self.retain if rid not in self.purged and self.expected_eligible(rid)}
        report = purge.purge(now=self.now, batch_size=batch_size)
        assert set(report.purged_ids) <= due
        self.purged |= due
        for rid in self.retain:
            status = self.session.get(Recording, rid).status
            assert status == ("purged" if rid in self.purged else "active"), (rid, status)

    @precondition(lambda self: self.retain)
    @rule(point=st.sampled_from(CRASH_POINTS), nth=st.integers(1, 3), batch_size=st.sampled_from([1, 2, 500]))
    def purge_killed_part_way(self, point, nth, batch_size):
        passes = []

        def crash_at(name):
            if name == point:
                passes.append(name)
                if len(passes) == nth:
                    raise Crash(name)

        original = purge.kill_point
        purge.kill_point = crash_at
        try:
            purge.purge(now=self.now, batch_size=batch_size)
        except Crash:
            self.session.rollback()  # what the database does for a connection that died
        finally:
            purge.kill_point = original
        self.session.expire_all()
        touched = set(self.session.scalars(sa.select(Recording.id).where(Recording.status != "active")))
        for rid in touched - self.purged:
            assert self.expected_eligible(rid), f"{rid} was purged though not eligible"
        self.purged |= touched  # its key is gone: the next run (or the reconciler) must finish it

    # -- invariants --

    @invariant()
    def nothing_kept_is_touched_and_every_purge_is_recorded_once(self):
        self.session.expire_all()
        rows = {r.id: r for r in self.session.scalars(sa.select(Recording))}
        tombstones = set(self.session.scalars(sa.select(Tombstone.recording_id)))
        events = dict(self.session.execute(
            sa.select(AuditEvent.recording_id, sa.func.count()).where(AuditEvent.action == "purge")
            .group_by(AuditEvent.recording_id)).all())
        for rid, row in rows.items():
            if row.status == "active":
                assert row.wrapped_key is not None and rid not in tombstones and rid not in events
                assert self.blobs.exists(row.storage_key), f"active {rid} lost its blob"
            else:
                assert rid in self.purged, (rid, row.status)  # the rules check eligibility when it happens
                assert row.wrapped_key is None and row.key_id is None
                assert rid in tombstones and events.get(rid) == 1, rid
            if row.status == "purged":
                assert not self.blobs.exists(row.storage_key), f"purged {rid} kept its blob"
        assert tombstones <= set(rows)


def test_purge_state_machine(app, db_session):
    app.config["CALLREC_HOLD_GRACE_DAYS"] = 7
    with app.test_request_context():
        run_state_machine_as_test(PurgeMachine, settings=settings(
            max_examples=150, stateful_step_count=25, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    with app.app_context():
        assert audit.verify(hostapp.db.session).ok


def count_statements(engine):
    counter = {"n": 0}

    def before(*args, **kwargs):
        counter["n"] += 1

    sa.event.listen(engine, "before_cursor_execute", before)
    return counter, lambda: sa.event.remove(engine, "before_cursor_execute", before)


@pytest.mark.parametrize("batch_size", [5, 50])
def test_statements_per_batch_do_not_grow_with_the_batch(app, db_session, batch_size):
    blobs = js.Blobs(app)
    js.seed(db_session, blobs, utcnow(), expired=4 * batch_size, held=10, active=10)
    counter, stop = count_statements(hostapp.db.engine)
    per_batch, last = [], [0]

    def on_batch(report):
        per_batch.append(counter["n"] - last[0])
        last[0] = counter["n"]

    try:
        report = purge.purge(batch_size=batch_size, on_batch=on_batch)
    finally:
        stop()
    assert report.purged == 4 * batch_size and report.batches == 4
    assert max(per_batch[1:]) <= 10, per_batch  # the same handful of statements for 5 or 50 rows


def test_the_recheck_under_the_lock_keeps_what_the_select_let_through(app, db_session, monkeypatch):
    """The row lock's re-check with eligibility() is the last word: a held row the SELECT let through
    (here: a SELECT that ignores holds) is kept, and the rest of the batch goes."""
    blobs = js.Blobs(app)
    ids = js.seed(db_session, blobs, utcnow(), expired=3)
    victim = ids["expired"][1]
    db_session.add(Hold(recording_id=victim, practice_ref="pA", kind="law_enforcement", reason="late",
                        placed_by_ref="owner", placed_at=utcnow()))
    db_session.commit()
    monkeypatch.setattr(purge, "eligible_for_purge", lambda now, grace=None: sa.select(Recording).where(
        Recording.status == "active", Recording.retain_until <= now))
    report = purge.purge()
    assert victim not in report.purged_ids and report.rejected == {victim: "held: law_enforcement"}
    assert js.statuses(db_session)[victim] == "active"
    assert len(report.purged_ids) == 2


def test_reconciler_finishes_interrupted_purges_sweeps_orphans_and_reports_missing_blobs(app, db_session, caplog):
    blobs = js.Blobs(app)
    app.config["CALLREC_ORPHAN_GRACE_HOURS"] = 2
    ids = js.seed(db_session, blobs, utcnow(), expired=6, active=4)
    # a purge that died after its commit: keys destroyed, tombstones written, blobs still there
    original = purge.kill_point

    def crash(name):
        if name == "after_commit":
            raise SystemExit("killed")

    purge.kill_point = crash
    try:
        with pytest.raises(SystemExit):
            purge.purge(batch_size=3)
    finally:
        purge.kill_point = original
    db_session.rollback()
    assert sorted(js.statuses(db_session).values()).count("purging") == 3
    old, young = blobs.write(new_id())["storage_key"], blobs.write(new_id())["storage_key"]
    three_hours_ago = time.time() - 3 * 3600
    os.utime(blobs.path(old), (three_hours_ago, three_hours_ago))
    lost = ids["active"][0]
    os.unlink(blobs.path(db_session.get(Recording, lost).storage_key))

    report = purge.reconcile()
    assert report.finished == 3 and report.orphans_deleted == 1 and report.young_orphans == 1
    assert report.missing == [lost] and report.newly_reported == 1
    assert not blobs.exists(old) and blobs.exists(young)
    statuses = js.statuses(db_session)
    assert sum(s == "purged" for s in statuses.values()) == 3 and "purging" not in statuses.values()
    again = purge.reconcile()
    assert again.missing == [lost] and again.newly_reported == 0  # reported every run, audited once
    missing_events = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "blob_missing")).all()
    assert [(e.recording_id, e.outcome) for e in missing_events] == [(lost, "failed")]
    assert purge.purge().purged == 3  # the rest of the eligible ones
    assert audit.verify(db_session).ok


def test_dry_run_lists_what_would_go_and_why_the_rest_stays(app, db_session):
    blobs = js.Blobs(app)
    ids = js.seed(db_session, blobs, utcnow(), expired=3, held=2, active=4, in_grace=1)
    runner = app.test_cli_runner()
    from callrec_plugin import cli_jobs
    from click import Group

    group = cli_jobs.register(Group("callrec"))
    result = runner.invoke(group, ["purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    output = result.output
    assert "3 recordings would be purged" in output
    for rid in ids["expired"]:
        assert f"would purge {rid}" in output
    assert "2 held: investigation" in output and "4 within the retention period" in output
    assert "1 in the grace period after a hold was released" in output
    for rid in ids["held"] + ids["in_grace"]:
        assert rid in output
    assert js.statuses(db_session) == {rid: "active" for rid in sum(ids.values(), [])}  # nothing changed

    result = runner.invoke(group, ["purge"])
    assert result.exit_code == 0 and "purged 3 recordings" in result.output
    assert purge.dry_run().would_purge == []
