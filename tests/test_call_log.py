"""The practice's call log (/callrec/calls): every filter, keyset pages, the capped count, its CSV, one
audit event per search, who may see it and which columns; linking unmatched calls to patients, undoing
it, and rematch proposals after the host adds a number."""
import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings, strategies as st

from callrec_plugin import call_log
from callrec_plugin.call_log import NumberFilter, SearchError
from callrec_plugin.hooks import hookimpl
from callrec_plugin.models import AuditEvent, Hold, MatchStatus, PatientMatch, Recording, utcnow
from callrec_plugin.views.call_log import COLUMNS
from callrec_plugin.visibility import may_see
from tests import hostapp
from tests.conftest import csrf_field, valid_csrf_token
from tests.factories import add_recording

LONDON = ZoneInfo("Europe/London")  # the test host's practices read times in London (the default)


def ids_on(page):
    return re.findall(r'href="/callrec/recordings/(\w+)"><time', page)


def search(client, **filters):
    response = client.get("/callrec/calls", query_string=filters)
    return response.status_code, response.get_data(as_text=True)


def found(client, **filters):
    status, page = search(client, **filters)
    assert status == 200, page
    return set(ids_on(page))


@pytest.fixture
def yesterday():
    """Midnight at the start of yesterday, London time (whatever the season)."""
    day = utcnow().astimezone(LONDON).date() - dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(0), tzinfo=LONDON)


# -- filters ---------------------------------------------------------------------------------------------


def test_date_range_finds_the_calls_of_those_days_only(app, db_session, login, yesterday):
    old = add_recording(db_session, started_at=yesterday - dt.timedelta(days=10, hours=-9))
    recent = add_recording(db_session, started_at=yesterday + dt.timedelta(hours=9))
    client = login("manager")
    day = (yesterday + dt.timedelta(hours=9)).date().isoformat()
    assert found(client, date_from=day, date_to=day) == {recent.id}
    assert found(client, date_to=(yesterday - dt.timedelta(days=5)).date().isoformat()) == {old.id}
    assert found(client) >= {old.id, recent.id}


def test_dates_are_the_practices_local_days(app, db_session, login):
    # 23:30 UTC on 31 August is 00:30 on 1 September in London (summer time).
    late = add_recording(db_session, started_at=dt.datetime(2026, 8, 31, 23, 30, tzinfo=dt.timezone.utc))
    client = login("manager")
    assert found(client, date_from="2026-09-01", date_to="2026-09-01") == {late.id}
    assert found(client, date_from="2026-08-31", date_to="2026-08-31") == set()


def test_time_of_day_over_a_date_range(app, db_session, login, yesterday):
    morning = add_recording(db_session, started_at=yesterday + dt.timedelta(hours=9))
    afternoon = add_recording(db_session, started_at=yesterday + dt.timedelta(hours=14, minutes=30))
    later = add_recording(db_session, started_at=yesterday + dt.timedelta(hours=16, minutes=59))
    earlier_day = add_recording(db_session, started_at=yesterday - dt.timedelta(days=2) + dt.timedelta(hours=15))
    client = login("manager")
    day = yesterday.date().isoformat()
    assert found(client, date_from=day, date_to=day, time_from="13:00", time_to="16:59") == {afternoon.id, later.id}
    # A time of day without dates searches recent days (the last 92).
    assert found(client, time_from="13:00", time_to="17:00") == {afternoon.id, later.id, earlier_day.id}
    assert found(client, time_to="10:00") == {morning.id}


@pytest.mark.parametrize("typed", [
    "01632 960123", "+44 1632 960123", "00441632960123", "(01632) 960-123", "+441632960123",
    "…0123", "...0123", "960123", "0123", "123",
])
def test_number_in_any_form_and_by_its_ending(app, db_session, login, typed):
    wanted = add_recording(db_session, external_number="+441632960123")
    add_recording(db_session, external_number="+441632960999")
    add_recording(db_session, external_number="withheld")
    assert found(login("manager"), number=typed) == {wanted.id}


