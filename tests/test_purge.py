"""Purge: the retention state machine extended with "run purge", statements per batch, reconciler, dry run.

``RetentionWithPurge`` is the retention machine of tests/test_retention_machine.py (ingest, link,
unlink, place hold, release with and without the second approver, close complaint, advance clock,
extend retention) with every recording given a small real CRE1 blob, plus two rules: run the purge
(the function the purge job runs), and run it killed at a named point, as SIGKILL would. After every
step: no held, unexpired or in-grace recording is ever purged; after a complete run every recording
eligible at that moment is purged; every purge leaves exactly one tombstone and one audit event, no
data key and (once finished) no blob; retain_until never decreases (the retention machine's checks).
Both practices' settings change as it runs (grace, cap), and the clock may jump years: a tombstone
stays exactly until its practice's tombstone_years have passed and a complete run has deleted it; a
purged row keeps no personal column (models.PURGED_RECORDING_COLUMNS).
"""
import datetime as dt
import os
import zoneinfo
import shutil
import time

import pytest
import sqlalchemy as sa
from flask import current_app
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule, run_state_machine_as_test

from callrec_plugin import audit, clock, purge
from callrec_plugin.models import (
    PURGED_RECORDING_COLUMNS,
    AuditEvent,
    Hold,
    Recording,
    RecordingStatus,
    Tombstone,
    new_id,
    utcnow,
)
from callrec_plugin.retention import months_after, retain_until_for
from tests import hostapp
from tests import jobs_support as js
from tests.factories import add_recording
from tests.test_retention_machine import GRACE, PRACTICE_SETTINGS, Retention, registered_settings

# Every kill point of a purge run, in the order a run meets them (see callrec_plugin/purge.py).
CRASH_POINTS = ("reconcile_delete", "after_start", "after_lock", "after_recheck", "after_key_destroyed",
                "after_tombstones", "before_commit", "after_commit", "mid_delete", "after_delete",
                "before_purged_commit", "after_purged", "after_hooks", "purge_done")


class Crash(BaseException):
    """Stands for SIGKILL inside the process: nothing after the point runs, nothing is tidied."""


