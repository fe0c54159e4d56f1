"""Helpers for the job tests: a worker app factory, real worker processes, seeded recordings with blobs.

Worker processes find the app through ``CALLREC_APP_FACTORY=tests.jobs_support:create_app``, which
reads the test app's config from the environment variable ``CALLREC_TEST_APP_CONFIG`` (JSON).
"""
import datetime as dt
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from callrec_plugin.crypto import encrypt_stream, generate_data_key
from callrec_plugin.keyring import KeyRing
from callrec_plugin.models import AuditEvent, Hold, Recording, Tombstone, new_id, utcnow
from tests import hostapp

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG_ENV = "CALLREC_TEST_APP_CONFIG"
FACTORY = "tests.jobs_support:create_app"
REDIS_URL = os.environ.get("CALLREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DAY = dt.timedelta(days=1)


# -- the app a worker process runs -----------------------------------------------------------------


def create_app():
    """The test host app, configured from CALLREC_TEST_APP_CONFIG; with the job commands registered."""
    app = hostapp.create_app(json.loads(os.environ[CONFIG_ENV]))
    from callrec_plugin import cli_jobs

    group = app.cli.commands.get("callrec")
    if group is not None:
        cli_jobs.register(group)  # until cli.py wires it (then this is a no-op)
    return app


def unique_queue():
    return f"callrec-test-{os.getpid()}-{secrets.token_hex(3)}"


def redis_or_skip():
    import redis

    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        connection.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"these tests need Redis at {REDIS_URL}; start it with: "
                    "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no")
    return connection


def delete_queue_keys(connection, queue_name):
    """Remove what RQ kept for one test queue: its registries, its jobs and their results, its
    workers' keys (never FLUSHDB: others may share db 15)."""
    keys = list(connection.scan_iter(f"rq:*{queue_name}*"))
    keys += list(connection.scan_iter(f"callrec:scheduler:{queue_name}"))
    for job_key in connection.scan_iter("rq:job:callrec-*"):
        origin = connection.hget(job_key, "origin")
        if origin is not None and origin.decode() == queue_name:
            job_id = job_key.decode().split(":", 2)[2]
            keys += [job_key, f"rq:results:{job_id}", f"rq:executions:{job_id}"]
            keys += list(connection.scan_iter(f"rq:execution:{job_id}:*"))
    for worker_key in connection.scan_iter("rq:worker:*"):
        if connection.type(worker_key) == b"hash":
            queues = connection.hget(worker_key, "queues")
            if queues is not None and queue_name in queues.decode().split(","):
                keys.append(worker_key)
                connection.srem("rq:workers", worker_key)
    connection.srem("rq:queues", f"rq:queue:{queue_name}")
    for member in connection.smembers("rq:workers"):  # entries of callrec workers that are gone
        if member.startswith(b"rq:worker:callrec-") and not connection.exists(member):
            connection.srem("rq:workers", member)
    if keys:
        connection.delete(*keys)


def worker_env(app_config, **extra):
    env = dict(os.environ)
    env.pop("CALLREC_TEST_KILL_AT", None)
    env[CONFIG_ENV] = json.dumps(app_config)
    env["CALLREC_APP_FACTORY"] = FACTORY
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update({key: str(value) for key, value in extra.items()})
    return env


def worker_command(*args):
    return [str(BIN / "flask"), "--app", FACTORY, "callrec", "worker", *args]


