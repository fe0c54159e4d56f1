"""The demo host (examples/practice_host): sign-in, practice scoping, callrec's panels in its pages, seed."""
import re
import shutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `examples` is not installed: import it from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from examples.practice_host import create_app  # noqa: E402
from examples.practice_host.models import Complaint, Patient, Staff, db  # noqa: E402
from examples.practice_host.seed import DEMO_PASSWORD, STAFF, seed_host_data  # noqa: E402

CSRF_INPUT_RE = re.compile(r'<input[^>]*\bname="csrf_token"[^>]*>')
VALUE_RE = re.compile(r'\bvalue="([^"]+)"')


def make_app(tmp_path, database):
    return create_app({
        "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(database),
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": True,
        "TESTING": True,
        "CALLREC_STORAGE_DIR": str(tmp_path / "storage"),
        "CALLREC_KEY_FILE": str(tmp_path / "keys.txt"),
        "CALLREC_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "audit-signing.pem"),
        "CALLREC_LOAD_ENTRY_POINTS": False,
    })


@pytest.fixture(scope="module")
def seeded_database(tmp_path_factory):
    """Host and callrec tables with the host's seed data, built once and copied for each test."""
    from callrec_plugin.models import metadata as callrec_metadata

    tmp_path = tmp_path_factory.mktemp("seeded")
    app = make_app(tmp_path, tmp_path / "template.db")
    with app.app_context():
        db.create_all()
        callrec_metadata.create_all(db.engine)
        seed_host_data(echo=lambda message: None)
        db.session.remove()
        db.engine.dispose()
    return tmp_path / "template.db"


# Not named "app": pytest-flask would push a request context around each test, and the test client's
# requests would then share one app context and its `g` (Flask-Login's and CSRF's per-request caches).
@pytest.fixture
def demo_app(tmp_path, seeded_database):
    shutil.copyfile(seeded_database, tmp_path / "practice.db")
    app = make_app(tmp_path, tmp_path / "practice.db")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(demo_app):
    return demo_app.test_client()


def csrf_token(html):
    field = CSRF_INPUT_RE.search(html)
    assert field, "no csrf_token field in the page"
    return VALUE_RE.search(field.group(0)).group(1)


def login(client, username, password=DEMO_PASSWORD):
    page = client.get("/login")
    assert page.status_code == 200
    return client.post("/login", data={
        "username": username, "password": password, "csrf_token": csrf_token(page.get_data(as_text=True)),
    })


def first_patient(app, practice):
    with app.app_context():
        return db.session.scalar(
            sa.select(Patient.id).where(Patient.practice_id == practice).order_by(Patient.id)
        )


def test_the_integrator_implements_only_known_hooks(demo_app):
    pm = demo_app.extensions["callrec"].pm
    pm.check_pending()
    hooks = {caller.name for caller in pm.get_hookcallers(pm.get_plugin("practice_host"))}
    assert hooks == {
        "callrec_user_roles", "callrec_user_ref", "callrec_practice_ref", "callrec_resolve_patient",
        "callrec_patient_summary", "callrec_complaint_summary", "callrec_menu_links",
        "callrec_practice_exists", "callrec_staff_for_extension", "callrec_find_patients",
        "callrec_practice_summary",
    }


def test_the_demo_finds_patients_by_name_date_of_birth_and_number(demo_app):
    from examples.practice_host.models import Patient

    with demo_app.app_context():
        patient = db.session.scalars(db.select(Patient).where(Patient.practice_id == "p1")
                                     .order_by(Patient.id)).first()
        phone = patient.phones[0].e164
        hook = demo_app.extensions["callrec"].pm.hook
        for query in (patient.last_name.upper(), f"{patient.first_name} {patient.last_name}",
                      patient.date_of_birth.isoformat(), patient.date_of_birth.strftime("%d/%m/%Y"),
                      "0" + phone[3:], phone[-6:]):
            found = hook.callrec_find_patients(query=query, practice_ref="p1")
            assert patient.id in {p["ref"] for p in found}, query
            assert all(p["practice_ref"] == "p1" for p in found)
        assert hook.callrec_find_patients(query=patient.last_name, practice_ref="p2") == [] or all(
            p["practice_ref"] == "p2" for p in hook.callrec_find_patients(query=patient.last_name, practice_ref="p2"))
        assert hook.callrec_find_patients(query="zzzz-nobody", practice_ref="p1") == []