class RetentionWithPurge(Retention):
    def __init__(self):
        super().__init__()
        self.blobs = js.Blobs(current_app)
        shutil.rmtree(self.blobs.root, ignore_errors=True)  # the previous example's blobs
        self.storage_keys = {}  # recording id -> its blob
        self.purged_at = {}  # recording id -> the `now` of the run that destroyed its key
        self.eligible_at_last_run = set()  # every recording eligible when the last complete run ended
        self.grace_at_purge = {}  # recording id -> its practice's grace when its key was destroyed
        self.tombstone_until = {}  # recording id -> when its tombstone may go (tombstone_years after the purge)
        self.tombstones_swept_at = None  # the `now` of the last run that reached its tombstone sweep

    def new_recording(self, started, practice="pA"):
        recording = add_recording(self.session, practice_ref=practice, started_at=started,
                                  retain_until=retain_until_for(started, practice))
        blob = self.blobs.write(recording.id)
        for name, value in blob.items():
            setattr(recording, name, value)
        self.session.commit()
        self.storage_keys[recording.id] = blob["storage_key"]
        return recording

    def due(self):
        """The model's answer: recordings a purge now must take."""
        return {rid for rid in self.ids if self.expected_eligible(rid)}

    def _gone_now(self, ids):
        for rid in ids:
            if rid in self.gone:
                continue
            self.gone.add(rid)
            self.purged_at[rid] = self.now
            self.grace_at_purge[rid] = self.grace(rid)
            settings = PRACTICE_SETTINGS[self.practice[rid]]
            zone = zoneinfo.ZoneInfo(settings.get("timezone", "Europe/London"))
            self.tombstone_until[rid] = months_after(self.now, 12 * settings["tombstone_years"], zone=zone)

    @rule(years=st.integers(1, 7))
    def years_pass(self, years):
        """Long enough for tombstones to reach the end of their keeping period."""
        self.now += dt.timedelta(days=365 * years)

    def purge_after(self, recording_id):
        """The model's earliest moment the recording may go; None while held or once gone."""
        mine = [h for h in self.holds.values() if h["recording"] == recording_id]
        if recording_id in self.gone or any(h["released"] is None for h in mine):
            return None
        return max([self.retain[recording_id]] + [h["released"] + self.grace(recording_id) for h in mine])

    @initialize(start=st.lists(st.tuples(st.integers(0, 220), st.sampled_from([None, "held", "released"])),
                               min_size=1, max_size=4))
    def some_recordings(self, start):
        """A few recordings from the start, some held and some in the grace period of a hold released
        just now (through the real holds API), so most examples have something to purge, keep or wait for."""
        self.start_clock()  # initialize rules run in any order; holds must be placed on the machine's clock
        for days_ago, hold in start:
            self.ingest(days_ago)
            if hold is not None:
                self.place_hold(len(self.ids) - 1, "investigation")
            if hold == "released":
                self.release_hold(self.open_placed_holds().index(max(self.holds)), second_approver=True)

    @precondition(lambda self: self.ids)
    @rule(offset=st.sampled_from([-dt.timedelta(microseconds=1), dt.timedelta(0), dt.timedelta(hours=1)]),
          then_purge=st.booleans(), batch_size=st.sampled_from([1, 3, 500]))
    def advance_clock_to_the_next_expiry(self, offset, then_purge, batch_size):
        """To just before, exactly at, or just after the next moment a recording becomes eligible
        (retention ending, or a released hold's grace ending), the boundaries a purge must respect;
        and maybe run the purge there."""
        upcoming = [after for after in map(self.purge_after, self.ids) if after is not None and after > self.now]
        if upcoming and min(upcoming) + offset > self.now:
            self.now = min(upcoming) + offset
        if then_purge:
            self.run_purge(batch_size)

    @rule(batch_size=st.sampled_from([1, 3, 500]))
    def run_purge(self, batch_size):
        due = self.due()
        report = purge.purge(now=self.now, batch_size=batch_size)
        assert set(report.purged_ids) == due, "a purge run must take exactly the eligible recordings"
        assert len(report.purged_ids) == len(due) and report.rejected == {}
        self._gone_now(due)
        self.eligible_at_last_run = set(self.gone)
        self.tombstones_swept_at = self.now
        self.session.expire_all()
        statuses = dict(self.session.execute(sa.select(Recording.id, Recording.status)).all())
        for rid in self.ids:
            expected = RecordingStatus.PURGED if rid in self.gone else RecordingStatus.ACTIVE
            assert statuses[rid] == expected, (rid, statuses[rid])

    @precondition(lambda self: self.ids)
    @rule(point=st.sampled_from(CRASH_POINTS), nth=st.integers(1, 3), batch_size=st.sampled_from([1, 2, 500]))
    def run_purge_killed(self, point, nth, batch_size):
        due = self.due()
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
        if len(passes) < nth or point == "purge_done":  # the run reached its tombstone sweep
            self.tombstones_swept_at = self.now
        self.session.expire_all()
        touched = set(self.session.scalars(sa.select(Recording.id).where(Recording.status != RecordingStatus.ACTIVE)))
        assert touched - self.gone <= due, f"purged though not eligible: {sorted(touched - self.gone - due)}"
        self._gone_now(touched)  # their keys are gone: the next run (or the reconciler) must finish them

    # -- invariants --

    @invariant()
    def every_purge_is_lawful_recorded_once_and_complete(self):
        self.session.expire_all()
        rows = {r.id: r for r in self.session.scalars(sa.select(Recording))}
        tombstones = {}
        for tombstone in self.session.scalars(sa.select(Tombstone)):
            assert tombstone.recording_id not in tombstones, f"two tombstones for {tombstone.recording_id}"
            tombstones[tombstone.recording_id] = tombstone
        events = dict(self.session.execute(
            sa.select(AuditEvent.recording_id, sa.func.count()).where(AuditEvent.action == "purge")
            .group_by(AuditEvent.recording_id)).all())
        holds = {}
        for hold in self.session.scalars(sa.select(Hold)):
            holds.setdefault(hold.recording_id, []).append(hold)
        assert set(tombstones) <= set(rows) and set(events) <= set(rows)
        for rid, row in rows.items():
            if row.status == RecordingStatus.ACTIVE:
                assert rid not in self.gone, f"{rid} should have been purged"
                assert row.wrapped_key is not None and row.key_id is not None
                assert rid not in tombstones and rid not in events, rid
                assert self.blobs.exists(row.storage_key), f"active {rid} lost its blob"
                continue
            assert rid in self.gone, (rid, row.status)  # the purge rules check eligibility when it happens
            assert row.wrapped_key is None and row.key_id is None, f"{rid} is {row.status} but keeps its key"
            assert events.get(rid) == 1, f"{rid}: exactly one audit event"
            for name, fate in PURGED_RECORDING_COLUMNS.items():
                if fate == "cleared":
                    value = getattr(row, name)
                    assert value is None or (name == "source_ref" and value == f"purged:{rid}"), (rid, name, value)
            expired = self.tombstones_swept_at is not None and self.tombstone_until[rid] <= self.tombstones_swept_at
            if expired:
                assert rid not in tombstones, f"{rid}'s tombstone outlived its keeping period"
                continue
            assert rid in tombstones, f"{rid}: its tombstone went before its keeping period ended"
            assert _aware(tombstones[rid].delete_after) == self.tombstone_until[rid]
            # lawful from the database's own record: past retention, no hold active, every grace over
            when = tombstones[rid].purged_at
            assert _aware(when) == self.purged_at[rid]
            assert _aware(tombstones[rid].retain_until) <= _aware(when), f"{rid} purged before its retention ended"
            for hold in holds.get(rid, []):
                assert hold.released_at is not None, f"{rid} purged under an active {hold.kind} hold"
                assert _aware(hold.released_at) + self.grace_at_purge[rid] <= _aware(when), f"{rid} purged in the grace period"
            assert tombstones[rid].reason in ("retention expired", "grace after a hold")
            assert tombstones[rid].purged_by and tombstones[rid].purged_by.startswith("purge run")
            if row.status == RecordingStatus.PURGED:
                assert not self.blobs.exists(self.storage_keys[rid]), f"purged {rid} kept its blob"

    @invariant()
    def a_complete_run_leaves_nothing_eligible_behind(self):
        if self.eligible_at_last_run:
            left = self.session.scalars(sa.select(Recording.id).where(
                Recording.id.in_(self.eligible_at_last_run), Recording.status != RecordingStatus.PURGED)).all()
            assert not left, f"eligible at the last complete run but not purged: {left}"


def _aware(moment):
    """SQLite gives back naive datetimes (UTC); PostgreSQL aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


STEPS = 10  # steps per example; 300 examples (see the runtimes in the commit message)


def test_retention_state_machine_with_purge(app, db_session, monkeypatch):
    assert app.config["CALLREC_HOLD_GRACE_DAYS"] == GRACE.days
    monkeypatch.setattr(clock, "now", clock.now)  # the machine replaces it; monkeypatch restores it
    with app.test_request_context(), registered_settings(app):
        run_state_machine_as_test(RetentionWithPurge, settings=settings(
            max_examples=300, stateful_step_count=STEPS, deadline=None,
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
    monkeypatch.setattr(purge, "eligible_for_purge", lambda now, grace=None, practice_ref=None: sa.select(
        Recording).where(Recording.status == "active", Recording.retain_until <= now))
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
