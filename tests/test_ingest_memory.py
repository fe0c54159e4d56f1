"""The ingest API's memory under a real server (gunicorn, one worker process whose RSS is measured).

Eight concurrent unsigned 100 MiB uploads: the worker's resident memory grows by less than 20 MiB,
because a request that fails authentication is answered before a byte of its body is read. One
signed 100 MiB upload: memory stays flat too (the body is hashed and its audio encrypted as it
arrives), within the same 20 MiB of the Python API's peak for the same bytes.
"""
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest.signing import signed_headers
from callrec_plugin.models import AuditEvent, Recording

PORT = 18220
PATH = "/callrec/api/recordings"
SECRET = "memory-test-secret"
MiB = 2**20
UPLOAD = 100 * MiB
BUDGET = 20 * MiB


@pytest.fixture
def app_config(app_config):
    return dict(app_config, CALLREC_API_SECRETS={"pA": SECRET})


def _rss(pid):
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def _reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS


@pytest.fixture
def server(app, app_config):
    """gunicorn serving the test host on its own port, with the test's config; yields the worker's pid."""
    if app_config["SQLALCHEMY_DATABASE_URI"] in ("sqlite://", "sqlite:///:memory:"):
        pytest.skip("the server process needs a database file or server")
    config = {key: value for key, value in app_config.items()}
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread", "--threads", "10",
               "--bind", f"127.0.0.1:{PORT}", "--timeout", "120", "--log-level", "warning",
               f"tests.hostapp:create_app({config!r})"]
    master = subprocess.Popen(command, cwd=os.path.dirname(os.path.dirname(__file__)), start_new_session=False)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or master.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        with open(f"/proc/{master.pid}/task/{master.pid}/children") as children:
            (worker,) = map(int, children.read().split())
        yield worker
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(20)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()


def _wav_header(data_size):
    rate, channels, width = 44100, 2, 2  # 100 MiB of CD audio is ten minutes
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * width, channels * width, width * 8)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + data_size) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_size))


def _upload_parts(audio_size, call_id):
    boundary = "memoryboundary"
    metadata = json.dumps({"call_id": call_id, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                           "direction": "inbound", "from": "07700900001", "to": "201"})
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{metadata}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n").encode()
    head += _wav_header(audio_size - 44)
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, audio_size - 44, tail, f"multipart/form-data; boundary={boundary}"


def _body_chunks(head, zeros, tail):
    yield head
    block = bytes(MiB)
    while zeros:
        take = min(zeros, MiB)
        yield block[:take]
        zeros -= take
    yield tail


