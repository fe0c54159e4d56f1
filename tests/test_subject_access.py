"""The subject-access register: a request comes first, with its statutory deadline; bundles follow."""
import datetime as dt

import pytest
import sqlalchemy as sa
from hypothesis import given, strategies as st

from callrec_plugin import exports
from callrec_plugin.identity import Actor
from callrec_plugin.models import AuditEvent, Export, SubjectAccessRequest, utcnow
from callrec_plugin.subject_access import add_months, due_date
from tests.conftest import valid_csrf_token
from tests.subject_access_support import build_bundle, register_by_form, register_request, registered

DPO = Actor(user=None, ref="dpo", name="Dpo", roles=frozenset({"dpo"}), practice_ref="pA")


# -- deadline arithmetic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("received", "due"), [
    (dt.date(2026, 1, 31), dt.date(2026, 2, 28)),
    (dt.date(2028, 1, 31), dt.date(2028, 2, 29)),  # a leap year
    (dt.date(2026, 1, 30), dt.date(2026, 2, 28)),
    (dt.date(2026, 3, 31), dt.date(2026, 4, 30)),
    (dt.date(2026, 9, 3), dt.date(2026, 10, 3)),   # the ICO's example: the corresponding date next month
    (dt.date(2026, 12, 15), dt.date(2027, 1, 15)),
])
def test_one_calendar_month_from_receipt(received, due):
    assert due_date(received) == due


@pytest.mark.parametrize(("received", "months", "due"), [
    (dt.date(2026, 1, 31), 1, dt.date(2026, 3, 31)),
    (dt.date(2026, 1, 31), 2, dt.date(2026, 4, 30)),
    (dt.date(2025, 11, 30), 2, dt.date(2026, 2, 28)),
    (dt.date(2027, 11, 29), 2, dt.date(2028, 2, 29)),
])
def test_extensions_count_further_months_from_receipt(received, months, due):
    assert due_date(received, months) == due


@given(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2200, 12, 31)), st.integers(0, 36))
def test_add_months_lands_in_the_right_month_on_the_same_or_last_day(day, months):
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    if result.day != day.day:
        assert result.day < day.day and (result + dt.timedelta(days=1)).month != result.month  # the last day


# -- the register ----------------------------------------------------------------------------------------


def test_no_bundle_without_a_registered_request(app, db_session, login):
    dpo = login("dpo")
    response = build_bundle(dpo, app, "NoSuchRequest000000000")
    assert response.status_code == 404
    response = dpo.post("/callrec/exports", data={"csrf_token": valid_csrf_token(app, dpo)})
    assert response.status_code == 400
    with pytest.raises(exports.ExportError):
        exports.request_subject_access(DPO, None)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Export)) == 0
    refusals = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert len(refusals) == 2 and all(e.reason for e in refusals)


def test_registering_records_the_request_its_deadline_and_audits_it(app, db_session, login):
    dpo = login("dpo")
    received = utcnow().date() - dt.timedelta(days=3)
    entry_id = register_request(dpo, app, "pat1", received_on=received)
    entry = db_session.get(SubjectAccessRequest, entry_id)
    assert (entry.patient_ref, entry.received_on, entry.due_on, entry.registered_by_ref) == (
        "pat1", received, due_date(received), "dpo")
    assert entry.identity_method and entry.identity_verified_by == "Rita Reception"
    assert entry.requester_reference == "SAR-pat1"
    event = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "subject_access_registered"))
    assert (event.outcome, event.object_id, event.patient_ref) == ("done", entry_id, "pat1")
    page = dpo.get(f"/callrec/subject-access/{entry_id}").get_data(as_text=True)
    assert due_date(received).strftime("%d %B %Y") in page and "Build the bundle" in page


@pytest.mark.parametrize(("fields", "status"), [
    ({"patient_ref": "patB"}, 404),                 # another practice's patient: no such patient
    ({"patient_ref": "patNoSuch"}, 404),
    ({"identity_method": ""}, 400),                 # how identity was checked is required
    ({"identity_verified_by": ""}, 400),            # and by whom
    ({"identity_method": "seen"}, 400),             # a real description, not a word
    ({"received_on": "2099-01-01"}, 400),           # not in the future
    ({"received_on": "31/01/2026"}, 400),
])
def test_a_request_needs_a_patient_of_the_practice_a_date_and_an_identity_check(app, db_session, login, fields,
                                                                                status):
    dpo = login("dpo")
    patient_ref = fields.pop("patient_ref", "pat1")
    response = register_by_form(dpo, app, patient_ref, **fields)
    assert response.status_code == status
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SubjectAccessRequest)) == 0
    assert [e.outcome for e in db_session.scalars(sa.select(AuditEvent))] == ["denied"]


@pytest.mark.parametrize("user", ["owner", "manager", "dpo"])
def test_owner_manager_and_dpo_may_register(app, db_session, login, user):
    assert register_by_form(login(user), app, "pat1").status_code == 302


@pytest.mark.parametrize("user", ["handler", "trainer", "reception", "norole"])
def test_other_roles_may_not_see_or_use_the_register(app, db_session, login, user):
    client = login(user)
    assert client.get("/callrec/subject-access").status_code == 403
    assert register_by_form(client, app, "pat1").status_code == 403
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SubjectAccessRequest)) == 0


