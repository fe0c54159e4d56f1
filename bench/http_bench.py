"""Playback over real HTTP: gunicorn (gthread) serving the demo host on 127.0.0.1, started by this run, and a
bounded Python client in this process (http.client, keep-alive, one connection per thread).

Rows (every body the client times is read to its last byte):
- whole file: callrec's decrypting stream against gunicorn's own ``send_file`` of the same plaintext (sendfile),
  one download at a time and 8 at once; beside them the floor rows that limit the figure: the seekable
  ``send_file`` (read + write, no sendfile: the copy callrec cannot avoid) and AES-GCM decryption, and the one-core
  combination of both.
- 64 KiB Range at random offsets: callrec against the seekable reference (same server, same login), p50; the
  sendfile reference beside it (it reads and discards up to the offset: gunicorn's file wrapper cannot seek).
- 20 players seeking at random (256 KiB ranges) while ``purge`` deletes 10⁴ expired recordings in another
  process, against the same load without it: p50/p95/p99 time to first byte and the count of 5xx answers.

    python -m bench.http_bench          # CALLREC_BENCH_QUICK=1 for a smoke run
CALLREC_BENCH_DATABASE_URL selects the database (default: as bench/purge_bench.py, PostgreSQL).
"""
import contextlib
import http.client
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlencode

MiB = 2**20
RANGE = 64 * 1024
PLAYER_RANGE = 256 * 1024
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_AGENT = "callrec-bench/1"  # one agent throughout: the demo's session protection is "strong"


# -- the server --------------------------------------------------------------------------------------------


KEEP_ALIVE_SECONDS = 5  # gunicorn's --keep-alive: how long it keeps an idle connection open


