"""Security across callrec's pages: the route table, CSRF on every POST, headers, no stack traces."""
import pytest
import sqlalchemy as sa

from callrec_plugin.models import AccessGrant, AuditEvent, PatientObjection
from callrec_plugin.views import ROUTE_ACTIONS
from tests.conftest import valid_csrf_token
from tests.factories import add_recording


def callrec_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("callrec.")]


def test_every_route_is_in_the_route_table_and_no_more(app):
    endpoints = {rule.endpoint for rule in callrec_rules(app)}
    assert endpoints == set(ROUTE_ACTIONS), (
        f"missing from ROUTE_ACTIONS: {endpoints - set(ROUTE_ACTIONS)}; stale: {set(ROUTE_ACTIONS) - endpoints}")


def post_routes(app, recording_id):
    urls = {
        "callrec.create_grant": f"/callrec/recordings/{recording_id}/grants",
        "callrec.record_objection": "/callrec/patients/pat1/objections",
    }
    for rule in callrec_rules(app):
        if "POST" in rule.methods and rule.endpoint != "callrec.ingest_recording":
            assert rule.endpoint in urls, f"add {rule.endpoint} to this CSRF test"
            yield rule.endpoint, urls[rule.endpoint]


FORM = {"purpose": "compliance", "action": "play", "callrec-objection-note": "x"}


def state(db_session):
    db_session.expire_all()
    count = lambda model: db_session.scalar(sa.select(sa.func.count()).select_from(model))  # noqa: E731
    return count(AccessGrant), count(PatientObjection)


@pytest.mark.parametrize("token_kind", ["missing", "wrong", "other_session"])
def test_every_post_route_refuses_a_bad_csrf_token_and_changes_nothing(app, db_session, login, token_kind):
    recording = add_recording(db_session)
    owner = login("owner")
    token = valid_csrf_token(app, owner)  # the owner's session has a token of its own
    for endpoint, url in post_routes(app, recording.id):
        before = state(db_session)
        data = dict(FORM)
        if token_kind == "wrong":
            data["csrf_token"] = data["callrec-objection-csrf_token"] = "not-a-token"
        elif token_kind == "other_session":
            data["csrf_token"] = data["callrec-objection-csrf_token"] = valid_csrf_token(app, login("manager"))
        response = owner.post(url, data=data)
        assert response.status_code == 400, (endpoint, response.status_code)
        assert state(db_session) == before, endpoint
    # and the same requests with the session's own token do change something: the test can fail
    for endpoint, url in post_routes(app, recording.id):
        response = owner.post(url, data=dict(FORM, csrf_token=token, **{"callrec-objection-csrf_token": token}))
        assert response.status_code == 302, endpoint
    assert state(db_session) == (1, 1)


def test_security_headers_on_callrec_pages(app, db_session, login):
    recording = add_recording(db_session)
    for url in (f"/callrec/recordings/{recording.id}", "/callrec/audit", "/callrec/recordings/nope"):
        response = login("owner").get(url)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_carry_no_inline_script(app, db_session, login):
    recording = add_recording(db_session)
    client = login("owner")
    for url in (f"/callrec/recordings/{recording.id}", "/callrec/audit", "/patients/pat1"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>" not in html and "onclick=" not in html and "style=" not in html


def test_an_unexpected_error_shows_no_stack_trace(app, db_session, login, monkeypatch):
    from callrec_plugin.views import recordings

    recording = add_recording(db_session)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(recordings, "_page_context", explode)
    response = login("owner").get(f"/callrec/recordings/{recording.id}")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "secret internal detail" not in body
    assert "reference" in body


def test_every_denied_request_leaves_one_audit_event(app, db_session, login):
    recording = add_recording(db_session)
    login("reception").get(f"/callrec/recordings/{recording.id}/audio")
    events = db_session.scalars(sa.select(AuditEvent)).all()
    assert [(e.action, e.outcome, e.actor_ref, e.recording_id) for e in events] == [
        ("play", "denied", "reception", recording.id)]
