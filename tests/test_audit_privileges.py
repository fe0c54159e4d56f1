"""On PostgreSQL the application's role can be limited to reading and appending the audit trail."""
import pytest
import sqlalchemy as sa

from callrec_plugin import audit
from callrec_plugin.identity import SYSTEM

ROLE = "callrec_app_test"


@pytest.fixture
def pg_engine(app, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: runs in the PostgreSQL pass of make test")
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP OWNED BY {ROLE}" if _role_exists(connection) else "SELECT 1")
        connection.exec_driver_sql(f"DROP ROLE IF EXISTS {ROLE}")
        connection.exec_driver_sql(f"CREATE ROLE {ROLE} NOLOGIN")
    yield engine
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP OWNED BY {ROLE}")
        connection.exec_driver_sql(f"DROP ROLE {ROLE}")
    engine.dispose()


def _role_exists(connection):
    return connection.exec_driver_sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'").first() is not None


def test_restricted_role_may_append_and_read_but_not_edit_or_delete(app, db_session, pg_engine):
    with app.test_request_context():
        audit.record("test", "done", actor=SYSTEM, reason="before restriction")
    db_session.commit()
    result = app.test_cli_runner().invoke(args=["callrec", "audit", "restrict", ROLE])
    assert result.exit_code == 0, result.output
    with pg_engine.connect() as connection:
        transaction = connection.begin()
        connection.exec_driver_sql(f"SET LOCAL ROLE {ROLE}")
        assert connection.exec_driver_sql("SELECT count(*) FROM callrec_audit_events").scalar() == 1
        connection.exec_driver_sql(
            "INSERT INTO callrec_audit_events (seq, occurred_at, roles, action, outcome, prev_hash, hash) "
            "VALUES (2, now(), '', 'appended', 'done', 'x', 'y')")
        connection.exec_driver_sql("SAVEPOINT attempt")
        for statement in ("UPDATE callrec_audit_events SET reason = 'rewritten'",
                          "DELETE FROM callrec_audit_events", "TRUNCATE callrec_audit_events"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                connection.exec_driver_sql(statement)
            connection.exec_driver_sql("ROLLBACK TO SAVEPOINT attempt")
        connection.exec_driver_sql("UPDATE callrec_recordings SET status = status")  # other tables stay writable
        transaction.rollback()


def test_restrict_refuses_sqlite_with_advice(app, database_url):
    if database_url.startswith("postgresql"):
        pytest.skip("the SQLite answer")
    result = app.test_cli_runner().invoke(args=["callrec", "audit", "restrict", ROLE])
    assert result.exit_code != 0 and "PostgreSQL" in result.output
