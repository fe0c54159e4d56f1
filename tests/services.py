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


def main(services):
    missing = []
    for service in services:
        host, port = address(service)
        if not reachable(host, port):
            missing.append(service)
            print(f"callrec tests need {service} at {host}:{port}, and nothing answers there.", file=sys.stderr)
            print(f"  start it with: {HOW_TO_START[service]}", file=sys.stderr)
    if missing:
        print(f"Not running: {', '.join(missing)}. Start it and run make test again.", file=sys.stderr)
        return 2
    print(f"services up: {', '.join(services)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["postgres", "redis"]))