def test_withheld_numbers(app, db_session, login):
    withheld = add_recording(db_session, external_number="withheld", patient_ref=None)
    add_recording(db_session, external_number="+441632960123")
    assert found(login("manager"), number="withheld") == {withheld.id}
    assert found(login("manager"), number="Number withheld") == {withheld.id}


def test_too_short_a_number_is_an_error_beside_the_field(app, db_session, login):
    add_recording(db_session)
    status, page = search(login("manager"), number="12", direction="inbound")
    assert status == 400
    assert 'id="number-errors"' in page and "at least 3 digits" in page
    assert 'value="12"' in page  # the user's input is kept
    assert "Nothing was searched" in page


def test_direction_staff_patient_and_no_patient(app, db_session, login):
    inbound = add_recording(db_session, direction="inbound", staff_user_ref="reception", staff_name="Rita")
    outbound = add_recording(db_session, direction="outbound", staff_user_ref="handler", staff_name="Hal",
                             patient_ref="pat2")
    unmatched = add_recording(db_session, patient_ref=None, external_number="+447700900055")
    client = login("manager")
    assert found(client, direction="outbound") == {outbound.id}
    assert found(client, staff="reception") == {inbound.id}
    assert found(client, patient="pat2") == {outbound.id}
    assert found(client, no_patient="y") == {unmatched.id}
    page = search(client)[1]
    assert '<option value="handler">Hal</option>' in page and '<option value="reception">Rita</option>' in page


def test_patient_by_name(app, db_session, login):
    ada = add_recording(db_session, patient_ref="pat1")
    ben = add_recording(db_session, patient_ref="pat2")
    client = login("manager")
    assert found(client, patient_name="ben") == {ben.id}
    assert "Only the calls of Ben Patient" in search(client, patient_name="ben")[1]
    status, page = search(client, patient_name="patient")  # Ada Patient and Ben Patient
    assert status == 400 and "Several patients match" in page
    assert "patient=pat1" in page and "patient=pat2" in page
    status, page = search(client, patient_name="Cara")  # another practice's patient
    assert status == 400 and "No patient of the practice matches" in page
    assert found(client, patient="pat1") == {ada.id}


def test_duration_range_and_reversed_range_error(app, db_session, login):
    short = add_recording(db_session, duration_seconds=20)
    middle = add_recording(db_session, duration_seconds=90.4)
    long = add_recording(db_session, duration_seconds=600)
    client = login("manager")
    assert found(client, min_seconds=60, max_seconds=90) == {middle.id}
    assert found(client, max_seconds=30) == {short.id}
    assert found(client, min_seconds=300) == {long.id}
    status, page = search(client, min_seconds=100, max_seconds=10)
    assert status == 400 and 'id="max_seconds-errors"' in page


def test_reversed_dates_are_an_error_beside_the_end_date(app, db_session, login):
    status, page = search(login("manager"), date_from="2026-11-10", date_to="2026-11-01")
    assert status == 400
    assert 'id="date_to-errors"' in page and "before the start date" in page
    assert 'value="2026-11-10"' in page


def test_held_and_flags(app, db_session, login):
    held = add_recording(db_session)
    plain = add_recording(db_session)
    short = add_recording(db_session, short_call=True, duration_seconds=1)
    objected = add_recording(db_session, recorded_despite_objection=True)
    card = add_recording(db_session, card_payment_flagged_at=utcnow(), card_payment_flagged_by_ref="reception")
    db_session.add(Hold(recording_id=held.id, practice_ref="pA", kind="investigation", reason="r",
                        placed_by_ref="owner"))
    db_session.add(Hold(recording_id=plain.id, practice_ref="pA", kind="investigation", reason="r",
                        placed_by_ref="owner", released_at=utcnow()))
    db_session.commit()
    client = login("manager")
    assert found(client, held="yes") == {held.id}
    assert found(client, held="no") == {plain.id, short.id, objected.id, card.id}
    assert found(client, flag_card_payment="y") == {card.id}
    assert found(client, flag_short_call="y") == {short.id}
    assert found(client, flag_after_objection="y") == {objected.id}


