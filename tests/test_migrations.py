"""callrec's Alembic environment: own version table, migrations up and down, no drift from the models."""
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from callrec_plugin import migrate
from callrec_plugin.models import metadata


def fresh_engine(tmp_path, database_url):
    if database_url.startswith("sqlite"):
        return sa.create_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS callrec_migration_test CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA callrec_migration_test"))
    return sa.create_engine(database_url, connect_args={"options": "-csearch_path=callrec_migration_test"})


def test_upgrade_on_an_empty_database_matches_the_models(tmp_path, database_url):
    engine = fresh_engine(tmp_path, database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE host_patients (id INTEGER PRIMARY KEY)"))
    migrate.upgrade(engine)
    tables = set(sa.inspect(engine).get_table_names())
    assert {table.name for table in metadata.sorted_tables} <= tables
    assert migrate.VERSION_TABLE in tables
    assert "alembic_version" not in tables  # never the host's version table
    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_name": migrate.include_name, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []
    assert "host_patients" in tables  # the host's table is neither dropped nor proposed for dropping


def test_downgrade_to_base_removes_only_callrec_tables(tmp_path, database_url):
    engine = fresh_engine(tmp_path, database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE host_patients (id INTEGER PRIMARY KEY)"))
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    tables = set(sa.inspect(engine).get_table_names())
    assert not any(name.startswith("callrec_") for name in tables)
    assert "host_patients" in tables
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
