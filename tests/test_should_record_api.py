"""GET /callrec/api/should-record: the phone system asks before recording, signed like the ingest API."""
import datetime as dt
import time

import pytest
import sqlalchemy as sa

from callrec_plugin.hooks import hookimpl
from callrec_plugin.ingest.signing import signed_headers
from callrec_plugin.models import ApiNonce
from tests.hostapp import Patient
from tests.test_objections import record

SECRET = "pbx-secret-for-pA"
PATH = "/callrec/api/should-record"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "CALLREC_API_SECRETS": {"pA": SECRET, "pB": "other-secret", "ghost": "g-secret"}}


def ask(client, number, practice="pA", secret=SECRET, sign_path=None, **overrides):
    path = f"{PATH}?number={number}"
    headers = signed_headers(secret, practice, "GET", sign_path or path, b"")
    headers.update(overrides)
    return client.get(path, headers=headers)


def test_answers_true_then_false_once_the_patient_objects(app, db_session, login):
    client = app.test_client()
    first = ask(client, "07700900001")
    assert first.status_code == 200
    assert first.json == {"record": True, "reason": "no objection to recording for this number"}
    record(login("reception"), "pat1", method="letter")
    refused = ask(client, "07700900001")
    assert refused.json == {"record": False, "reason": "a patient with this number objected to recording"}
    assert ask(client, "%2B447700900001").json["record"] is False  # the same number in E.164, URL-encoded
    assert ask(client, "07700900002").json["record"] is True  # another patient
    assert ask(client, "07700900001", practice="pB", secret="other-secret").json["record"] is True  # other practice
    assert ask(client, "anonymous").json == {"record": True, "reason": "number withheld: no patient can be looked up"}


def test_a_number_added_to_the_patient_later_is_covered_at_once(app, db_session, login):
    record(login("reception"), "pat1")
    client = app.test_client()
    assert ask(client, "07700900555").json["record"] is True
    db_session.get(Patient, "pat1").phone = "+447700900555"  # the host adds the patient's new number
    db_session.commit()
    assert ask(client, "07700900555").json["record"] is False


def test_withdrawn_objection_lets_recording_resume(app, db_session, login):
    from tests.test_objection_lifecycle import withdraw

    client = login("reception")
    record(client, "pat1")
    assert ask(app.test_client(), "07700900001").json["record"] is False
    assert withdraw(client, "pat1", "Patient phoned to say recording is fine now").status_code == 302
    assert ask(app.test_client(), "07700900001").json["record"] is True


def test_a_replayed_request_is_409(app, db_session):
    client = app.test_client()
    path = f"{PATH}?number=07700900001"
    headers = signed_headers(SECRET, "pA", "GET", path, b"")
    assert client.get(path, headers=headers).status_code == 200
    again = client.get(path, headers=headers)
    assert again.status_code == 409 and "replay" in again.json["error"]
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ApiNonce)) == 1


@pytest.mark.parametrize("change,status", [
    ({"secret": "wrong-secret"}, 401),
    ({"sign_path": f"{PATH}?number=07700900002"}, 401),  # signed for another number: the query is signed
    ({"sign_path": PATH}, 401),  # signed without the query
    ({"practice": "pX"}, 401),  # no secret for it
    ({"practice": "ghost", "secret": "g-secret"}, 401),  # a secret, but the host has no such practice
])
def test_signature_covers_practice_secret_path_and_query(app, db_session, change, status):
    response = ask(app.test_client(), "07700900001", **change)
    assert response.status_code == status and response.is_json and "error" in response.json


@pytest.mark.parametrize("header,value", [
    ("X-Callrec-Timestamp", str(int(time.time()) - 3600)),  # stale (and no longer matches the signature)
    ("X-Callrec-Nonce", "short"),
    ("X-Callrec-Content-SHA256", "0" * 64),  # claims a body a GET does not have
    ("X-Callrec-Signature", "f" * 64),
])
def test_tampered_headers_are_refused(app, db_session, header, value):
    response = ask(app.test_client(), "07700900001", **{header: value})
    assert response.status_code == 401


def test_stale_but_correctly_signed_request_is_refused(app, db_session):
    path = f"{PATH}?number=07700900001"
    headers = signed_headers(SECRET, "pA", "GET", path, b"", timestamp=int(time.time()) - 3600)
    response = app.test_client().get(path, headers=headers)
    assert response.status_code == 401 and "too old" in response.json["error"]


def test_bad_number_or_none_is_400_json(app, db_session):
    client = app.test_client()
    assert ask(client, "call-me-maybe").status_code == 400
    headers = signed_headers(SECRET, "pA", "GET", PATH, b"")
    missing = client.get(PATH, headers=headers)
    assert missing.status_code == 400 and "number" in missing.json["error"]


def test_nothing_is_written_to_the_audit_trail_by_refusals(app, db_session):
    from callrec_plugin.models import AuditEvent

    for _ in range(5):
        ask(app.test_client(), "07700900001", secret="wrong-secret")
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0


