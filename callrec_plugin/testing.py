"""callrec's conformance kit: a pytest plugin that checks a host's hook implementations against the
shapes documented in the README's hook reference, and logs in as each role in the host's own app.

It is registered through the ``pytest11`` entry point, so installing callrec makes its fixtures
available; nothing runs until a test asks for them. In the host's test suite (pytest-flask style: an
``app`` fixture gives the host app):

    @pytest.fixture
    def callrec_users(app):
        # one host user per callrec role (owner, manager, complaint_handler, trainer, staff, dpo)
        return {"owner": User.query.filter_by(username="owner").one(), ...}

    @pytest.fixture
    def callrec_refs():
        # real refs of each practice, so summaries can be checked to stay in their practice
        return {"practice-1": {"patients": ["p1"], "complaints": ["c1"], "phones": ["+441632960001"],
                               "extensions": ["201"]},
                "practice-2": {"patients": ["p9"]}}

    @pytest.fixture
    def callrec_sign_in():
        # only if your app does not sign in through Flask-Login's session alone (the default)
        def sign_in(client, user):
            client.post("/login", data={"username": user.username, "password": "..."})
        return sign_in

    def test_callrec_hooks_conform(callrec_conformance):
        callrec_conformance.assert_ok()

    def test_reception_sees_the_calls_panel(callrec_login):
        assert "Calls" in callrec_login("staff").get("/patients/p1").get_data(as_text=True)

What is checked: no misspelt hook (``check_pending``); every firstresult hook answers its documented
type; user roles are known role names and each role's user holds its role; patient and complaint
summaries (and patient search results, resolved numbers and practice summaries) stay in the practice
they were asked for; unknown refs give None (or False) and never raise.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest

UNKNOWN_PATIENT = "callrec-conformance-no-such-patient"
UNKNOWN_COMPLAINT = "callrec-conformance-no-such-complaint"
UNKNOWN_PRACTICE = "callrec-conformance-no-such-practice"
UNKNOWN_NUMBER = "+447700900999"  # Ofcom's drama range: nobody's number
UNKNOWN_EXTENSION = "99999"
_PATIENT_KEYS = ("ref", "name", "practice_ref")
_COMPLAINT_KEYS = ("ref", "title", "practice_ref", "status", "handler_refs")
_STORAGE_METHODS = ("new_key", "open_write", "open_read", "size", "exists", "delete", "iter_keys")


@dataclass
class Conformance:
    """The checks, run against ``app``'s plugin manager; ``problems`` lists what does not conform."""

    app: object
    users: dict
    refs: dict
    problems: list = field(default_factory=list)

    # -- running ----------------------------------------------------------------------------------

    def run(self):
        from callrec_plugin.state import get_state

        self.problems = []
        hook = get_state(self.app).pm.hook
        with self.app.test_request_context("/"):
            try:
                get_state(self.app).pm.check_pending()
            except Exception as error:
                self.problems.append(f"check_pending: {error}")
            self._users(hook)
            self._unknown_refs(hook)
            for practice_ref, refs in self.refs.items():
                self._practice(hook, str(practice_ref), refs)
            self._call(hook, "callrec_storage_backend", self._storage_backend, app=self.app)
        return self.problems

    def assert_ok(self):
        problems = self.run()
        if problems:
            pytest.fail("callrec hook implementations do not conform:\n  - " + "\n  - ".join(problems),
                        pytrace=False)

    def _call(self, hook, name, check, **kwargs):
        """Call one hook; an exception or an answer ``check`` rejects is a problem."""
        described = f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items() if k != 'app')})"
        try:
            answer = getattr(hook, name)(**kwargs)
        except Exception as error:
            self.problems.append(f"{described} raised {type(error).__name__}: {error}")
            return None
        complaint = check(answer)
        if complaint:
            self.problems.append(f"{described} answered {answer!r}: {complaint}")
        return answer

    # -- users ------------------------------------------------------------------------------------

    def _users(self, hook):
        from callrec_plugin.roles import ROLES

        missing = sorted(ROLES - set(self.users))
        if missing:
            self.problems.append(f"callrec_users gives no user for the roles {', '.join(missing)}")
        for role, user in self.users.items():
            if role not in ROLES:
                self.problems.append(f"callrec_users names {role!r}, which is not a callrec role "
                                     f"({', '.join(sorted(ROLES))})")
                continue
            self._call(hook, "callrec_user_roles", lambda answer, role=role: _roles_problem(answer, role), user=user)
            self._call(hook, "callrec_user_ref", _user_ref_problem, user=user)
            self._call(hook, "callrec_practice_ref", _practice_problem, user=user)

    # -- refs the host does not know ---------------------------------------------------------------

    def _unknown_refs(self, hook):
        a_practice = next(iter(self.refs), UNKNOWN_PRACTICE)
        self._call(hook, "callrec_patient_summary", _must_be_none, patient_ref=UNKNOWN_PATIENT)
        self._call(hook, "callrec_complaint_summary", _must_be_none, complaint_ref=UNKNOWN_COMPLAINT)
        self._call(hook, "callrec_resolve_patient", _must_be_none, phone_e164=UNKNOWN_NUMBER,
                   practice_ref=a_practice, started_at=dt.datetime.now(dt.timezone.utc))
        self._call(hook, "callrec_resolve_patient", _must_be_none, phone_e164=UNKNOWN_NUMBER,
                   practice_ref=UNKNOWN_PRACTICE, started_at=None)
        self._call(hook, "callrec_staff_for_extension", _must_be_none, extension=UNKNOWN_EXTENSION,
                   practice_ref=UNKNOWN_PRACTICE, at=dt.datetime.now(dt.timezone.utc))
        self._call(hook, "callrec_practice_exists", lambda answer: None if answer in (False, None) else
                   "an unknown practice must not exist", practice_ref=UNKNOWN_PRACTICE)
        self._call(hook, "callrec_practice_summary", _must_be_none, practice_ref=UNKNOWN_PRACTICE)
        self._call(hook, "callrec_should_record", _bool_problem, phone_e164=UNKNOWN_NUMBER,
                   practice_ref=a_practice)

    # -- refs of each practice ----------------------------------------------------------------------

    def _practice(self, hook, practice_ref, refs):
        now = dt.datetime.now(dt.timezone.utc)
        self._call(hook, "callrec_practice_exists", lambda answer: None if answer is True else
                   "a practice the host has must exist", practice_ref=practice_ref)
        self._call(hook, "callrec_practice_settings", _settings_problem, practice_ref=practice_ref)
        self._call(hook, "callrec_practice_summary", lambda answer: _practice_summary_problem(answer, practice_ref),
                   practice_ref=practice_ref)
        for ref in refs.get("patients", ()):
            self._call(hook, "callrec_patient_summary", lambda answer: _patient_problem(answer, practice_ref),
                       patient_ref=ref)
        for ref in refs.get("complaints", ()):
            summary = self._call(hook, "callrec_complaint_summary",
                                 lambda answer: _complaint_problem(answer, practice_ref), complaint_ref=ref)
            if isinstance(summary, dict) and summary.get("patient_ref"):
                self._call(hook, "callrec_patient_summary", lambda answer: _patient_problem(
                    answer, practice_ref, "the complaint's patient"), patient_ref=summary["patient_ref"])
        for phone in refs.get("phones", ()):
            patient = self._call(hook, "callrec_resolve_patient", _optional_str, phone_e164=phone,
                                 practice_ref=practice_ref, started_at=now)
            if patient is not None and isinstance(patient, str):
                self._call(hook, "callrec_patient_summary", lambda answer: _patient_problem(
                    answer, practice_ref, "the resolved patient"), patient_ref=patient)
            self._call(hook, "callrec_should_record", _bool_problem, phone_e164=phone, practice_ref=practice_ref)
        for extension in refs.get("extensions", ()):
            self._call(hook, "callrec_staff_for_extension", _staff_problem, extension=extension,
                       practice_ref=practice_ref, at=now)
        for query in refs.get("patient_queries", ()):
            self._call(hook, "callrec_find_patients", lambda answer: _found_problem(answer, practice_ref),
                       query=query, practice_ref=practice_ref)

    @staticmethod
    def _storage_backend(answer):
        missing = [name for name in _STORAGE_METHODS if not callable(getattr(answer, name, None))]
        return f"a storage backend needs {', '.join(missing)}" if missing else None