def _send(headers, chunks, length):
    """Send one request over a raw socket, stopping as soon as the server answers; (status, answer)."""
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=60)
    try:
        lines = [f"POST {PATH} HTTP/1.1", f"Host: 127.0.0.1:{PORT}", f"Content-Length: {length}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        pending = ("\r\n".join(lines) + "\r\n\r\n").encode()
        chunks = iter(chunks)
        answer = b""
        sock.setblocking(False)
        while True:
            readable, writable, _ = select.select([sock], [sock] if pending is not None else [], [], 60)
            if readable:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:
                    break
                answer += data
                pending = None  # the server has answered: stop sending
                continue
            if writable and pending is not None:
                try:
                    sent = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pending = None
                    continue
                pending = pending[sent:] or next(chunks, None)
            elif not readable:
                raise TimeoutError("no answer from the server")
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
        return status, answer
    finally:
        sock.close()


def _sample_peak(pid, stop, peaks):
    while not stop.is_set():
        peaks.append(_rss(pid)[0])
        time.sleep(0.01)


PYTHON_API_PEAK = """
import datetime as dt, io, sys
from tests import hostapp
from callrec_plugin.ingest import ingest_audio
from tests.test_ingest_memory import _reset_peak, _rss, _wav_header
import os
app = hostapp.create_app(eval(sys.argv[1]))
def ingest(fileobj, call_id):
    return ingest_audio(fileobj, practice_ref="pA", started_at=dt.datetime.now(dt.timezone.utc), direction="inbound",
                        from_number="+447700900001", to_number="201", source="memory", source_ref=call_id)
with app.app_context():
    ingest(io.BytesIO(_wav_header(64 * 1024) + bytes(64 * 1024)), "warm")
    baseline = _rss(os.getpid())[0]
    _reset_peak(os.getpid())
    with open(sys.argv[2], "rb") as audio:
        assert ingest(audio, "python-100-mib").status == "imported"
    print(_rss(os.getpid())[1] - baseline)
"""


def python_api_peak(app_config, tmp_path):
    """The Python API's peak RSS growth for the same 100 MiB of audio, from a file, in a fresh process."""
    path = tmp_path / "call.wav"
    with open(path, "wb") as out:
        out.write(_wav_header(UPLOAD - 44))
        for _ in range(UPLOAD // MiB):
            out.write(bytes(MiB))
    result = subprocess.run([sys.executable, "-c", PYTHON_API_PEAK, repr(dict(app_config)), str(path)],
                            cwd=os.path.dirname(os.path.dirname(__file__)), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    os.unlink(path)
    return int(result.stdout.split()[-1])


def test_unsigned_and_signed_100_mib_uploads_keep_the_server_flat(app, app_config, db_session, server, tmp_path):
    worker = server
    # Warm up: one small signed upload and one refusal, so imports and caches are in the baseline.
    head, zeros, tail, content_type = _upload_parts(64 * 1024, "warm-up")
    small = b"".join(_body_chunks(head, zeros, tail))
    status, answer = _send({**signed_headers(SECRET, "pA", "POST", PATH, small), "Content-Type": content_type},
                           [small], len(small))
    assert status == 201, answer[-300:]
    _send({"X-Callrec-Practice": "pA", "Content-Type": content_type}, [small], len(small))
    time.sleep(0.5)

    baseline = _rss(worker)[0]
    _reset_peak(worker)
    head, zeros, tail, content_type = _upload_parts(UPLOAD, "unsigned")
    length = len(head) + zeros + len(tail)
    forged = {"X-Callrec-Practice": "pA", "X-Callrec-Timestamp": str(int(time.time())),
              "X-Callrec-Nonce": "n" * 24, "X-Callrec-Content-SHA256": "0" * 64,
              "X-Callrec-Signature": "1" * 64, "Content-Type": content_type}
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(_send(forged, _body_chunks(head, zeros, tail),
                                                                     length)[0]))
               for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    unsigned_seconds = time.monotonic() - started
    unsigned_peak = _rss(worker)[1] - baseline
    assert statuses == [401] * 8
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "ingest_api")) == 0

    time.sleep(0.5)
    baseline = _rss(worker)[0]
    _reset_peak(worker)
    head, zeros, tail, content_type = _upload_parts(UPLOAD, "signed-100-mib")
    length = len(head) + zeros + len(tail)
    digest = hashlib.sha256()
    for chunk in _body_chunks(head, zeros, tail):
        digest.update(chunk)
    headers = signed_headers(SECRET, "pA", "POST", PATH, None, body_sha256_hex=digest.hexdigest(),
                             content_length=length)
    started = time.monotonic()
    status, answer = _send({**headers, "Content-Type": content_type}, _body_chunks(head, zeros, tail), length)
    signed_seconds = time.monotonic() - started
    signed_peak = _rss(worker)[1] - baseline
    assert status == 201, answer[-300:]
    recording = db_session.scalar(sa.select(Recording).where(Recording.source_ref == "signed-100-mib"))
    assert recording.plaintext_size == UPLOAD

    python_peak = python_api_peak(app_config, tmp_path)
    print(f"\n8 unsigned 100 MiB uploads: answered 401 in {unsigned_seconds:.1f} s, worker RSS +"
          f"{unsigned_peak / MiB:.1f} MiB at peak; signed 100 MiB upload: {signed_seconds:.1f} s, "
          f"worker RSS +{signed_peak / MiB:.1f} MiB at peak; the Python API, same audio from a file: "
          f"+{python_peak / MiB:.1f} MiB")
    assert unsigned_peak < BUDGET, f"8 unsigned uploads grew the server by {unsigned_peak / MiB:.1f} MiB"
    assert signed_peak < BUDGET, f"a signed 100 MiB upload grew the server by {signed_peak / MiB:.1f} MiB"
    # "The same flat memory as the Python API": the HTTP path adds only its chunk buffers.
    assert signed_peak < python_peak + 8 * MiB