def test_an_objection_written_by_another_process_counts_at_the_next_answer(app, db_session):
    """Objections are never cached: a row another web process or a script wrote is read by the next answer."""
    from callrec_plugin.models import PatientObjection

    client = app.test_client()
    assert ask(client, "07700900001").json["record"] is True  # the practice and the number are now remembered
    objections = PatientObjection.__table__
    with db_session.get_bind().begin() as elsewhere:  # not through callrec's code: as another process would
        elsewhere.execute(objections.insert().values(practice_ref="pA", patient_ref="pat1", recorded_by_ref="x",
                                                     recorded_by_name="", note="", method="phone"))
    assert ask(client, "07700900001").json["record"] is False
    with db_session.get_bind().begin() as elsewhere:
        elsewhere.execute(objections.update().values(withdrawn_at=sa.func.current_timestamp()))
    assert ask(client, "07700900001").json["record"] is True


def test_an_answer_costs_callrec_two_statements_and_writes_no_audit_event(app, db_session, login, monkeypatch):
    """The practice's standing objections, and the nonce; the host's patient lookup comes on top only
    while an objection stands in the practice. The practice's existence is remembered, not asked again."""
    from callrec_plugin.models import AuditEvent
    from callrec_plugin.views import pbx_api
    from tests.statements import count_statements

    monkeypatch.setattr(pbx_api, "sweep_due", lambda: False)  # the one-in-50 sweep is counted in its own test

    client = app.test_client()
    ask(client, "07700900001")
    with count_statements(app) as statements:
        assert ask(client, "07700900002").json["record"] is True
    assert [s.split()[0] for s in statements] == ["SELECT", "INSERT"]  # no objection stands: no patient lookup
    assert "callrec_patient_objections" in statements[0] and "callrec_api_nonces" in statements[1]
    record(login("reception"), "pat1")
    audit_rows = db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    with count_statements(app, only="callrec_") as statements:
        assert ask(client, "07700900002").json["record"] is True
        assert ask(client, "07700900001").json["record"] is False
    assert len(statements) == 4
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == audit_rows


def test_about_one_answer_in_fifty_also_deletes_nonces_too_old_to_replay(app, db_session, monkeypatch):
    """The sweep is one DELETE of nonces older than twice the allowed clock skew; fresh nonces stay."""
    from callrec_plugin.models import utcnow
    from callrec_plugin.views import pbx_api
    from tests.statements import count_statements

    skew = app.config["CALLREC_API_MAX_SKEW_SECONDS"]
    db_session.add_all([ApiNonce(practice_ref="pA", nonce="old-nonce-0000000001",
                                 seen_at=utcnow() - dt.timedelta(seconds=2 * skew + 5)),
                        ApiNonce(practice_ref="pA", nonce="fresh-nonce-00000001",
                                 seen_at=utcnow() - dt.timedelta(seconds=skew))])
    db_session.commit()
    client = app.test_client()
    monkeypatch.setattr(pbx_api, "sweep_due", lambda: False)
    assert ask(client, "07700900001").json["record"] is True
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ApiNonce)) == 3
    monkeypatch.setattr(pbx_api, "sweep_due", lambda: True)
    with count_statements(app, only="callrec_api_nonces") as statements:
        assert ask(client, "07700900002").json["record"] is True
    assert [s.split()[0] for s in statements] == ["DELETE", "INSERT"]
    left = set(db_session.scalars(sa.select(ApiNonce.nonce)))
    assert "old-nonce-0000000001" not in left and "fresh-nonce-00000001" in left and len(left) == 3


def test_the_sweep_is_due_on_about_one_request_in_fifty():
    import random

    from callrec_plugin.views import pbx_api

    random.seed(7)
    due = sum(pbx_api.sweep_due() for _ in range(50_000))
    assert 800 < due < 1200  # 1,000 expected


class SwitchablePractices:
    """A host whose practices change while callrec runs; counts how often it is asked."""

    def __init__(self, practices):
        self.practices, self.asked = set(practices), 0

    @hookimpl(tryfirst=True)
    def callrec_practice_exists(self, practice_ref):
        self.asked += 1
        return practice_ref in self.practices


def test_a_practice_is_remembered_for_a_short_time_and_an_unknown_one_never(app, db_session, monkeypatch):
    from callrec_plugin import pbx_lookups
    from callrec_plugin.state import get_state

    host = SwitchablePractices({"pB"})
    get_state(app).pm.register(host)
    client = app.test_client()
    assert ask(client, "07700900001").status_code == 401  # pA unknown to this host, so far
    host.practices.add("pA")
    assert ask(client, "07700900001").status_code == 200  # a "no" was not remembered
    asked = host.asked
    for _ in range(3):
        assert ask(client, "07700900001").status_code == 200
    assert host.asked == asked  # a "yes" is
    host.practices.discard("pA")
    assert ask(client, "07700900001").status_code == 200  # still within PRACTICE_TTL_SECONDS
    clock = pbx_lookups.time.monotonic() + pbx_lookups.PRACTICE_TTL_SECONDS + 1
    monkeypatch.setattr(pbx_lookups.time, "monotonic", lambda: clock)
    response = ask(client, "07700900001")
    assert response.status_code == 401 and "no such practice" in response.json["error"]


def test_a_remembered_invalid_number_is_still_refused_with_its_reason(app, db_session):
    client = app.test_client()
    first, second = ask(client, "call-me-maybe"), ask(client, "call-me-maybe")
    assert first.status_code == second.status_code == 400 and first.json == second.json
    assert "letters" in first.json["error"]