# -- the documented shapes ---------------------------------------------------------------------------


def _roles_problem(answer, role):
    from callrec_plugin.roles import ROLES

    if not isinstance(answer, (set, frozenset)) or not all(isinstance(name, str) for name in answer):
        return "must be a set of role names"
    unknown = sorted(answer - ROLES)
    if unknown:
        return f"unknown role names {unknown} (callrec knows {', '.join(sorted(ROLES))})"
    if role not in answer:
        return f"the user given for {role!r} does not hold that role"
    return None


def _user_ref_problem(answer):
    if not isinstance(answer, dict) or not isinstance(answer.get("ref"), str) or not answer["ref"]:
        return 'must be {"ref": non-empty str, "name": str}'
    return None if isinstance(answer.get("name"), str) else '"name" must be a str'


def _practice_problem(answer):
    return None if isinstance(answer, str) and answer else "a user of a role must work in a practice (a str ref)"


def _must_be_none(answer):
    return None if answer is None else "an unknown ref must give None"


def _optional_str(answer):
    return None if answer is None or isinstance(answer, str) else "must be a str ref or None"


def _bool_problem(answer):
    return None if isinstance(answer, bool) else "must be True or False"


def _settings_problem(answer):
    return None if answer is None or isinstance(answer, dict) else "must be a dict of settings or None"