def run_worker(app_config, *args, kill_at=None, timeout=120, **extra_env):
    """Run `flask callrec worker --burst` to completion (or to its SIGKILL). Returns CompletedProcess."""
    env = worker_env(app_config, **extra_env)
    if kill_at:
        env["CALLREC_TEST_KILL_AT"] = kill_at
    return subprocess.run(worker_command("--burst", "--without-scheduler", *args), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def start_worker(app_config, *args, **extra_env):
    """A long-running worker process (stop it with stop_process)."""
    return subprocess.Popen(worker_command(*args), cwd=REPO, env=worker_env(app_config, **extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop_process(process, timeout=20):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
    return process.stdout.read() if process.stdout else ""


def wait_for(predicate, timeout=60, interval=0.2, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


# -- recordings with small real CRE1 blobs ----------------------------------------------------------


class Blobs:
    """Writes small, real CRE1 blobs straight into the storage tree (no fsync: tests only)."""

    def __init__(self, app):
        self.root = app.config["CALLREC_STORAGE_DIR"]
        self.ring = KeyRing.from_config(app.config)
        from callrec_plugin.storage import LocalEncryptedStorage

        self.names = LocalEncryptedStorage

    def path(self, key):
        return os.path.join(self.root, *key.split("/"))

    def write(self, recording_id, payload=None):
        payload = payload if payload is not None else secrets.token_bytes(700)
        key = self.names.new_key(recording_id)
        data_key = generate_data_key()
        key_id, wrapped = self.ring.wrap(data_key, recording_id)
        path = self.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            result = encrypt_stream(io.BytesIO(payload), f, data_key, recording_id, hash_plaintext=False)
        return {"storage_key": key, "key_id": key_id, "wrapped_key": wrapped,
                "plaintext_size": result.plaintext_size, "stored_size": result.stored_size}

    def exists(self, key):
        return os.path.isfile(self.path(key))

    def keys(self):
        from callrec_plugin.storage import LocalEncryptedStorage

        return set(LocalEncryptedStorage(self.root).iter_keys())


def recording_row(started_at, practice_ref="pA", patient_ref=None, retention=dt.timedelta(days=183), **fields):
    rid = fields.pop("id", None) or new_id()
    row = {"id": rid, "practice_ref": practice_ref, "patient_ref": patient_ref, "direction": "inbound",
           "started_at": started_at, "duration_seconds": 42.0, "external_number": "+447700900001",
           "from_number": "+447700900001", "to_number": "201", "staff_name": "Reception Desk", "status": "active",
           "short_call": False, "recorded_despite_objection": False, "approved_for_training": False,
           "retain_until": started_at + retention, "audio_format": "wav", "mime_type": "audio/wav",
           "plaintext_size": 0, "stored_size": 0, "source": "test", "source_ref": rid,
           "created_at": utcnow(), "storage_key": None, "wrapped_key": None, "key_id": None}
    row.update(fields)
    return row


def seed(session, blobs, now, *, held=0, expired=0, active=0, in_grace=0, with_blobs=True, practice_ref="pA",
         patient_ref=None):
    """Bulk-insert recordings of four kinds; returns {kind: [ids]}.

    held: expired but with an active hold; expired: past retention, never held (eligible);
    active: within retention; in_grace: expired, hold released yesterday (grace 7 days).
    """
    kinds = {"held": held, "expired": expired, "active": active, "in_grace": in_grace}
    rows, holds, ids = [], [], {kind: [] for kind in kinds}
    for kind, count in kinds.items():
        for n in range(count):
            started = now - dt.timedelta(days=200 + n % 20) if kind != "active" else now - dt.timedelta(days=5 + n % 100)
            row = recording_row(started, practice_ref=practice_ref, patient_ref=patient_ref)
            if with_blobs:
                row.update(blobs.write(row["id"]))
            rows.append(row)
            ids[kind].append(row["id"])
            if kind == "held":
                holds.append({"recording_id": row["id"], "practice_ref": practice_ref, "kind": "investigation",
                              "reason": "test hold", "placed_by_ref": "owner", "placed_at": now - 30 * DAY})
            elif kind == "in_grace":
                holds.append({"recording_id": row["id"], "practice_ref": practice_ref, "kind": "investigation",
                              "reason": "test hold", "placed_by_ref": "owner", "placed_at": now - 30 * DAY,
                              "released_at": now - DAY, "released_by_ref": "manager"})
    for start in range(0, len(rows), 500):
        session.execute(sa.insert(Recording), rows[start:start + 500])
    if holds:
        session.execute(sa.insert(Hold), holds)
    session.commit()
    return ids


# -- the invariants ---------------------------------------------------------------------------------


def statuses(session):
    session.expire_all()
    return dict(session.execute(sa.select(Recording.id, Recording.status)).all())


def check_purge_invariants(session, blobs, ids, complete):
    """The state after any crash, or (complete=True) after recovery. Returns a summary dict."""
    session.expire_all()
    rows = {r.id: r for r in session.scalars(sa.select(Recording))}
    tombstones = set(session.scalars(sa.select(Tombstone.recording_id)))
    purge_events = session.execute(
        sa.select(AuditEvent.recording_id, sa.func.count()).where(AuditEvent.action == "purge")
        .group_by(AuditEvent.recording_id)).all()
    events = dict(purge_events)
    keys_on_disk = blobs.keys()
    kept = ids["held"] + ids["active"] + ids.get("in_grace", [])
    for rid in kept:
        row = rows[rid]
        assert row.status == "active", f"{rid} was purged though it must stay"
        assert row.wrapped_key is not None and rid not in tombstones and rid not in events
        assert blobs.exists(row.storage_key), f"kept recording {rid} lost its blob"
    for rid, row in rows.items():
        if row.status != "active":
            assert row.wrapped_key is None and row.key_id is None, f"{rid} is {row.status} but keeps its key"
            assert rid in tombstones and events.get(rid) == 1, f"{rid}: tombstone and exactly one audit event"
        else:
            assert rid not in tombstones and rid not in events
        if row.status == "purged":
            assert not blobs.exists(row.storage_key), f"purged {rid} still has its blob"
    assert all(count == 1 for count in events.values()), "a recording was purged twice"
    active_keys = {row.storage_key for row in rows.values() if row.status == "active"}
    missing = [rid for rid, row in rows.items() if row.status == "active" and row.storage_key not in keys_on_disk]
    assert not missing, f"rows pointing at missing blobs: {missing[:5]}"
    summary = {"purged": sum(r.status == "purged" for r in rows.values()),
               "purging": sum(r.status == "purging" for r in rows.values()),
               "orphans": len(keys_on_disk - active_keys)}
    if complete:
        not_purged = [rid for rid in ids["expired"] if rows[rid].status != "purged"]
        assert not not_purged, f"{len(not_purged)} eligible recordings were not purged"
        assert summary["purging"] == 0
        assert summary["orphans"] == 0, f"{summary['orphans']} orphan blobs remain"
    return summary


# -- bundles ----------------------------------------------------------------------------------------


def request_bundle(client, app, patient_ref):
    """Register a subject-access request and ask for its bundle as this client; returns the export's id."""
    from tests.subject_access_support import build_bundle, register_request

    response = build_bundle(client, app, register_request(client, app, patient_ref))
    assert response.status_code in (302, 503), response.get_data(as_text=True)[:2000]
    with app.app_context():
        from callrec_plugin.models import Export

        export = hostapp.db.session.scalar(sa.select(Export).where(Export.patient_ref == patient_ref)
                                           .order_by(Export.created_at.desc()).limit(1))
        return export.id


def unpack_and_verify(data, tmp_path):
    """Write the ZIP, `unzip -t` it, unpack it, `sha256sum -c SHA256SUMS`. Returns the entry names."""
    import shutil
    import zipfile

    if shutil.which("unzip") is None or shutil.which("sha256sum") is None:
        pytest.skip("unzip and sha256sum are needed to check bundles (apt-get install unzip coreutils)")
    bundle = tmp_path / f"bundle-{secrets.token_hex(3)}.zip"
    bundle.write_bytes(data)
    tested = subprocess.run(["unzip", "-t", str(bundle)], capture_output=True, text=True)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout[-2000:] + tested.stderr
    target = tmp_path / bundle.stem
    target.mkdir()
    unpacked = subprocess.run(["unzip", "-q", str(bundle), "-d", str(target)], capture_output=True, text=True)
    assert unpacked.returncode == 0, unpacked.stderr
    checked = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=target, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    listed = {line.split("  ", 1)[1] for line in (target / "SHA256SUMS").read_text().splitlines()}
    assert listed == set(names) - {"SHA256SUMS"}
    return names


# -- a process started while its Redis is down ----------------------------------------------------------


def free_port():
    """A free port of this test's range (CALLREC_TEST_PORT_RANGE, e.g. "18400-18499"), else any free one."""
    first, _, last = os.environ.get("CALLREC_TEST_PORT_RANGE", "0-0").partition("-")
    for port in range(int(first), int(last or first) + 1) if int(first) else [0]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError("no free port in CALLREC_TEST_PORT_RANGE")


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class LateRedis:
    """A Redis of the test's own on a free port, started only when the test says so."""

    def __init__(self, folder):
        self.port, self.folder, self.process = free_port(), folder, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(["/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL,
                                        cwd=self.folder)
        wait_for(lambda: answers(self.port), timeout=10, message="the test's Redis to start")

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def started_before_redis(command, app_config, queue_name, log, what):
    """Start ``command`` with CALLREC_REDIS_URL naming a LateRedis not yet started, and wait until it has
    tried twice and is still running. Yields (process, the LateRedis). Both are stopped at the end."""
    if not os.path.exists("/usr/bin/redis-server"):
        pytest.skip("needs redis-server to start a Redis of the test's own")
    redis = LateRedis(log.parent)
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, text=True,
                                   env=worker_env(app_config, CALLREC_REDIS_URL=redis.url, CALLREC_QUEUE=queue_name))
    try:
        # Nothing listens on the port yet: the process keeps trying, and says so each time.
        wait_for(lambda: "(try 2" in log.read_text(), timeout=60, message=f"the {what}'s second try")
        assert process.poll() is None, log.read_text()
        yield process, redis
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        redis.stop()
