"""The retention state machine: ingest into two practices with their own settings, link, unlink,
holds, releases, complaints closing, the clock, extensions with reasons and caps, settings changing.

On every step: a held recording is never eligible; an expired, unheld, past-grace one is (with the
grace of ITS practice, as that practice's settings say now); the SQL query the purge job uses agrees
with the eligibility function; retain_until never decreases; an extension beyond its practice's cap
is refused and changes nothing, one within it is recorded (who, why, from, to) and its chain of
extensions is unbroken; a regulator or law-enforcement hold never releases on one approval.

tests/test_purge.py extends this machine with "run purge": ``gone`` (the model's purged recordings)
and ``new_recording`` are what it builds on; here ``gone`` stays empty.
"""
import datetime as dt
import zoneinfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from callrec_plugin import clock, evidence, holds, scoping
from callrec_plugin.erasure import RetentionError
from callrec_plugin.extensions import REASONS, extend
from callrec_plugin.hooks import hookimpl
from callrec_plugin.identity import Actor
from callrec_plugin.models import Hold, HoldKind, Recording, RecordingStatus, RetentionExtension
from callrec_plugin.practice_settings import forget_cached
from callrec_plugin.retention import eligibility, eligible_for_purge, months_after, retain_until_for
from callrec_plugin.state import get_state
from tests import hostapp
from tests.conftest import empty_tables
from tests.factories import add_recording

START = dt.datetime(2026, 1, 10, 9, 0, tzinfo=dt.timezone.utc)
GRACE = dt.timedelta(days=7)
OWNER = Actor(user=None, ref="owner", name="Owner", roles=frozenset({"owner"}), practice_ref="pA")
MANAGER = Actor(user=None, ref="manager", name="Manager", roles=frozenset({"manager"}), practice_ref="pA")

# Each practice's settings, as a PMS would store them; the machine changes them as it runs.
DEFAULT_SETTINGS = {
    "pA": {"grace_days": 7, "extension_cap_months": 6, "retention_months": 6, "tombstone_years": 6},
    "pB": {"grace_days": 2, "extension_cap_months": 1, "retention_months": 3, "tombstone_years": 1,
           "timezone": "America/New_York"},
}
PRACTICE_SETTINGS = {}


class PracticeSettingsPlugin:
    """The host's answer to callrec_practice_settings: the machine's current settings of each practice."""

    @hookimpl
    def callrec_practice_settings(self, practice_ref):
        return dict(PRACTICE_SETTINGS.get(practice_ref, {}))


def registered_settings(app):
    """Register the settings plugin on the app for the duration of a test (a context manager)."""
    import contextlib

    @contextlib.contextmanager
    def registered():
        pm = get_state(app).pm
        plugin = PracticeSettingsPlugin()
        pm.register(plugin, name="test_practice_settings")
        try:
            yield
        finally:
            pm.unregister(plugin)
    return registered()


