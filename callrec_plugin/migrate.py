"""callrec's own Alembic environment: its scripts ship in the package, its version table is its own.

Hosts run ``flask callrec db upgrade``; callrec's revisions never enter the host's version table, so
the host's ``alembic upgrade head`` never sees two heads.
"""
from importlib.resources import as_file, files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

VERSION_TABLE = "alembic_version_callrec"
TABLE_PREFIX = "callrec_"


def include_name(name, type_, parent_names):
    """Autogenerate looks at callrec's tables only (it would otherwise offer to drop the host's)."""
    if type_ == "table":
        return name.startswith(TABLE_PREFIX)
    return True


def _run(engine, action, *args, **kwargs):
    with as_file(files("callrec_plugin.migrations")) as location:
        config = Config()
        config.set_main_option("script_location", str(location))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            return action(config, *args, **kwargs)


def upgrade(engine, revision="head"):
    _run(engine, command.upgrade, revision)


def downgrade(engine, revision):
    _run(engine, command.downgrade, revision)


def current_revision(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision():
    from alembic.script import ScriptDirectory

    with as_file(files("callrec_plugin.migrations")) as location:
        config = Config()
        config.set_main_option("script_location", str(location))
        return ScriptDirectory.from_config(config).get_current_head()
