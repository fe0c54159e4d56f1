"""Alembic environment for callrec's tables (run through callrec_plugin.migrate, never the host's env)."""
from alembic import context

from callrec_plugin.migrate import VERSION_TABLE, include_name
from callrec_plugin.models import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    include_name=include_name,
    compare_type=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
