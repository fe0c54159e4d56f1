"""The demo's embedded SQLite: WAL, a busy timeout, and files only their owner can read.

* WAL lets pages be read while another request writes, and a busy timeout makes a writer wait its
  turn for SQLite's single write lock instead of failing at once with "database is locked" (callrec's
  audit append takes that lock before reading the chain's head, so concurrent requests queue there).
* The database holds patients' names and numbers and the wrapped keys of their calls: mode 0600 in
  a 0700 folder, like the secret key and the key-encryption key beside it. SQLite gives its -wal and
  -shm files the database file's mode.
"""
import os

import sqlalchemy as sa
from sqlalchemy.engine import make_url

BUSY_TIMEOUT_MS = 30_000


def sqlite_file(uri):
    """The file of a SQLite URI, or None (another database, or in memory)."""
    url = make_url(uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return os.path.abspath(url.database)


def _tune(connection, _record):
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")  # durable across a crash of the process in WAL mode
    cursor.close()


def tune_sqlite(engine):
    """WAL and a busy timeout on every connection of a SQLite engine (no-op for other databases)."""
    if engine.dialect.name == "sqlite" and not sa.event.contains(engine, "connect", _tune):
        sa.event.listen(engine, "connect", _tune)


def private_directory(path):
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def private_database_file(path):
    """Create the SQLite file with mode 0600 before SQLite does (it would use the umask), or tighten it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        if os.path.exists(name):
            os.chmod(name, 0o600)
