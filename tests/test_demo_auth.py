"""The demo host's sign-in as hosts should copy it: logout ends the session on the server, failed
sign-ins are throttled, the session cookie is Secure over HTTPS, and its state files are private."""
import os
import stat

import sqlalchemy as sa

from tests.test_demo_host import csrf_token, demo_app, login, make_app, seeded_database  # noqa: F401

from examples.practice_host import login_sessions  # noqa: E402
from examples.practice_host.models import db  # noqa: E402
from examples.practice_host.seed import DEMO_PASSWORD  # noqa: E402


def sign_out(client):
    page = client.get("/")
    assert page.status_code == 200
    return client.post("/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True))})


def session_cookie(client, app):
    cookie = client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    assert cookie is not None
    return cookie.value


def test_logout_revokes_the_session_so_a_copy_of_the_old_cookie_no_longer_works(demo_app):
    client = demo_app.test_client()
    assert login(client, "owner").status_code == 302
    assert client.get("/").status_code == 200
    stolen = session_cookie(client, demo_app)  # e.g. copied from another tab or a proxy's log
    with demo_app.app_context():
        (live,) = db.session.scalars(sa.select(login_sessions.LoginSession)).all()
        assert live.revoked_at is None
    assert sign_out(client).status_code == 302

    replay = demo_app.test_client()
    replay.set_cookie(demo_app.config.get("SESSION_COOKIE_NAME", "session"), stolen)
    response = replay.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert replay.get("/patients/pat-0001").status_code == 302
    with demo_app.app_context():
        assert db.session.get(login_sessions.LoginSession, live.id).revoked_at is not None
    # signing in again makes a new session; the revoked one stays revoked
    assert login(client, "owner").status_code == 302
    assert client.get("/").status_code == 200
    assert replay.get("/").status_code == 302


def test_two_sign_ins_are_two_sessions_and_logout_ends_only_its_own(demo_app):
    laptop, desktop = demo_app.test_client(), demo_app.test_client()
    assert login(laptop, "manager").status_code == 302
    assert login(desktop, "manager").status_code == 302
    assert sign_out(laptop).status_code == 302
    assert laptop.get("/").status_code == 302
    assert desktop.get("/").status_code == 200


def test_failed_sign_ins_are_throttled_and_then_even_the_right_password_waits(demo_app):
    client = demo_app.test_client()
    for attempt in range(5):
        refused = login(client, "owner", password=f"guess-{attempt}")
        assert refused.status_code == 200 and "not right" in refused.get_data(as_text=True)
    blocked = login(client, "owner", password=DEMO_PASSWORD)
    assert blocked.status_code == 429
    assert "Too many sign-in attempts" in blocked.get_data(as_text=True)
    assert int(blocked.headers["Retry-After"]) > 0
    assert client.get("/").status_code == 302  # not signed in
    # another username from the same address is not locked out by the first one's failures
    other = demo_app.test_client()
    assert login(other, "manager").status_code == 302


def test_successful_sign_ins_are_not_counted(demo_app):
    for _ in range(8):
        client = demo_app.test_client()
        assert login(client, "reception").status_code == 302
        assert sign_out(client).status_code == 302


def test_guessing_many_usernames_from_one_address_is_throttled_too(demo_app):
    client = demo_app.test_client()
    statuses = [login(client, f"nobody{n}", password="x").status_code for n in range(31)]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429


def test_the_session_cookie_is_secure_over_https_and_not_over_plain_http(demo_app):
    plain = demo_app.test_client()
    response = login(plain, "owner")
    assert "Secure" not in response.headers["Set-Cookie"]  # http://127.0.0.1 would drop a Secure cookie
    secure = demo_app.test_client()
    page = secure.get("/login", base_url="https://localhost")
    response = secure.post("/login", base_url="https://localhost", headers={"Referer": "https://localhost/login"},
                           data={"username": "owner", "password": DEMO_PASSWORD,
                                 "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert response.status_code == 302
    cookie = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")][0]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_behind_a_trusted_proxy_the_forwarded_https_makes_the_cookie_secure(tmp_path, seeded_database):  # noqa: F811
    import shutil

    shutil.copyfile(seeded_database, tmp_path / "practice.db")
    app = make_app(tmp_path, tmp_path / "practice.db")
    app.config["PRACTICE_HOST_TRUSTED_PROXIES"] = 1
    from examples.practice_host import _session_cookies

    _session_cookies(app)
    client = app.test_client()
    # Flask-WTF checks the Referer of an HTTPS form post
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9",
               "Referer": "https://localhost/login"}
    page = client.get("/login", headers=headers)
    response = client.post("/login", headers=headers, data={
        "username": "owner", "password": DEMO_PASSWORD, "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert response.status_code == 302 and "Secure" in response.headers["Set-Cookie"]
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_state_files_are_private_and_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    state = tmp_path / "state"
    app = make_app(state, state / "practice.db")
    with app.app_context():
        db.create_all()
        assert db.session.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(sa.text("PRAGMA busy_timeout")).scalar() >= 5000
        db.session.remove()
        db.engine.dispose()
    for path in (state / "practice.db", state / "keys.txt", state / "audit-signing.pem"):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o077 == 0, f"{path.name} is readable by others: {oct(mode)}"
    assert stat.S_IMODE(os.stat(state / "storage").st_mode) & 0o077 == 0
