"""A pytest plugin for ``make mutate`` only (setup.cfg ``[mutmut] pytest_add_cli_args``: ``-p tests.mutation_pytest_plugin``).

mutmut runs one pytest session per mutant, in a process forked from the one that ran the tests
first, so every session-scoped fixture runs again for every mutant. conftest's ``schema`` fixture
runs callrec's Alembic migrations: about a second of each mutant's time, more than the tests that
usually kill it. Here the first migration of a SQLite file is kept as a template (in the memory of
mutmut's main process, which the forked runs inherit) and every later one copies that file.
Migrations are not mutated (setup.cfg ``only_mutate``), so the copy is exactly what they would build.
"""
import atexit
import os
import shutil
import tempfile

from callrec_plugin import migrate

_migrate_for_real = migrate.upgrade
_template = {}


def _sqlite_file(engine):
    url = engine.url
    return url.database if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") else None


def _upgrade_from_template(engine, revision="head"):
    path = _sqlite_file(engine)
    if path is None or revision != "head":
        return _migrate_for_real(engine, revision)
    engine.dispose()  # no pooled connection may hold the file being replaced
    if "path" in _template:
        shutil.copyfile(_template["path"], path)
        return None
    result = _migrate_for_real(engine, revision)
    engine.dispose()
    handle, copy = tempfile.mkstemp(prefix="callrec-mutation-schema-", suffix=".db")
    os.close(handle)
    shutil.copyfile(path, copy)
    _template["path"], owner = copy, os.getpid()
    # Only the process that made it removes it: forked runs exit with os._exit, which skips atexit anyway.
    atexit.register(lambda: os.getpid() == owner and os.path.exists(copy) and os.remove(copy))
    return result


migrate.upgrade = _upgrade_from_template
