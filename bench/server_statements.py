"""Statements as the database server receives them, not as SQLAlchemy issues them.

On PostgreSQL every pooled connection is traced by libpq while the block runs (psycopg's
``PGconn.trace``): each frontend ``Execute`` (extended protocol, one per row of a pipelined
executemany) or ``Query`` (simple protocol) message is one statement the server runs. On SQLite, where
the "server" is the library in this process, each cursor execute counts, and an executemany counts
once per row (SQLite steps the statement once per row).
"""
import contextlib
import re
import tempfile

import sqlalchemy as sa

_SENT = re.compile(r"\tF\t\d+\t(Execute|Query)\b")  # libpq trace: "<time>\tF\t<length>\t<message> ..."


class Count:
    def __init__(self):
        self.statements = 0


@contextlib.contextmanager
def server_statements(engine):
    """``with server_statements(engine) as count: ...`` then ``count.statements``."""
    count = Count()
    if engine.dialect.name == "postgresql":
        with tempfile.TemporaryFile(mode="w+") as trace:
            traced = []

            def on_checkout(dbapi_connection, record, proxy):
                dbapi_connection.pgconn.trace(trace.fileno())
                traced.append(dbapi_connection)

            def on_checkin(dbapi_connection, record):
                if dbapi_connection in traced:
                    dbapi_connection.pgconn.untrace()
                    traced.remove(dbapi_connection)

            sa.event.listen(engine, "checkout", on_checkout)
            sa.event.listen(engine, "checkin", on_checkin)
            try:
                yield count
            finally:
                sa.event.remove(engine, "checkout", on_checkout)
                sa.event.remove(engine, "checkin", on_checkin)
                for connection in traced:
                    connection.pgconn.untrace()
                trace.flush()
                trace.seek(0)
                count.statements = len(_SENT.findall(trace.read()))
        return

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        count.statements += len(parameters) if executemany else 1

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield count
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
