"""The conformance kit fails on wrong hook implementations, naming each problem (run by pytester in a
fresh pytest process, as an integrator's suite would run it)."""
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
REPO_ROOT = Path(__file__).resolve().parents[1]

CONFTEST = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})

    import pytest
    import sqlalchemy as sa

    from callrec_plugin import migrate
    from callrec_plugin.hooks import hookimpl
    from tests import hostapp

    WRONG = {wrong}


    class WrongIntegrator:
        # Registered after the test host's integrator: its answers come first.
        @hookimpl
        def callrec_user_roles(self, user):
            return ["owner", "superuser"]  # a list, and a role callrec does not know

        @hookimpl
        def callrec_patient_summary(self, patient_ref):
            if patient_ref == "pat1":  # pA's patient, said to be pB's
                return {{"ref": "pat1", "name": "Ada", "practice_ref": "pB", "phones": []}}
            raise KeyError(patient_ref)  # unknown refs must give None, not an exception

        @hookimpl
        def callrec_complaint_summary(self, complaint_ref):
            return {{}}  # for every ref, even unknown ones

        @hookimpl
        def callrec_practice_summary(self, practice_ref):
            if practice_ref == "pA":  # another practice's summary
                return {{"ref": "pB", "name": "Hilltop Smiles"}}
            if practice_ref == "pB":
                return {{"ref": "pB"}}  # no name
            return {{"ref": practice_ref, "name": "Made up"}}  # unknown practices must give None


    @pytest.fixture
    def app(tmp_path):
        url = f"sqlite:///{{tmp_path}}/host.db"
        engine = sa.create_engine(url)
        migrate.upgrade(engine)
        hostapp.db.metadata.create_all(engine)
        engine.dispose()
        app = hostapp.create_app({{"SQLALCHEMY_DATABASE_URI": url, "CALLREC_STORAGE_DIR": str(tmp_path / "s")}})
        if WRONG:
            app.extensions["callrec"].pm.register(WrongIntegrator(), name="wrong")
        with app.app_context():
            hostapp.seed_users(hostapp.db.session)
        yield app
        with app.app_context():
            hostapp.db.engine.dispose()


    @pytest.fixture
    def callrec_users(app):
        with app.app_context():
            users = {{role: hostapp.db.session.get(hostapp.User, name) for role, name in [
                ("owner", "owner"), ("manager", "manager"), ("complaint_handler", "handler"),
                ("trainer", "trainer"), ("staff", "reception"), ("dpo", "dpo")]}}
            for user in users.values():
                hostapp.db.session.expunge(user)
        return users


    @pytest.fixture
    def callrec_refs():
        return {{"pA": {{"patients": ["pat1", "pat2"], "complaints": ["cX"], "phones": ["+447700900001"],
                        "extensions": ["201"]}},
                "pB": {{"patients": ["patB"], "complaints": ["cB"]}}}}
""")

TEST = """
def test_hooks_conform(callrec_conformance):
    callrec_conformance.assert_ok()


def test_signs_in_as_reception(callrec_login):
    page = callrec_login("staff").get("/patients/pat1")
    assert page.status_code == 200 and "callrec-panel" in page.get_data(as_text=True)
"""


def run_kit(pytester, wrong):
    pytester.makeconftest(CONFTEST.format(root=str(REPO_ROOT), wrong=wrong))
    pytester.makepyfile(test_integrator=TEST)
    # A fresh process: the kit is found through its pytest11 entry point, as in an integrator's suite.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")


def test_the_kit_passes_a_conforming_host(pytester):
    run_kit(pytester, wrong=False).assert_outcomes(passed=2)


def test_the_kit_fails_on_wrong_hook_implementations_and_names_each(pytester):
    result = run_kit(pytester, wrong=True)
    result.assert_outcomes(failed=2)  # the panel does not show either: its patient lookup goes wrong
    output = result.stdout.str()
    assert "callrec hook implementations do not conform" in output
    assert "must be a set of role names" in output  # firstresult hook of the wrong type
    assert "belongs to practice 'pA', not 'pB'" in output  # a summary outside its practice
    assert "callrec_patient_summary(patient_ref='callrec-conformance-no-such-patient') raised KeyError" in output
    assert "callrec_complaint_summary(complaint_ref='callrec-conformance-no-such-complaint') answered {}" in output
    assert "the summary lacks ref, title, practice_ref, status, handler_refs" in output
    assert "the summary asked for practice 'pA' is of 'pB'" in output
    assert "callrec_practice_summary(practice_ref='pB') answered {'ref': 'pB'}: must be" in output
    assert "callrec_practice_summary(practice_ref='callrec-conformance-no-such-practice') answered" in output


def test_without_users_the_kit_says_what_to_override(pytester):
    pytester.makeconftest("import pytest\n@pytest.fixture\ndef app():\n    return object()\n")
    pytester.makepyfile(test_integrator=TEST.split("\n\n\n")[0])
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    assert "override the callrec_users fixture" in result.stdout.str() + result.stderr.str()