class Retention(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.session = hostapp.db.session
        empty_tables(self.session)
        hostapp.seed_users(self.session)
        self.now = START
        self.ids = []
        self.retain = {}  # the model: recording id -> retain_until, which must never decrease
        self.holds = {}  # hold id -> {"recording", "kind", "complaint", "released": datetime | None}
        self.linked = set()  # (recording id, complaint ref)
        self.closed = set()
        self.gone = set()  # recordings the model says were purged (or are being purged)
        PRACTICE_SETTINGS.clear()
        PRACTICE_SETTINGS.update({ref: dict(values) for ref, values in DEFAULT_SETTINGS.items()})
        forget_cached()
        self.practice = {}  # recording id -> practice
        self.base = {}  # recording id -> its retention date before any extension (the cap counts from it)
        self.extensions = {}  # recording id -> number of extensions made

    def clock(self):
        return self.now

    @initialize()
    def start_clock(self):
        clock.now = self.clock  # restored by the test function

    @rule(days_ago=st.integers(0, 220), practice=st.sampled_from(["pA", "pB"]))
    def ingest(self, days_ago, practice="pA"):
        started = self.now - dt.timedelta(days=days_ago)
        recording = self.new_recording(started, practice)
        self.ids.append(recording.id)
        self.retain[recording.id] = self.base[recording.id] = recording.retain_until
        self.practice[recording.id] = practice
        self.extensions[recording.id] = 0
        months = PRACTICE_SETTINGS[practice]["retention_months"]
        assert recording.retain_until == retain_until_for(started, practice)
        assert started + dt.timedelta(days=28 * months) <= recording.retain_until <= started + dt.timedelta(days=31 * months + 1)

    def new_recording(self, started, practice="pA"):
        return add_recording(self.session, practice_ref=practice, started_at=started,
                             retain_until=retain_until_for(started, practice))

    def grace(self, recording_id):
        return dt.timedelta(days=PRACTICE_SETTINGS[self.practice[recording_id]]["grace_days"])

    @rule(practice=st.sampled_from(["pA", "pB"]), grace_days=st.integers(0, 30), cap_months=st.integers(0, 8))
    def change_practice_settings(self, practice, grace_days, cap_months):
        """A PMS changes a practice's grace period and extension cap: the next decision uses them."""
        PRACTICE_SETTINGS[practice].update(grace_days=grace_days, extension_cap_months=cap_months)
        forget_cached()

    def recording(self, index):
        return self.session.get(Recording, self.ids[index % len(self.ids)])

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), complaint=st.sampled_from(["cX", "cY"]),
          note=st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=10))
    def link(self, index, complaint, note):
        recording = self.recording(index)
        if self.practice.get(recording.id, "pA") != "pA":
            return  # the complaints cX and cY are pA's: a call of pB is never evidence for them
        summary = scoping.complaint_in_practice(OWNER, complaint)
        if recording.id in self.gone:
            with pytest.raises(evidence.EvidenceError, match="purged"):
                evidence.link(OWNER, recording, summary, note)
            self.session.rollback()
            return
        if (recording.id, complaint) in self.linked:
            with pytest.raises(evidence.EvidenceError):
                evidence.link(OWNER, recording, summary, note)
            return
        evidence.link(OWNER, recording, summary, note)
        self.session.commit()
        self.linked.add((recording.id, complaint))
        if complaint not in self.closed:
            hold = self.session.scalars(sa.select(Hold).order_by(Hold.id.desc()).limit(1)).one()
            self.holds[hold.id] = {"recording": recording.id, "kind": HoldKind.COMPLAINT, "complaint": complaint,
                                   "released": None}

    @precondition(lambda self: self.linked)
    @rule(pick=st.integers(0, 50))
    def unlink(self, pick):
        recording_id, complaint = sorted(self.linked)[pick % len(self.linked)]
        recording = self.session.get(Recording, recording_id)
        evidence.unlink(OWNER, recording, scoping.complaint_in_practice(OWNER, complaint), "wrong call")
        self.session.commit()
        self.linked.discard((recording_id, complaint))
        self._model_release(lambda h: h["recording"] == recording_id and h["complaint"] == complaint)

    def _model_release(self, matches):
        for hold in self.holds.values():
            if hold["kind"] == HoldKind.COMPLAINT and hold["released"] is None and matches(hold):
                hold["released"] = self.now

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), kind=st.sampled_from(sorted(holds.PLACEABLE_KINDS)))
    def place_hold(self, index, kind):
        recording = self.recording(index)
        placed = holds.place_holds(OWNER, [recording], kind, "looking into it", external_reference="REF-1")
        self.session.commit()
        if recording.id in self.gone:
            assert placed == [], "a hold was placed on a purged recording"
            return
        (hold,) = placed
        self.holds[hold.id] = {"recording": recording.id, "kind": kind, "complaint": None, "released": None}

    def open_placed_holds(self):
        return sorted(i for i, h in self.holds.items() if h["released"] is None and h["kind"] != HoldKind.COMPLAINT)

    @precondition(lambda self: self.open_placed_holds())
    @rule(pick=st.integers(0, 50), second_approver=st.booleans())
    def release_hold(self, pick, second_approver):
        hold_id = self.open_placed_holds()[pick % len(self.open_placed_holds())]
        hold = self.session.get(Hold, hold_id)
        two = hold.kind in HoldKind.TWO_APPROVER
        if not (two and hold.release_requested_by_ref):
            holds.approve_release(OWNER, hold)
            self.session.commit()
        if two:
            assert hold.released_at is None, "one approval released a two-approver hold"
            if second_approver:
                assert holds.approve_release(MANAGER, hold)
            else:
                with pytest.raises(holds.HoldError, match="second, different person"):
                    holds.approve_release(OWNER, hold)
                self.session.rollback()
                assert self.session.get(Hold, hold_id).released_at is None
                return
        self.session.commit()
        self.holds[hold_id]["released"] = self.now

    @rule(complaint=st.sampled_from(["cX", "cY"]))
    def close_complaint(self, complaint):
        self.session.get(hostapp.Complaint, complaint).status = "closed"
        self.session.commit()
        holds.sync_complaint_holds("pA")
        self.closed.add(complaint)
        self._model_release(lambda h: h["complaint"] == complaint)

    @rule(hours=st.integers(1, 24 * 90))
    def advance_clock(self, hours):
        self.now += dt.timedelta(hours=hours)

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), days=st.integers(1, 240), reason=st.sampled_from(sorted(REASONS)),
          text=st.sampled_from(["", "solicitor's letter"]), who=st.sampled_from([OWNER, MANAGER]))
    def extend(self, index, days, reason, text, who):
        recording = self.recording(index)
        if recording.id in self.gone:
            return  # extending a purged call: see test_purge.py
        practice = self.practice[recording.id]
        settings = PRACTICE_SETTINGS[practice]
        zone = zoneinfo.ZoneInfo(settings.get("timezone", "Europe/London"))
        cap = months_after(self.base[recording.id], settings["extension_cap_months"], zone=zone)
        new_until = self.retain[recording.id] + dt.timedelta(days=days)
        if new_until > cap or (reason == "other" and not text):
            with pytest.raises(RetentionError):
                extend(who, recording, new_until, reason, text)
            self.session.rollback()
            return
        row = extend(who, recording, new_until, reason, text)
        self.session.commit()
        assert (row.extended_by_ref, row.reason_code, row.new_until) == (who.ref, reason, new_until)
        self.retain[recording.id] = new_until
        self.extensions[recording.id] += 1

    @invariant()
    def extensions_are_recorded_as_an_unbroken_chain_within_the_cap(self):
        rows = {}
        for row in self.session.scalars(sa.select(RetentionExtension).order_by(RetentionExtension.id)):
            rows.setdefault(row.recording_id, []).append(row)
        for recording_id in self.ids:
            chain = rows.get(recording_id, [])
            assert len(chain) == self.extensions[recording_id]
            previous = self.base[recording_id]
            for row in chain:
                assert row.previous_until == previous and row.new_until > previous and row.reason_code in REASONS
                previous = row.new_until
            assert previous == self.retain[recording_id]

    def expected_eligible(self, recording_id):
        if recording_id in self.gone:
            return False
        mine = [h for h in self.holds.values() if h["recording"] == recording_id]
        if any(h["released"] is None for h in mine):
            return False
        return self.now >= max([self.retain[recording_id]] + [h["released"] + self.grace(recording_id) for h in mine])

    @invariant()
    def two_approver_holds_need_two_people(self):
        for hold in self.session.scalars(sa.select(Hold).where(Hold.kind.in_(HoldKind.TWO_APPROVER))):
            if hold.released_at is not None:
                assert hold.release_requested_by_ref and hold.released_by_ref != hold.release_requested_by_ref

    @invariant()
    def eligibility_matches_the_policy(self):
        self.session.expire_all()
        by_recording = holds.holds_of(self.ids)
        rows = {r.id: r for r in self.session.scalars(sa.select(Recording))}  # one query, not one per id
        actual = set()
        for recording_id in self.ids:
            recording = rows[recording_id]
            assert recording.retain_until >= self.retain[recording_id] - dt.timedelta(microseconds=1)
            if recording.status != RecordingStatus.ACTIVE:
                assert recording_id in self.gone, (recording_id, recording.status)
                if recording.status == RecordingStatus.PURGED:
                    assert not eligibility(recording, by_recording.get(recording_id, []), self.now).eligible
                continue
            answer = eligibility(recording, by_recording.get(recording_id, []), self.now)  # its practice's grace
            assert answer.eligible == self.expected_eligible(recording_id), (recording_id, answer)
            if any(h.released_at is None for h in by_recording.get(recording_id, [])):
                assert not answer.eligible
            if answer.eligible:
                actual.add(recording_id)
        queried = set()
        for practice in ("pA", "pB"):
            queried |= set(self.session.scalars(
                eligible_for_purge(self.now, practice_ref=practice).with_only_columns(Recording.id)))
        assert queried == actual


def test_retention_state_machine(app, db_session, monkeypatch):
    monkeypatch.setattr(clock, "now", clock.now)  # the machine replaces it; monkeypatch restores it
    with app.test_request_context(), registered_settings(app):
        run_state_machine_as_test(Retention, settings=settings(
            max_examples=300, stateful_step_count=12, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