def _staff_problem(answer):
    if answer is None:
        return None
    return _user_ref_problem(answer)


def _practice_summary_problem(answer, practice_ref):
    # None is allowed: a host that does not name its practices leaves them unnamed (the built-in answer).
    if answer is None:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("name"), str) or not answer["name"].strip():
        return 'must be {"ref": str, "name": non-empty str} or None'
    if str(answer.get("ref")) != practice_ref:
        return f"the summary asked for practice {practice_ref!r} is of {answer.get('ref')!r}"
    return None


def _patient_problem(answer, practice_ref, what="a patient of this practice"):
    if not isinstance(answer, dict):
        return f"{what} must have a summary dict"
    missing = [key for key in _PATIENT_KEYS if key not in answer]
    if missing:
        return f"the summary lacks {', '.join(missing)}"
    if str(answer["practice_ref"]) != practice_ref:
        return f"{what} belongs to practice {practice_ref!r}, not {answer['practice_ref']!r}"
    phones = answer.get("phones", [])
    if not isinstance(phones, (list, tuple)) or not all(isinstance(p, str) and p.startswith("+") for p in phones):
        return '"phones" must be a list of E.164 numbers ("+44...")'
    return None


def _complaint_problem(answer, practice_ref):
    if not isinstance(answer, dict):
        return "a complaint of this practice must have a summary dict"
    missing = [key for key in _COMPLAINT_KEYS if key not in answer]
    if missing:
        return f"the summary lacks {', '.join(missing)}"
    if str(answer["practice_ref"]) != practice_ref:
        return f"the complaint belongs to practice {practice_ref!r}, not {answer['practice_ref']!r}"
    if answer["status"] not in ("open", "closed"):
        return '"status" must be "open" or "closed"'
    if not isinstance(answer["handler_refs"], (list, tuple, set, frozenset)):
        return '"handler_refs" must be a list of user refs'
    return None


def _found_problem(answer, practice_ref):
    if answer is None:
        return None
    if not isinstance(answer, (list, tuple)):
        return "must be a list of patient summaries"
    for summary in answer:
        problem = _patient_problem(summary, practice_ref, "every patient found")
        if problem:
            return problem
    return None


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture
def callrec_app(request):
    """The host app with callrec initialised: the ``app`` fixture (pytest-flask's convention)."""
    return request.getfixturevalue("app")


@pytest.fixture
def callrec_users():
    """{role name: host user} for each callrec role. Override it in your conftest.py."""
    raise pytest.UsageError("override the callrec_users fixture: {role name: a user of your app holding it}")


@pytest.fixture
def callrec_refs():
    """{practice_ref: {"patients": [...], "complaints": [...], "phones": [...], "extensions": [...],
    "patient_queries": [...]}}: real refs of your app, per practice. Override it in your conftest.py."""
    return {}


@pytest.fixture
def callrec_conformance(callrec_app, callrec_users, callrec_refs):
    """The checks; ``callrec_conformance.assert_ok()`` fails the test listing every problem."""
    with callrec_app.app_context():
        yield Conformance(callrec_app, callrec_users, callrec_refs)


@pytest.fixture
def callrec_sign_in(callrec_app):
    """``sign_in(client, user)``: signs ``client`` in as ``user``. The default writes Flask-Login's session
    keys (the user's ``get_id()``, fresh, and the identifier its session protection checks); override it
    when your app signs in differently (server-side sessions, SSO): e.g. post your own login form."""

    def sign_in(client, user):
        with callrec_app.app_context():
            user_id = user.get_id()
        # The session identifier Flask-Login's session protection compares ("strong" logs out without it).
        with callrec_app.test_request_context(environ_base=client.environ_base):
            from flask_login.utils import _create_identifier

            identifier = _create_identifier()
        with client.session_transaction() as session:
            session.update({"_user_id": user_id, "_fresh": True, "_id": identifier})

    return sign_in


@pytest.fixture
def callrec_login(callrec_app, callrec_users, callrec_sign_in):
    """``callrec_login("owner")``: a test client of your app signed in (by ``callrec_sign_in``) as your user
    of that role."""

    def client_for(role):
        if role not in callrec_users:
            raise KeyError(f"callrec_users gives no user for {role!r}")
        client = callrec_app.test_client()
        callrec_sign_in(client, callrec_users[role])
        return client

    return client_for


__all__ = ["Conformance", "callrec_app", "callrec_users", "callrec_refs", "callrec_conformance", "callrec_sign_in",
           "callrec_login"]
