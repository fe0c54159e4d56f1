"""Counting the SQL statements a request sends, at the DBAPI cursor (what the server receives)."""
import contextlib

import sqlalchemy as sa


@contextlib.contextmanager
def count_statements(app, only=""):
    """Collect the SQL text of every statement executed on the app's engine inside the block
    (executemany counts once per row, as psycopg sends it); ``only`` keeps those containing it."""
    statements = []
    with app.app_context():
        engine = app.extensions["sqlalchemy"].engine

    def collect(conn, cursor, statement, parameters, context, executemany):
        if only in statement:
            statements.extend([statement] * (len(parameters) if executemany else 1))

    sa.event.listen(engine, "before_cursor_execute", collect)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", collect)
