"""The conformance kit (callrec_plugin.testing, a pytest plugin) run against the demo host, as an
integrator runs it against their own app: its hooks answer the documented shapes, and each role signs in."""
import shutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `examples` is not installed: import it from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from examples.practice_host.models import Complaint, Patient, PatientPhone, Staff, db  # noqa: E402
from examples.practice_host.seed import STAFF  # noqa: E402
from tests.test_demo_host import make_app, seeded_database  # noqa: E402,F401  (the seeded template database)


@pytest.fixture
def callrec_app(tmp_path, seeded_database):  # noqa: F811
    shutil.copyfile(seeded_database, tmp_path / "practice.db")
    app = make_app(tmp_path, tmp_path / "practice.db")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def callrec_users(callrec_app):
    """The demo's staff of the first practice, one per callrec role."""
    with callrec_app.app_context():
        staff = db.session.scalars(sa.select(Staff).where(Staff.practice_id == "p1")).all()
        for member in staff:
            db.session.expunge(member)  # used after this context, attributes already loaded
    return {member.role: member for member in staff}


@pytest.fixture
def callrec_refs(callrec_app):
    """Every patient, complaint, number and extension of each demo practice, read from its database."""
    with callrec_app.app_context():
        refs = {}
        for practice in ("p1", "p2"):
            refs[practice] = {
                "patients": db.session.scalars(sa.select(Patient.id).where(Patient.practice_id == practice)).all(),
                "complaints": db.session.scalars(
                    sa.select(Complaint.id).where(Complaint.practice_id == practice)).all(),
                "phones": db.session.scalars(sa.select(PatientPhone.e164).join(Patient).where(
                    Patient.practice_id == practice)).all(),
                "extensions": [ext for _, _, _, p, ext in STAFF if p == practice],
                "patient_queries": ["a", "07700"],
            }
    assert all(refs[p]["patients"] and refs[p]["complaints"] for p in refs)
    return refs


@pytest.fixture
def callrec_login(callrec_app, callrec_users):
    """The demo keeps sign-ins server-side (login_sessions.py: logout revokes them), so a Flask-Login
    session cookie made by hand is refused, as it should be: sign in through the demo's form instead,
    as a host with its own sign-in overrides the kit's fixture."""
    from examples.practice_host.seed import DEMO_PASSWORD
    from tests.test_demo_host import login

    def client_for(role):
        client = callrec_app.test_client()
        assert login(client, callrec_users[role].username, DEMO_PASSWORD).status_code == 302
        return client

    return client_for


@pytest.fixture
def callrec_sign_in():
    """The demo signs in through its own form (server-side sessions: a written session cookie is not enough)."""
    from tests.test_demo_host import login

    def sign_in(client, user):
        assert login(client, user.username).status_code == 302

    return sign_in


def test_the_demo_hosts_hooks_conform(callrec_conformance):
    callrec_conformance.assert_ok()


@pytest.mark.parametrize("role", ["owner", "manager", "complaint_handler", "trainer", "staff", "dpo"])
def test_each_role_signs_in_and_sees_the_calls_panel(callrec_login, callrec_refs, role):
    client = callrec_login(role)
    patient = callrec_refs["p1"]["patients"][0]
    page = client.get(f"/patients/{patient}")
    assert page.status_code == 200
    assert "callrec-panel" in page.get_data(as_text=True)
    other_practice = callrec_refs["p2"]["patients"][0]
    assert client.get(f"/patients/{other_practice}").status_code == 404