def test_only_the_registrar_builds_and_downloads_the_bundle(app, db_session, login):
    entry = registered(db_session, "pat1", by="dpo")
    owner = login("owner")
    assert build_bundle(owner, app, entry.id).status_code == 403
    dpo = login("dpo")
    assert build_bundle(dpo, app, entry.id).status_code == 302
    export = db_session.scalar(sa.select(Export).where(Export.subject_access_id == entry.id))
    assert export.requested_by_ref == "dpo" and export.patient_ref == "pat1"
    assert owner.get(f"/callrec/exports/{export.id}/download").status_code == 403
    assert dpo.get(f"/callrec/exports/{export.id}/download").status_code == 200
    db_session.expire_all()
    assert db_session.get(SubjectAccessRequest, entry.id).responded_at is not None
    actions = [e.action for e in db_session.scalars(sa.select(AuditEvent).where(
        AuditEvent.outcome == "done").order_by(AuditEvent.seq))]
    assert "export_requested" in actions and "export_ready" in actions and "subject_access_answered" in actions


def test_extension_by_up_to_two_months_with_a_reason(app, db_session, login):
    received = dt.date(2026, 1, 31)
    entry = registered(db_session, "pat1", received_on=received)
    client = login("manager")

    def extend(months, reason="many calls to review and redact"):
        return client.post(f"/callrec/subject-access/{entry.id}/extension", data={
            "months": str(months), "reason": reason, "csrf_token": valid_csrf_token(app, client)})

    assert extend(1, reason="").status_code == 400
    assert extend(3).status_code == 400  # not a choice: at most two further months
    assert extend(1).status_code == 302
    db_session.expire_all()
    entry = db_session.get(SubjectAccessRequest, entry.id)
    assert (entry.due_on, entry.extension_months, entry.extended_by_ref) == (dt.date(2026, 3, 31), 1, "manager")
    assert extend(1).status_code == 409  # never shortened, never the same again
    assert extend(2).status_code == 302
    db_session.expire_all()
    assert db_session.get(SubjectAccessRequest, entry.id).due_on == dt.date(2026, 4, 30)
    extended = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "subject_access_extended",
                                                              AuditEvent.outcome == "done")).all()
    assert [e.reason.split(":")[0] for e in extended] == ["extended by 1 further month to 2026-03-31",
                                                          "extended by 2 further months to 2026-04-30"]


def test_the_register_lists_due_dates_and_marks_overdue_requests(app, db_session, login):
    today = utcnow().date()
    late = registered(db_session, "pat1", received_on=today - dt.timedelta(days=45))
    on_time = registered(db_session, "pat2", received_on=today - dt.timedelta(days=2))
    answered = registered(db_session, "pat1", received_on=today - dt.timedelta(days=90))
    answered.responded_at = utcnow()
    db_session.commit()
    page = login("dpo").get("/callrec/subject-access").get_data(as_text=True)
    rows = {entry.id: page.split(f"/subject-access/{entry.id}")[1].split("</tr>")[0]
            for entry in (late, on_time, answered)}
    assert "Overdue" in rows[late.id] and late.due_on.strftime("%d %b %Y") in rows[late.id]
    assert "Overdue" not in rows[on_time.id] and "days left" in rows[on_time.id]
    assert "Answered" in rows[answered.id] and "Overdue" not in rows[answered.id]
    assert page.index(late.id) < page.index(on_time.id) < page.index(answered.id)  # unanswered, earliest first


def test_another_practices_request_is_a_404_like_a_missing_one(app, db_session, login):
    other = registered(db_session, "patB", by="ownerB", practice_ref="pB")
    client = login("owner")
    assert client.get(f"/callrec/subject-access/{other.id}").status_code == 404
    assert client.get("/callrec/subject-access/NoSuchRequest000000000").status_code == 404
    assert build_bundle(client, app, other.id).status_code == 404


def test_register_pages_are_labelled_and_structured(app, db_session, login):
    from tests.test_accessibility import PageCheck

    entry = registered(db_session, "pat1", by="dpo")
    client = login("dpo")
    for url in ("/callrec/subject-access", f"/callrec/subject-access/{entry.id}"):
        check = PageCheck()
        check.feed(client.get(url).get_data(as_text=True))
        assert check.unlabelled() == [] and not check.duplicate_ids and check.dangling_references() == [], url
        assert check.tables == check.captions and check.h1 == 1, url


def test_the_patient_is_found_by_name_and_the_register_names_them(app, db_session, login):
    dpo = login("dpo")
    response = register_by_form(dpo, app, "Ada Patient")
    assert response.status_code == 302
    entry = db_session.scalar(sa.select(SubjectAccessRequest))
    assert entry.patient_ref == "pat1"
    for page in (dpo.get("/callrec/subject-access"), dpo.get(f"/callrec/subject-access/{entry.id}")):
        text = page.get_data(as_text=True)
        assert "Ada Patient" in text and ">pat1<" not in text


def test_a_name_several_patients_share_is_refused_beside_the_field(app, db_session, login):
    response = register_by_form(login("dpo"), app, "Patient")  # Ada Patient and Ben Patient
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "2 patients match" in page and 'aria-invalid="true"' in page and 'value="Patient"' in page
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SubjectAccessRequest)) == 0
    assert [e.outcome for e in db_session.scalars(sa.select(AuditEvent))] == ["denied"]