def test_other_practices_calls_never_appear(app, db_session, login):
    mine = add_recording(db_session)
    theirs = add_recording(db_session, practice_ref="pB", patient_ref="patB")
    assert found(login("manager"), number="0001") == {mine.id}
    assert theirs.id not in search(login("manager"))[1]
    assert found(login("ownerB")) == {theirs.id}


# -- pages and count --------------------------------------------------------------------------------------


def _all_pages(client, inserting=None):
    seen, params, pages = [], {}, 0
    while True:
        status, page = search(client, **params)
        assert status == 200
        seen.extend(ids_on(page))
        pages += 1
        if inserting:
            inserting(pages)
        match = re.search(r'href="/callrec/calls\?after=([\w.]+)[^"]*" rel="next"', page)
        if not match:
            return seen, pages
        params = {"after": match.group(1)}


def test_keyset_pages_skip_and_repeat_nothing_while_calls_arrive(app, db_session, login):
    now = utcnow()
    originals = {add_recording(db_session, started_at=now - dt.timedelta(minutes=10 * i)).id for i in range(1, 121)}
    same_moment = now - dt.timedelta(minutes=5)
    originals |= {add_recording(db_session, started_at=same_moment).id for _ in range(3)}  # ties broken by id

    def new_calls_arrive(page_number):
        add_recording(db_session, started_at=utcnow())  # newer than every page already read

    seen, pages = _all_pages(login("manager"), inserting=new_calls_arrive)
    assert pages == 3
    assert len(seen) == len(set(seen))  # nothing repeated
    assert set(seen) == originals  # nothing skipped; calls that arrived meanwhile are on the first page's side


def test_count_is_capped(app, db_session, login, monkeypatch):
    monkeypatch.setattr(call_log, "COUNT_CAP", 5)
    for _ in range(7):
        add_recording(db_session)
    assert "More than 5 calls found" in search(login("manager"))[1]
    monkeypatch.setattr(call_log, "COUNT_CAP", 50)
    assert "7 calls found" in search(login("manager"))[1]


def test_a_bad_page_link_is_an_error_not_a_500(app, db_session, login):
    status, page = search(login("manager"), after="not-a-cursor")
    assert status == 400 and "page link is not valid" in page


# -- audit, CSV, access -----------------------------------------------------------------------------------


def _events(db_session, action):
    return db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).all()


def test_each_search_writes_one_audit_event_with_its_filters(app, db_session, login):
    for _ in range(5):
        add_recording(db_session)
    search(login("manager"), number="…0001", direction="inbound")
    events = _events(db_session, "view_call_log")
    assert len(events) == 1
    assert events[0].outcome == "allowed" and events[0].actor_ref == "manager"
    assert "number=…0001" in events[0].reason and "direction=inbound" in events[0].reason


