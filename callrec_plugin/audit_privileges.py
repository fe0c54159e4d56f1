"""PostgreSQL privileges that make the audit trail append-only for the application's role.

Run the migrations as a role that owns callrec's tables, and let the application connect as another
role: this grants that role what it needs on every callrec table, but only SELECT and INSERT on the
audit events, so not even a compromised application can edit or delete history.
"""
from callrec_plugin.models import AuditEvent, metadata


class PrivilegeError(RuntimeError):
    """The privileges could not be set; the message says why."""


def restrict_statements(dialect, role, schema):
    quote = dialect.identifier_preparer.quote
    audit_table = AuditEvent.__tablename__
    statements = []
    for table in metadata.sorted_tables:
        name = quote(table.name)
        statements.append(f"REVOKE ALL ON {name} FROM {quote(role)}")
        privileges = "SELECT, INSERT" if table.name == audit_table else "SELECT, INSERT, UPDATE, DELETE"
        statements.append(f"GRANT {privileges} ON {name} TO {quote(role)}")
    # Integer primary keys draw from sequences: the role needs them to INSERT.
    statements.append(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {quote(schema)} TO {quote(role)}")
    return statements


def restrict_audit_to_append_only(engine, role):
    if engine.dialect.name != "postgresql":
        raise PrivilegeError("append-only privileges are for PostgreSQL; on SQLite protect the database file")
    with engine.begin() as connection:
        schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
        for statement in restrict_statements(engine.dialect, role, schema):
            connection.exec_driver_sql(statement)
