"""Fixtures: a test host app on SQLite or PostgreSQL (CALLREC_TEST_DATABASE_URL), logged-in clients."""
import re
import secrets

import pytest
import sqlalchemy as sa
from flask import g, has_app_context
from flask_login import FlaskLoginClient

from callrec_plugin import migrate
from callrec_plugin.models import metadata as callrec_metadata
from tests import hostapp


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = hostapp.database_url()
    if url == "sqlite://":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'callrec-test.db'}"
    return url


def drop_everything(engine):
    """Drop callrec's and the test host's tables, whatever an earlier run left behind."""
    callrec_metadata.drop_all(engine)
    hostapp.db.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE IF EXISTS {migrate.VERSION_TABLE}"))


@pytest.fixture(scope="session")
def schema(database_url):
    engine = sa.create_engine(database_url)
    drop_everything(engine)
    migrate.upgrade(engine)
    hostapp.db.metadata.create_all(engine)
    engine.dispose()
    return database_url


@pytest.fixture(scope="session")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    try:
        from callrec_plugin.keyring import generate_key_file
    except ImportError:
        return None
    generate_key_file(str(path))
    return str(path)


def empty_tables(session):
    for table in reversed(callrec_metadata.sorted_tables + hostapp.db.metadata.sorted_tables):
        session.execute(table.delete())
    session.commit()


@pytest.fixture
def app_config(schema, tmp_path, key_file):
    """Config of the test host; tests change it before asking for ``app``."""
    return {
        "SQLALCHEMY_DATABASE_URI": schema,
        "CALLREC_STORAGE_DIR": str(tmp_path / "storage"),
        "CALLREC_KEY_FILE": key_file,
    }


class LoginClient(FlaskLoginClient):
    """A client whose every request starts with a fresh ``g``.

    A request reuses an app context the test has pushed (db_session does), and with it ``g``, where
    Flask-Login caches the user: without this, a second client in one test would act as the first.
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            for name in list(g):
                g.pop(name)
        return super().open(*args, **kwargs)


@pytest.fixture
def app(app_config):
    app = hostapp.create_app(app_config)
    app.test_client_class = LoginClient
    with app.app_context():
        empty_tables(hostapp.db.session)
        hostapp.seed_users(hostapp.db.session)
    yield app
    with app.app_context():
        hostapp.db.session.remove()
        empty_tables(hostapp.db.session)
        hostapp.db.engine.dispose()


@pytest.fixture
def db_session(app):
    with app.app_context():
        yield hostapp.db.session


@pytest.fixture
def login(app):
    """login("reception") -> a test client whose requests are made as that user."""

    def make_client(username):
        with app.app_context():
            user = hostapp.db.session.get(hostapp.User, username)
            assert user is not None, f"no test user {username!r}"
        return app.test_client(user=user)

    return make_client


CSRF_INPUT = re.compile(r'name="((?:[\w-]+-)?csrf_token)" type="hidden" value="([^"]+)"')


def csrf_field(html):
    """(field name, token) of the first CSRF field in a page (forms may prefix the name)."""
    match = CSRF_INPUT.search(html)
    assert match, "the page has no CSRF token field"
    return match.group(1), match.group(2)


def csrf_from(html):
    return csrf_field(html)[1]


def valid_csrf_token(app, client):
    """A CSRF token valid for this client's session, made without loading a page (as a script could)."""
    from flask import session
    from flask_wtf.csrf import generate_csrf

    raw = secrets.token_hex(20)
    with client.session_transaction() as client_session:
        client_session["csrf_token"] = raw
    with app.test_request_context():
        for name in list(g):  # generate_csrf caches in g, which a pushed app context shares
            g.pop(name)
        session["csrf_token"] = raw
        return generate_csrf()