def _free_port():
    preferred = os.environ.get("CALLREC_BENCH_HTTP_PORT")
    if preferred:
        return int(preferred)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(state, database_url, workers=2, threads=8):
    """gunicorn serving bench.http_app on 127.0.0.1 (as docs/deploy.md configures it); stopped afterwards."""
    port = _free_port()
    env = dict(os.environ, CALLREC_BENCH_STATE=state, CALLREC_BENCH_DB=database_url,
               PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = open(os.path.join(state, "gunicorn.log"), "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", str(workers),
         "--threads", str(threads), "--timeout", "60", "--keep-alive", str(KEEP_ALIVE_SECONDS),
         "--bind", f"127.0.0.1:{port}",
         "bench.http_app:create()"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start: see {log.name}")
                time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# -- the client --------------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection with the signed-in session's cookie."""

    def __init__(self, port, cookie=None):
        self.port, self.cookie = port, cookie
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.buffer = bytearray(MiB)
        self.last_used = time.monotonic()

    def request(self, method, path, body=None, headers=None):
        headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if self.cookie:
            headers["Cookie"] = self.cookie
        idle = time.monotonic() - self.last_used
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # gunicorn closes a connection idle for its keep-alive: a GET on it is sent again on a new one,
            # as every HTTP client does. Only then: a connection dropped mid-use is a failure the load test counts.
            if method != "GET" or idle < KEEP_ALIVE_SECONDS - 0.5:
                raise
            self.connection.close()
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        self.last_used = time.monotonic()
        return response

    def get(self, path, headers=None):
        """(status, body length, seconds to the first body byte, seconds in all): the body is read to its end."""
        started = time.perf_counter()
        response = self.request("GET", path, headers=headers)
        view = memoryview(self.buffer)
        first = response.readinto(view[:1])
        ttfb = time.perf_counter() - started
        total = first
        while n := response.readinto(view):
            total += n
        return response.status, total, ttfb, time.perf_counter() - started

    def sign_in(self, username):
        response = self.request("GET", "/login")
        page = response.read().decode()
        cookie = re.search(r"session=([^;]+)", response.getheader("Set-Cookie", "")).group(1)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        self.cookie = f"session={cookie}"
        response = self.request("POST", "/login", body=urlencode(
            {"username": username, "password": "demo", "csrf_token": token}),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        response.read()
        assert response.status == 302, f"sign-in over HTTP failed: {response.status}"
        self.cookie = "session=" + re.search(r"session=([^;]+)", response.getheader("Set-Cookie")).group(1)
        return self.cookie

    def close(self):
        self.connection.close()


# -- the installation --------------------------------------------------------------------------------------


def _prepare(state, database_url, size, expired):
    """Demo host, one recording of ``size`` bytes granted to the owner, its plaintext beside it, ``expired``
    recordings past retention (real CRE1 blobs) for the purge."""
    import datetime as dt

    import sqlalchemy as sa

    from bench.audio_files import write_wav
    from bench.demoapp import _dispose, ingest, make_demo_app, staff
    from callrec_plugin.identity import actor_for
    from callrec_plugin.models import Recording, utcnow
    from callrec_plugin.playback import issue_grant
    from examples.practice_host.models import db
    from tests.jobs_support import Blobs, recording_row

    app, _ = make_demo_app(state, database_url)
    plain = write_wav(os.path.join(state, "plain.wav"), size)
    with open(plain, "rb") as source:
        recording_id = ingest(app, source.read(), "bench-http")
    with app.test_request_context():
        recording = db.session.get(Recording, recording_id)
        issue_grant(actor_for(staff(app, "owner")), recording, "play", "compliance", None, None, None)
        db.session.commit()
        blobs, rows, now = Blobs(app), [], utcnow()
        for n in range(expired):
            row = recording_row(now - dt.timedelta(days=200, seconds=n), practice_ref="p1", id=f"x{n:012d}")
            row.update(blobs.write(row["id"], b"x" * 200))
            rows.append(row)
        for start in range(0, len(rows), 1000):
            db.session.execute(sa.insert(Recording), rows[start:start + 1000])
        db.session.commit()
    _dispose(app)
    return recording_id


# -- measurements ------------------------------------------------------------------------------------------


def _alternating(first, second, repeat, rounds=3):
    """Median seconds of each, alternating A,B so the machine's noise hits both alike."""
    a, b = [], []
    for _ in range(rounds):
        for _ in range(repeat):
            a.append(first())
            b.append(second())
    return statistics.median(a), statistics.median(b)


def _interleaved(functions, repeat, rounds=3):
    """Median seconds of each function, called in turn (A,B,C,A,B,C…) so the machine's noise hits all alike."""
    samples = [[] for _ in functions]
    for _ in range(rounds * repeat):
        for function, taken in zip(functions, samples):
            taken.append(function())
    return [statistics.median(taken) for taken in samples]


def _download(client, path, size):
    def run():
        status, length, _, seconds = client.get(path)
        assert status == 200 and length == size, (path, status, length)
        return seconds
    return run


def _concurrent(port, cookie, path, size, count=8):
    """Seconds for ``count`` simultaneous whole-file downloads, each on its own connection."""
    clients = [Client(port, cookie) for _ in range(count)]
    barrier = threading.Barrier(count + 1)
    failures = []

    def one(client):
        barrier.wait()
        status, length, _, _ = client.get(path)
        if status != 200 or length != size:
            failures.append((status, length))

    def run():
        threads = [threading.Thread(target=one, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        barrier.reset()
        assert not failures, failures
        return seconds

    return run, clients


def _ranges(client, path, offsets):
    offsets = iter(offsets)

    def run():
        start = next(offsets)
        status, length, _, seconds = client.get(path, {"Range": f"bytes={start}-{start + RANGE - 1}"})
        assert status == 206 and length == RANGE, (path, status, length)
        return seconds
    return run


def _players(port, cookie, path, size, count, requests_each, until=None, max_seconds=120):
    """``count`` players, each seeking at random: (ttfb seconds, statuses). Each player makes at least
    ``requests_each`` requests, and goes on while ``until()`` is False (bounded by ``max_seconds``)."""
    ttfbs, statuses, lock = [], [], threading.Lock()
    deadline = time.monotonic() + max_seconds

    def player(seed):
        rng, client = random.Random(seed), Client(port, cookie)
        done = 0
        try:
            while time.monotonic() < deadline and (done < requests_each or (until is not None and not until())):
                start = rng.randrange(0, size - PLAYER_RANGE)
                try:
                    status, _, ttfb, _ = client.get(path, {"Range": f"bytes={start}-{start + PLAYER_RANGE - 1}"})
                except (OSError, http.client.HTTPException):
                    status, ttfb = 599, None  # a dropped connection counts as a server error
                    client.close()
                    client = Client(port, cookie)
                with lock:
                    statuses.append(status)
                    if ttfb is not None and (until is None or not until()):
                        ttfbs.append(ttfb)
                done += 1
        finally:
            client.close()

    threads = [threading.Thread(target=player, args=(seed,)) for seed in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ttfbs, statuses


class CpuMeter:
    """CPU use over an interval, from /proc: the share of the machine's cores busy (every process, other
    sessions' too), and the cores PostgreSQL's server processes used (all of them: the players' queries and
    the purge's). Server processes are sampled twice a second, so one that exits (the purge's connection)
    still counts up to its last sample."""

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self):
        self.started = time.monotonic()
        self._machine = self._machine_ticks()
        self._first, self._last = {}, {}
        self._sample()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self.busy = self.postgres = float("nan")

    def _run(self):
        while not self._stopping.wait(0.5):
            self._sample()

    def _sample(self):
        for pid, ticks in self._postgres_ticks().items():
            self._first.setdefault(pid, ticks)
            self._last[pid] = ticks

    def stop(self):
        self._stopping.set()
        self._thread.join()
        self._sample()
        seconds = time.monotonic() - self.started
        busy, total = self._machine_ticks()
        self.busy = (busy - self._machine[0]) / max(1, total - self._machine[1])
        used = sum(self._last[pid] - self._first[pid] for pid in self._last)
        self.postgres = used / self.TICK / seconds

    @staticmethod
    def _machine_ticks():
        try:
            with open("/proc/stat") as f:
                values = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return 0, 1
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return sum(values) - idle, sum(values)

    @staticmethod
    def _postgres_ticks():
        """{pid: utime + stime ticks} of every PostgreSQL server process."""
        ticks = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name, _, rest = stat.partition(")")
            if name.endswith("(postgres"):
                fields = rest.split()
                ticks[pid] = int(fields[11]) + int(fields[12])
        return ticks


def _child_cpu_seconds():
    """User + system CPU seconds of the children reaped so far (the purge process is the last one)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime - _child_cpu_seconds.before


_child_cpu_seconds.before = 0.0


def _percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _decrypt_rate(state, database_url, recording_id):
    """AES-GCM decryption of the same recording through callrec's reader (MiB/s), in this process."""
    from bench.demoapp import _dispose, demo_config
    from callrec_plugin.models import Recording
    from callrec_plugin.playback import open_plaintext
    from examples.practice_host import create_app
    from examples.practice_host.models import db

    app = create_app(demo_config(state, database_url))
    with app.app_context():
        recording = db.session.get(Recording, recording_id)
        best = 0.0
        for _ in range(5):
            started = time.perf_counter()
            with open_plaintext(recording) as reader:
                total = sum(len(chunk) for chunk in reader)
            best = max(best, total / (time.perf_counter() - started) / MiB)
    _dispose(app)
    return best


# -- the rows ----------------------------------------------------------------------------------------------


def run(quick=None, size=None, expired=None):
    from bench.demoapp import scratch_base
    from bench.purge_bench import database_url as default_database_url
    from bench.timing import Row

    quick = os.environ.get("CALLREC_BENCH_QUICK") == "1" if quick is None else quick
    size = size or (8 * MiB if quick else 32 * MiB)
    expired = expired if expired is not None else (2_000 if quick else 10_000)
    repeat = 3 if quick else 7
    database_url = os.environ.get("CALLREC_BENCH_DATABASE_URL") or default_database_url()
    state = tempfile.mkdtemp(prefix="callrec-http-bench-", dir=scratch_base())
    try:
        recording_id = _prepare(state, database_url, size, expired)
        decrypt = _decrypt_rate(state, database_url, recording_id)
        with gunicorn(state, database_url) as (port, _pid):
            return _measure(port, state, database_url, recording_id, size, expired, repeat, decrypt, Row, quick)
    finally:
        import shutil

        shutil.rmtree(state, ignore_errors=True)


def _measure(port, state, database_url, recording_id, size, expired, repeat, decrypt, Row, quick):
    from bench import floors

    audio = f"/callrec/recordings/{recording_id}/audio"
    client = Client(port)
    cookie = client.sign_in("owner")
    mib = size / MiB
    rows = []

    # Whole file, one at a time.
    for path in (audio, "/bench/plain"):
        _download(client, path, size)()  # warm: page cache, code paths, connections
    ours, sendfile = _alternating(_download(client, audio, size), _download(client, "/bench/plain", size), repeat)
    ratio = sendfile / ours
    rows.append(Row(f"HTTP whole file ({mib:.0f} MiB), gunicorn gthread, loopback", f"{mib / ours:,.0f} MiB/s",
                    f"gunicorn send_file (sendfile) {mib / sendfile:,.0f} MiB/s", ratio, "≥ 0.95", ratio >= 0.95))
    for chunk in (65536, 1024 * 1024):
        copy_path = f"/bench/plain-copy?chunk={chunk}"
        _download(client, copy_path, size)()
        _, copy = _alternating(_download(client, audio, size), _download(client, copy_path, size), 2, 2)
        rows.append(Row(f"  (floor) plaintext read + written in {chunk // 1024} KiB chunks, no sendfile, no decryption",
                        f"{mib / copy:,.0f} MiB/s", f"sendfile {mib / sendfile:,.0f} MiB/s", sendfile / copy,
                        "(context)", True))
        if chunk == 65536:
            floor = floors.one_core(decrypt, mib / copy)
            rows.append(Row(f"  (floor) one core: AES-GCM decrypt {decrypt:,.0f} MiB/s + that 64 KiB copy",
                            f"{floor:,.0f} MiB/s", f"callrec {mib / ours:,.0f} MiB/s", (mib / ours) / floor,
                            "callrec / floor", True))

    # Whole file, 8 at once.
    ours_run, ours_clients = _concurrent(port, cookie, audio, size)
    plain_run, plain_clients = _concurrent(port, cookie, "/bench/plain", size)
    copy_run, copy_clients = _concurrent(port, cookie, "/bench/plain-copy", size)
    ours_run(), plain_run(), copy_run()
    ours8, plain8 = _alternating(ours_run, plain_run, max(2, repeat // 2))
    _, copy8 = _alternating(ours_run, copy_run, 2, 2)
    for c in ours_clients + plain_clients + copy_clients:
        c.close()
    ratio = plain8 / ours8
    rows.append(Row("HTTP whole file, 8 concurrent downloads", f"{8 * mib / ours8:,.0f} MiB/s",
                    f"send_file (sendfile) {8 * mib / plain8:,.0f} MiB/s", ratio, "≥ 0.9", ratio >= 0.9))
    rows.append(Row("  (floor) 8 concurrent, plaintext read + written in 64 KiB chunks (no sendfile, no decryption)",
                    f"{8 * mib / copy8:,.0f} MiB/s", f"sendfile {8 * mib / plain8:,.0f} MiB/s", plain8 / copy8,
                    "(context)", True))
    # Decryption cannot be avoided: at best it is spread over every core (gunicorn runs one worker per core),
    # on top of the concurrent chunked copy just measured.
    cores = os.cpu_count() or 1
    floor8 = floors.one_core(decrypt * cores, 8 * mib / copy8)
    rows.append(Row(f"  (floor) {cores} cores: AES-GCM decrypt {decrypt:,.0f} MiB/s per core + that concurrent copy",
                    f"{floor8:,.0f} MiB/s", f"callrec {8 * mib / ours8:,.0f} MiB/s", (8 * mib / ours8) / floor8,
                    "callrec / floor", True))
    rows.append(Row("  (floor) the most the bar allows against sendfile: that floor / sendfile",
                    f"{floor8 / (8 * mib / plain8):.2f}", "bar 0.9", floor8 / (8 * mib / plain8), "(context)", True))

    # 64 KiB Range at random offsets.
    rng = random.Random(16)
    count = 40 if quick else 100
    offsets = [rng.randrange(0, size - RANGE) for _ in range(count * 3 * 2)]
    decided = f"/bench/decided/{recording_id}"
    # callrec, the seekable reference and the decision-only floor in turn, request by request: one noisy
    # moment of the machine touches all three alike.
    ours, seekable_range, decided_range = _interleaved(
        [_ranges(client, audio, offsets), _ranges(client, "/bench/plain-seekable", list(offsets)),
         _ranges(client, decided, list(offsets))], count)
    _, sendfile_range = _alternating(_ranges(client, audio, offsets[:count * 2]),
                                     _ranges(client, "/bench/plain", offsets[:count * 2]), count // 2, 2)
    ratio = ours / seekable_range
    rows.append(Row("HTTP 64 KiB Range, random offsets, p50 (same server and login)", f"{ours * 1000:.2f} ms",
                    f"seekable send_file {seekable_range * 1000:.2f} ms", ratio, "≤ 1.2", ratio <= 1.2))
    rows.append(Row("  (floor) seekable send_file after callrec's per-request decision (actor, grant statement), "
                    "no crypto", f"{decided_range * 1000:.2f} ms", f"seekable send_file {seekable_range * 1000:.2f} ms",
                    decided_range / seekable_range, "(context)", True))
    rows.append(Row("  (context) gunicorn send_file Range (its file wrapper cannot seek: reads up to the offset)",
                    f"{sendfile_range * 1000:.2f} ms", f"callrec {ours * 1000:.2f} ms", sendfile_range / ours,
                    "(context)", True))
    client.close()

    # 20 players seeking while a purge runs, against the same load without it.
    _players(port, cookie, audio, size, 20, 3)  # warm: 20 connections, every server thread
    calm_seconds = 8 if quick else 20
    calm_end = time.monotonic() + calm_seconds
    calm_cpu = CpuMeter()
    calm, calm_statuses = _players(port, cookie, audio, size, 20, 1, until=lambda: time.monotonic() > calm_end)
    calm_cpu.stop()
    purge_log = open(os.path.join(state, "purge.log"), "w")
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    _child_cpu_seconds.before = usage.ru_utime + usage.ru_stime
    # The purge runs as a worker beside web servers on one host should (docs/deploy.md): at nice 19.
    purge = subprocess.Popen([sys.executable, "-m", "bench.http_purge", state, database_url], cwd=REPO_ROOT,
                             env=dict(os.environ, PYTHONPATH=REPO_ROOT), stdout=purge_log, stderr=subprocess.STDOUT,
                             preexec_fn=lambda: os.nice(19))
    started = time.monotonic()
    busy_cpu = CpuMeter()
    busy, busy_statuses = _players(port, cookie, audio, size, 20, 2, until=lambda: purge.poll() is not None,
                                   max_seconds=120 if quick else 180)
    busy_cpu.stop()
    purge.wait(900)
    purge_seconds = time.monotonic() - started
    purge_cpu = _child_cpu_seconds()
    purge_log.close()
    with open(purge_log.name) as f:
        purged = f.read().strip().splitlines()[-1:] or ["?"]
    errors = sum(1 for status in calm_statuses + busy_statuses if status >= 500)
    for label, values in (("without purge", calm), (f"during purge of {expired:,}", busy)):
        rows.append(Row(f"20 players seeking, TTFB {label} ({len(values)} requests)",
                        f"p50 {_percentile(values, .5) * 1000:.1f} / p95 {_percentile(values, .95) * 1000:.1f} / "
                        f"p99 {_percentile(values, .99) * 1000:.1f} ms", "", float("nan"), "(figures)", True))
    ratio = _percentile(busy, .95) / _percentile(calm, .95)
    rows.append(Row(f"20 players: p95 TTFB during the purge / without (purge took {purge_seconds:.1f} s, "
                    f"purged {purged[0]})", f"{_percentile(busy, .95) * 1000:.1f} ms",
                    f"{_percentile(calm, .95) * 1000:.1f} ms", ratio, "≤ 1.2", ratio <= 1.2))
    cores = os.cpu_count() or 1
    rows.append(Row(f"  (floor) CPU the purge process took from {cores} cores while it ran (PostgreSQL's share not counted)",
                    f"{purge_cpu / purge_seconds:.2f} cores", f"{purge_seconds:.1f} s", purge_cpu / purge_seconds / cores,
                    "(context)", True))
    rows.append(Row("  (floor) PostgreSQL's processes, cores used: during the purge / without it",
                    f"{busy_cpu.postgres:.2f} cores", f"{calm_cpu.postgres:.2f} cores",
                    busy_cpu.postgres / max(calm_cpu.postgres, 1e-9), "(context)", True))
    rows.append(Row(f"  (floor) the machine's {cores} cores busy (every process): during the purge / without it",
                    f"{busy_cpu.busy:.0%}", f"{calm_cpu.busy:.0%}", busy_cpu.busy / max(calm_cpu.busy, 1e-9),
                    "(context)", True))
    rows.append(Row("20 players: 5xx answers (and dropped connections)", str(errors),
                    f"of {len(calm_statuses) + len(busy_statuses)} requests", float(errors), "= 0", errors == 0))
    return rows


def main():
    for row in run():
        print(" | ".join(str(cell) for cell in (row.figure, row.measured, row.reference, f"{row.ratio:.2f}",
                                                row.bar, "ok" if row.ok else "MISSED")))


if __name__ == "__main__":
    main()
