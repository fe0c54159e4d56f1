"""Check that the services the tests use are running, and say how to start any that is not.

    python -m tests.services postgres redis
"""
import os
import socket
import sys
from urllib.parse import urlsplit

HOW_TO_START = {
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "redis": "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
}


def address(service):
    if service == "postgres":
        url = os.environ.get("CALLREC_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
    else:
        url = os.environ.get("CALLREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (5432 if service == "postgres" else 6379)


def reachable(host, port):
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def database_problem():
    """None if the test database accepts a connection, else what went wrong (e.g. it does not exist)."""
    import sqlalchemy as sa

    url = os.environ.get("CALLREC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        with sa.create_engine(url).connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as exc:  # the driver's own words say best what is wrong
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return f"{type(exc).__name__}: {first_line}"
    return None


def main(services):
    missing = []
    for service in services:
        host, port = address(service)
        if not reachable(host, port):
            missing.append(service)
            print(f"callrec tests need {service} at {host}:{port}, and nothing answers there.", file=sys.stderr)
            print(f"  start it with: {HOW_TO_START[service]}", file=sys.stderr)
        elif service == "postgres" and (problem := database_problem()):
            missing.append("the PostgreSQL test database")
            print(f"PostgreSQL answers at {host}:{port} but the test database does not: {problem}", file=sys.stderr)
            print("  create it with: createdb -h 127.0.0.1 -U postgres test "
                  "(or set CALLREC_TEST_DATABASE_URL)", file=sys.stderr)
    if missing:
        print(f"Not available: {', '.join(missing)}. Start or create it and run make test again.", file=sys.stderr)
        return 2
    print(f"services up: {', '.join(services)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["postgres", "redis"]))