def test_tables_are_the_hosts_own(demo_app):
    with demo_app.app_context():
        host_tables = set(db.metadata.tables)
    assert host_tables and all(name.startswith("host_") for name in host_tables)


def test_login_form_signs_in_and_out(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'name="username"' in page and 'name="password"' in page
    assert "reception2" in page  # the demo logins box
    response = login(client, "owner")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Elliott Ballantyne" in home and "The Dental Implant Clinic" in home
    response = client.post("/logout", data={"csrf_token": csrf_token(home)})
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(client):
    client.get("/login")
    response = client.post("/login", data={"username": "owner", "password": DEMO_PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_with_a_clear_message(client):
    response = login(client, "owner", "not-the-password")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "The username or password is not right" in page
    assert 'role="alert"' in page
    assert client.get("/").status_code == 302
    unknown = login(client, "nobody").get_data(as_text=True)
    assert "The username or password is not right" in unknown


def test_sign_in_never_redirects_off_site(client):
    page = client.get("/login?next=https://evil.example/").get_data(as_text=True)
    response = client.post("/login?next=https://evil.example/", data={
        "username": "owner", "password": DEMO_PASSWORD, "csrf_token": csrf_token(page),
    })
    assert response.headers["Location"] == "/"


def test_pages_require_login(demo_app, client):
    patient = first_patient(demo_app, "p1")
    for path in ("/", f"/patients/{patient}", "/complaints", "/complaints/cmp-001"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login")


def test_patient_page_shows_record_and_callrec_panel(demo_app, client):
    patient = first_patient(demo_app, "p1")
    login(client, "reception")
    response = client.get(f"/patients/{patient}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Phone numbers" in page and "+447700900" in page
    assert re.search(r"<h2[^>]*>\s*Calls\b", page), "callrec's calls panel is missing"
    assert "/callrec/static/callrec.css" in page  # callrec_slot("head") in the host's layout


def test_another_practices_patient_and_complaint_are_404(demo_app, client):
    patient = first_patient(demo_app, "p1")
    login(client, "reception2")
    assert client.get(f"/patients/{patient}").status_code == 404
    assert client.get("/patients/pat-9999").status_code == 404
    assert client.get("/complaints/cmp-001").status_code == 404
    listing = client.get("/").get_data(as_text=True)
    assert "Harbourside Dental Care" in listing and patient not in listing


def test_search_filters_patients_by_name(client):
    login(client, "reception")
    page = client.get("/?q=campbell").get_data(as_text=True)
    assert "Campbell, Robert" in page and "Campbell, Janet" in page and "Patel" not in page


def test_complaint_page_has_panel_and_close_button_for_its_handler(demo_app, client):
    login(client, "handler")
    page = client.get("/complaints/cmp-001").get_data(as_text=True)
    assert "Disputed fee for implant crown" in page
    assert "Calls attached as evidence" in page
    assert "Close complaint" in page
    response = client.post("/complaints/cmp-001/close", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    with demo_app.app_context():
        complaint = db.session.get(Complaint, "cmp-001")
        assert complaint.status == "closed" and complaint.closed_at is not None


def test_reception_cannot_close_a_complaint(client):
    login(client, "reception")
    page = client.get("/complaints/cmp-001").get_data(as_text=True)
    assert "Close complaint" not in page
    response = client.post("/complaints/cmp-001/close", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 403


def test_integrator_hooks_answer_from_the_host_tables(demo_app):
    hook = demo_app.extensions["callrec"].pm.hook
    with demo_app.test_request_context():
        owner = db.session.scalar(sa.select(Staff).where(Staff.username == "owner"))
        assert hook.callrec_user_roles(user=owner) == {"owner"}
        assert hook.callrec_user_ref(user=owner) == {"ref": f"staff-{owner.id}", "name": "Elliott Ballantyne"}
        assert hook.callrec_practice_ref(user=owner) == "p1"
        patient = db.session.get(Patient, "pat-0001")
        mobile = patient.phones[0].e164
        assert hook.callrec_resolve_patient(phone_e164=mobile, practice_ref="p1", started_at=None) == "pat-0001"
        assert hook.callrec_resolve_patient(phone_e164=mobile, practice_ref="p2", started_at=None) is None
        shared = db.session.get(Patient, "pat-0007").phones[1].e164  # Mr and Mrs Campbell's landline
        assert hook.callrec_resolve_patient(phone_e164=shared, practice_ref="p1", started_at=None) is None
        summary = hook.callrec_patient_summary(patient_ref="pat-0001")
        assert summary["practice_ref"] == "p1" and summary["url"] == "/patients/pat-0001"
        assert mobile in summary["phones"]
        complaint = hook.callrec_complaint_summary(complaint_ref="cmp-001")
        handler = db.session.scalar(sa.select(Staff).where(Staff.username == "handler"))
        assert complaint["status"] == "open" and complaint["handler_refs"] == [f"staff-{handler.id}"]
        assert complaint["patient_ref"] == "pat-0002"
        assert hook.callrec_complaint_summary(complaint_ref="cmp-999") is None


def test_an_objection_holds_on_a_shared_landline_too(demo_app):
    from callrec_plugin.models import PatientObjection

    hook = demo_app.extensions["callrec"].pm.hook
    with demo_app.test_request_context():
        mr, mrs = db.session.get(Patient, "pat-0007"), db.session.get(Patient, "pat-0008")
        shared = mr.phones[1].e164
        assert shared in {phone.e164 for phone in mrs.phones}
        assert hook.callrec_should_record(phone_e164=shared, practice_ref="p1") is True
        db.session.add(PatientObjection(practice_ref="p1", patient_ref="pat-0008", recorded_by_ref="reception"))
        db.session.commit()
        assert hook.callrec_should_record(phone_e164=shared, practice_ref="p1") is False
        assert hook.callrec_should_record(phone_e164=mr.phones[0].e164, practice_ref="p1") is True  # his mobile
        assert hook.callrec_should_record(phone_e164=shared, practice_ref="p2") is True


def test_seed_is_idempotent_and_numbers_are_fictional(demo_app):
    with demo_app.app_context():
        assert seed_host_data(echo=lambda message: None) is False
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Staff)) == len(STAFF)
        for patient in db.session.scalars(sa.select(Patient)):
            for phone in patient.phones:
                assert re.fullmatch(r"\+447700900\d{3}|\+441632960\d{3}", phone.e164), phone.e164
        counts = dict(db.session.execute(
            sa.select(Patient.practice_id, sa.func.count()).group_by(Patient.practice_id)
        ).all())
    assert counts == {"p1": 34, "p2": 6}


def test_the_seed_plans_300_calls_over_seven_months_in_both_practices(demo_app):
    import datetime as dt

    from examples.practice_host.seed import plan_calls

    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
    with demo_app.app_context():
        calls = plan_calls(300, now=now)
    assert len(calls) == 300 and len({call.source_ref for call in calls}) == 300
    ages = [(now - call.started_at) / dt.timedelta(days=1) for call in calls]
    assert 0 < min(ages) and 200 <= max(ages) <= 7 * 31  # the last seven months, some past retention
    assert sum(age > 183 for age in ages) >= 10 and sum(age <= 30 for age in ages) >= 30
    assert {call.practice_ref for call in calls} == {"p1", "p2"}
    assert {call.direction for call in calls} >= {"inbound", "outbound"}
    assert sum(call.complaint_ref is not None for call in calls) >= 10
    assert sum(call.patient_ref is not None for call in calls) > 200


def test_cli_commands_exist(demo_app):
    runner = demo_app.test_cli_runner()
    result = runner.invoke(args=["seed", "--calls", "0"])
    assert result.exit_code == 0, result.output
    assert "Already seeded" in result.output
    assert {"init-db", "seed", "callrec"} <= set(demo_app.cli.commands)


def test_seeded_calls_show_in_the_panel(demo_app, client):
    from examples.practice_host.seed import seed_calls

    with demo_app.app_context():
        assert seed_calls(12, echo=lambda message: None) > 0
        assert seed_calls(12, echo=lambda message: None) == 0  # idempotent
    login(client, "handler")
    page = client.get("/patients/pat-0002").get_data(as_text=True)  # cmp-001's complainant: linked calls
    assert "Disputed fee for implant crown" in page
    assert "Held: complaint" in page
    # Closing the complaint in the PMS releases the complaint holds on its calls.
    page = client.get("/complaints/cmp-001").get_data(as_text=True)
    response = client.post("/complaints/cmp-001/close", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    from callrec_plugin.models import Hold

    with demo_app.app_context():
        holds = db.session.scalars(sa.select(Hold).where(Hold.complaint_ref == "cmp-001")).all()
        assert holds and all(hold.released_at is not None for hold in holds)
    assert "Held: complaint" not in client.get("/patients/pat-0002").get_data(as_text=True)