def test_csv_is_the_same_search_with_the_visible_columns_and_is_audited(app, db_session, login):
    wanted = add_recording(db_session, external_number="+441632960123", staff_name="=HYPERLINK(x)",
                           started_at=dt.datetime(2026, 11, 2, 10, 5, tzinfo=dt.timezone.utc))
    add_recording(db_session, external_number="+441632960999")
    response = login("dpo").get("/callrec/calls.csv", query_string={"number": "0123"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == [heading for _key, heading, _field in COLUMNS]
    assert len(rows) == 2
    assert rows[1][0] == "Mon 02 Nov 2026 10:05"
    assert not rows[1][4].startswith("=")  # a formula in a cell is neutralised
    events = _events(db_session, "view_call_log")
    assert [e.object_id for e in events] == ["csv"]
    assert "CSV export" in events[0].reason and "number=…0123" in events[0].reason
    assert wanted.id not in response.get_data(as_text=True)  # ids are for machines; the CSV is for people


@pytest.mark.parametrize("username,status", [
    ("owner", 200), ("manager", 200), ("dpo", 200),
    ("reception", 403), ("trainer", 403), ("handler", 403), ("norole", 403),
])
def test_who_may_search_the_call_log(app, db_session, login, username, status):
    add_recording(db_session)
    assert login(username).get("/callrec/calls").status_code == status
    assert login(username).get("/callrec/calls.csv").status_code == status
    events = _events(db_session, "view_call_log")
    assert len(events) == 2 and {e.outcome for e in events} == {"allowed" if status == 200 else "denied"}


class OpensTheLogToReceptionInPracticeA:
    @hookimpl
    def callrec_practice_settings(self, practice_ref):
        return {"call_log_roles": ["staff"]} if practice_ref == "pA" else None


def test_a_practice_may_open_the_log_to_reception(app, db_session, login):
    add_recording(db_session)
    pm = app.extensions["callrec"].pm
    pm.register(OpensTheLogToReceptionInPracticeA(), name="test-practice-settings")
    try:
        assert login("reception").get("/callrec/calls").status_code == 200
        assert login("receptionB").get("/callrec/calls").status_code == 403  # another practice did not
    finally:
        pm.unregister(name="test-practice-settings")
    app.config["CALLREC_CALL_LOG_ROLES"] = ["staff"]  # or the installation's default for every practice
    assert login("receptionB").get("/callrec/calls").status_code == 200


def test_menu_link_for_those_who_may_search(app, db_session, login):
    with app.test_request_context():
        from flask_login import login_user

        for username, expected in [("manager", True), ("reception", False)]:
            user = db_session.get(hostapp.User, username)
            login_user(user)
            links = app.extensions["callrec"].pm.hook.callrec_menu_links(user=user)
            labels = [link["label"] for answer in links for link in answer]
            assert ("Call log" in labels) is expected


@pytest.mark.parametrize("username", ["owner", "manager", "dpo", "reception", "trainer", "handler"])
def test_visibility_matrix_of_the_logs_columns_page_and_csv(app, db_session, login, username):
    """Every column of the log and its CSV is shown to exactly the roles the visibility rule names."""
    add_recording(db_session, staff_name="Rita Reception", external_number="+441632960123")
    app.config["CALLREC_CALL_LOG_ROLES"] = ["staff", "trainer", "complaint_handler"]
    client = login(username)
    page = client.get("/callrec/calls").get_data(as_text=True)
    header = list(csv.reader(io.StringIO(client.get("/callrec/calls.csv").get_data(as_text=True))))[0]
    with app.test_request_context():
        from callrec_plugin.identity import actor_for

        actor = actor_for(db_session.get(hostapp.User, username))
        for key, heading, field in COLUMNS:
            allowed = may_see(actor, field)
            assert (f'<th scope="col">{heading}</th>' in page) is allowed, (username, heading)
            assert (heading in header) is allowed, (username, heading)
    assert ("Rita Reception" in page) is may_see(actor, "call.handled_by")


# -- matching unmatched calls ---------------------------------------------------------------------------


class HostEvents:
    def __init__(self):
        self.calls = []

    @hookimpl
    def callrec_call_matched(self, recording_id, patient_ref, practice_ref, phone_e164, change):
        self.calls.append((recording_id, patient_ref, practice_ref, phone_e164, change))


@pytest.fixture
def host_events(app):
    plugin = HostEvents()
    app.extensions["callrec"].pm.register(plugin, name="test-host-events")
    yield plugin
    app.extensions["callrec"].pm.unregister(name="test-host-events")


def _match(app, client, recording_id, patient_ref, reason, query="Ben"):
    return client.post(f"/callrec/recordings/{recording_id}/match", data={
        "callrec-match-csrf_token": valid_csrf_token(app, client), "q": query,
        "callrec-match-patient_ref": patient_ref, "callrec-match-reason": reason})


def test_match_a_call_then_it_is_on_the_patients_panel_and_the_host_is_told(app, db_session, login, host_events):
    call = add_recording(db_session, patient_ref=None, external_number="+447700900077")
    client = login("manager")
    page = client.get(f"/callrec/recordings/{call.id}/match", query_string={"q": "ben"}).get_data(as_text=True)
    assert "Ben Patient" in page and "Ada Patient" not in page and "Cara Other" not in page
    response = _match(app, client, call.id, "pat2", "Caller said she is Ben's mother, confirmed his date of birth")
    assert response.status_code == 302
    db_session.expire_all()
    assert db_session.get(Recording, call.id).patient_ref == "pat2"
    match = db_session.scalar(sa.select(PatientMatch))
    assert (match.status, match.decided_by_ref, match.patient_ref) == (MatchStatus.CONFIRMED, "manager", "pat2")
    decision, change = _events(db_session, "match_call")[-1], _events(db_session, "call_matched")[-1]
    assert decision.outcome == "allowed" and decision.actor_ref == "manager"
    assert change.outcome == "done" and change.patient_ref == "pat2" and "mother" in change.reason
    assert host_events.calls == [(call.id, "pat2", "pA", "+447700900077", "matched")]
    assert call.id in login("reception").get("/patients/pat2").get_data(as_text=True)


def test_undo_a_match_with_a_reason(app, db_session, login, host_events):
    call = add_recording(db_session, patient_ref=None, external_number="+447700900077")
    client = login("owner")
    _match(app, client, call.id, "pat2", "recognised the voice")
    match = db_session.scalar(sa.select(PatientMatch))
    page = client.get(f"/callrec/recordings/{call.id}/match").get_data(as_text=True)
    name, token = csrf_field(page)
    empty = client.post(f"/callrec/matches/{match.id}/undo", data={name: token, "callrec-undo-reason": ""})
    assert empty.status_code == 400 and "Say why the link is wrong" in empty.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Recording, call.id).patient_ref == "pat2"
    done = client.post(f"/callrec/matches/{match.id}/undo", data={name: token, "callrec-undo-reason": "wrong Ben"})
    assert done.status_code == 302
    db_session.expire_all()
    assert db_session.get(Recording, call.id).patient_ref is None
    assert db_session.get(PatientMatch, match.id).status == MatchStatus.UNDONE
    assert _events(db_session, "match_undone")[-1].reason.endswith("wrong Ben")
    assert [c[-1] for c in host_events.calls] == ["matched", "undone"]
    assert call.id not in login("reception").get("/patients/pat2").get_data(as_text=True)


def test_match_refusals_change_nothing(app, db_session, login):
    unmatched = add_recording(db_session, patient_ref=None)
    matched = add_recording(db_session, patient_ref="pat1")
    client = login("manager")
    no_reason = _match(app, client, unmatched.id, "pat2", "")
    assert no_reason.status_code == 400 and 'id="callrec-match-reason-errors"' in no_reason.get_data(as_text=True)
    other_practice = _match(app, client, unmatched.id, "patB", "a reason", query="Cara")
    assert other_practice.status_code == 400  # the patient chosen: said beside the choice, not a 409
    already = _match(app, client, matched.id, "pat2", "a reason")
    assert already.status_code == 409 and "already linked" in already.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Recording, unmatched.id).patient_ref is None
    assert db_session.get(Recording, matched.id).patient_ref == "pat1"
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PatientMatch)) == 0
    assert [e.outcome for e in _events(db_session, "match_call")].count("denied") == 2


def test_reception_may_not_match_unless_the_practice_allows(app, db_session, login):
    call = add_recording(db_session, patient_ref=None)
    assert login("reception").get(f"/callrec/recordings/{call.id}/match").status_code == 403
    app.config["CALLREC_MATCH_CALL_ROLES"] = ["staff"]
    assert _match(app, login("reception"), call.id, "pat2", "she gave her name").status_code == 302


def _rematch(app, *args):
    return app.test_cli_runner().invoke(args=["callrec", "rematch", "--practice", "pA", *args])


def test_rematch_proposes_and_a_person_confirms(app, db_session, login, host_events):
    call = add_recording(db_session, patient_ref=None, external_number="+447700900088")
    other = add_recording(db_session, patient_ref=None, external_number="+447700900099")
    db_session.get(hostapp.Patient, "pat2").phone = "+447700900088"  # the host adds the number to Ben
    db_session.commit()
    result = _rematch(app, "--number", "07700 900088")
    assert result.exit_code == 0, result.output
    assert "1 call proposed" in result.output and "nothing was linked" in result.output
    db_session.expire_all()
    assert db_session.get(Recording, call.id).patient_ref is None  # never silently
    assert host_events.calls == []
    client = login("manager")
    page = client.get("/callrec/calls").get_data(as_text=True)
    assert "Calls waiting for a person to confirm their patient" in page and "Ben Patient" in page
    proposal = db_session.scalar(sa.select(PatientMatch).where(PatientMatch.status == MatchStatus.PROPOSED))
    token = re.search(r'name="callrec-proposal-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post(f"/callrec/matches/{proposal.id}/confirm",
                       data={"callrec-proposal-csrf_token": token}).status_code == 302
    db_session.expire_all()
    assert db_session.get(Recording, call.id).patient_ref == "pat2"
    assert db_session.get(Recording, other.id).patient_ref is None
    assert [e.action for e in db_session.scalars(sa.select(AuditEvent).where(
        AuditEvent.recording_id == call.id).order_by(AuditEvent.seq))] == ["match_proposed", "match_call",
                                                                           "call_matched"]
    assert host_events.calls == [(call.id, "pat2", "pA", "+447700900088", "matched")]
    assert "0 calls proposed" in _rematch(app).output  # a decided call is not proposed again


def test_a_rejected_proposal_is_not_proposed_again(app, db_session, login):
    call = add_recording(db_session, patient_ref=None, external_number="+447700900088")
    db_session.get(hostapp.Patient, "pat2").phone = "+447700900088"
    db_session.commit()
    _rematch(app)
    proposal = db_session.scalar(sa.select(PatientMatch))
    client = login("owner")
    page = client.get("/callrec/calls").get_data(as_text=True)
    token = re.search(r'name="callrec-proposal-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(f"/callrec/matches/{proposal.id}/reject",
                           data={"callrec-proposal-csrf_token": token, "callrec-proposal-reason": "shared phone"})
    assert response.status_code == 302
    db_session.expire_all()
    assert db_session.get(PatientMatch, proposal.id).status == MatchStatus.REJECTED
    assert db_session.get(Recording, call.id).patient_ref is None
    assert "0 calls proposed" in _rematch(app).output


def test_rematch_refuses_an_unknown_practice_and_a_bad_number(app, db_session):
    result = app.test_cli_runner().invoke(args=["callrec", "rematch", "--practice", "nope"])
    assert result.exit_code == 2 and "unknown practice" in result.output
    assert _rematch(app, "--number", "not a number").exit_code == 2


# -- the number filter, as a property ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(subscriber=st.integers(min_value=0, max_value=999), style=st.sampled_from([
    "0{a} {b}", "+44 {a} {b}", "0044{a}{b}", "({a0}) {b}", "+44 ({a0}) {b}", "0{a}-{b}"]))
def test_every_written_form_of_a_uk_number_reads_as_its_e164(subscriber, style):
    area, local = "1632", f"960{subscriber:03d}"
    typed = style.format(a=area, b=local, a0="0" + area)
    assert NumberFilter.parse(typed, "GB") == NumberFilter(e164=f"+44{area}{local}")


@settings(max_examples=200, deadline=None)
@given(digits=st.text("0123456789", min_size=3, max_size=6), marker=st.sampled_from(["…", "...", "*", ""]))
def test_an_ending_keeps_its_digits(digits, marker):
    parsed = NumberFilter.parse(marker + digits, "GB")
    assert parsed.ending == digits or (not marker and parsed.e164)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=12).filter(lambda t: len(re.sub(r"\D", "", t)) < 3 and t.strip()
                                        and "withheld" not in t.lower()))
def test_too_few_digits_is_a_search_error_never_an_exception(text):
    try:
        parsed = NumberFilter.parse(text, "GB")
    except SearchError as error:
        assert error.field == "number"
    else:
        assert parsed.withheld  # a withheld marker ("anonymous", "private", ...)


def test_reversed_digits_are_kept_in_step_with_the_number(app, db_session):
    call = add_recording(db_session, external_number="+441632960123")
    assert call.external_number_rev == "321069236144"
    call.external_number = "withheld"
    db_session.commit()
    assert call.external_number_rev is None
