"""Playback figures: whole-file streaming against AES-GCM and send_file, and 64 KiB Range requests."""
import math
import os
import random
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import send_file
from flask_login import login_required
from werkzeug.test import EnvironBuilder

from bench.audio_files import write_wav
from bench.demoapp import add_decision_only_route, demo_app, ingest, signed_in_client, staff
from bench.timing import Row, mib_per_s, side_by_side
from callrec_plugin import crypto


def _aes_reference(blob, data_key, recording_id):
    """Decrypt every segment of the blob with AES-GCM directly: the cipher's own throughput."""
    header = blob[:crypto.HEADER_SIZE]
    _, _, segment_size, salt, prefix = struct.unpack(">4sBI32s7s", header)
    aead = AESGCM(crypto.derive_file_key(data_key, salt, recording_id))
    step = segment_size + crypto.TAG_SIZE
    body = memoryview(blob)[crypto.HEADER_SIZE:]
    count = math.ceil(len(body) / step)

    def run():
        for index in range(count):
            nonce = prefix + struct.pack(">IB", index, 1 if index == count - 1 else 0)
            aead.decrypt(nonce, body[index * step:(index + 1) * step], header)

    return run


def _setup(app, state, size):
    plain = write_wav(os.path.join(state, "plain.wav"), size)
    with open(plain, "rb") as source:
        recording_id = ingest(app, source.read(), "bench-playback")

    @app.route("/bench/plain")
    @login_required  # a fair reference: no host serves patient audio without a signed-in user
    def plain_file():
        return send_file(plain, mimetype="audio/wav", conditional=True)

    add_decision_only_route(app, plain)

    owner = staff(app, "owner")
    client = signed_in_client(app, "owner")
    from callrec_plugin.identity import actor_for
    from callrec_plugin.models import Recording
    from callrec_plugin.playback import issue_grant, keyring
    from examples.practice_host.models import db

    with app.test_request_context():
        recording = db.session.get(Recording, recording_id)
        issue_grant(actor_for(owner), recording, "play", "compliance", None, None, None)
        db.session.commit()
        data_key = keyring().unwrap(recording.wrapped_key, recording.key_id, recording.id)
        blob_path = os.path.join(app.config["CALLREC_STORAGE_DIR"], recording.storage_key)
    with open(blob_path, "rb") as source:
        blob = source.read()
    return app, client, recording_id, data_key, blob, size


def _wsgi_iteration(app, client, url, size):
    cookie = client.get_cookie("session").value
    base = dict(client.environ_base)  # the same address and user agent: the session is "strong"

    def run():
        environ = EnvironBuilder(path=url, headers={"Cookie": f"session={cookie}"}, environ_base=base).get_environ()
        statuses = []
        body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        total = sum(len(chunk) for chunk in body)
        getattr(body, "close", lambda: None)()
        assert statuses == ["200 OK"] and total == size, (statuses, total)

    return run


def _count_segments(app, client, url, headers):
    readers = []
    original = crypto.DecryptingReader.__init__

    def counting(self, *args, **kwargs):
        original(self, *args, **kwargs)
        readers.append(self)

    crypto.DecryptingReader.__init__ = counting
    try:
        response = client.get(url, headers=headers)
        response.get_data()  # decryption happens while the body is read: count after reading it all
        response.close()
    finally:
        crypto.DecryptingReader.__init__ = original
    return readers[0].segments_decrypted


def _range_crypto_seconds(app, recording_id, offsets):
    """Median seconds of the cryptography one 64 KiB Range needs, outside any request: unwrap the data key,
    derive the file key, verify the final segment, decrypt the (at most) two segments the range touches."""
    import statistics
    import time

    from callrec_plugin.models import Recording
    from callrec_plugin.playback import open_plaintext
    from examples.practice_host.models import db

    times = []
    with app.app_context():
        recording = db.session.get(Recording, recording_id)
        for offset in offsets * 3:
            started = time.perf_counter()
            with open_plaintext(recording) as reader:
                assert reader.length > offset
                reader.seek(offset)
                reader.read(65536)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(size=32 * 2**20, range_requests=40):
    with demo_app() as (app, state):
        return _run(app, state, size, range_requests)


def _run(app, state, size, range_requests):
    app, client, recording_id, data_key, blob, size = _setup(app, state, size)
    url = f"/callrec/recordings/{recording_id}/audio"
    ours, aes = side_by_side(_wsgi_iteration(app, client, url, size), _aes_reference(blob, data_key, recording_id), 3)
    rows = [Row("playback, whole file, WSGI iteration", mib_per_s(size, ours), f"AES-GCM {mib_per_s(size, aes)}",
                aes / ours, "≥ 0.50", aes / ours >= 0.5)]

    def through_client(path):
        def request():
            response = client.get(path)
            assert response.status_code == 200 and len(response.get_data()) == size
            response.close()
        return request

    ours, plain = side_by_side(through_client(url), through_client("/bench/plain"), 3)
    rows.append(Row("playback, whole file, test client", mib_per_s(size, ours), f"send_file {mib_per_s(size, plain)}",
                    plain / ours, "≥ 0.85", plain / ours >= 0.85))

    rng = random.Random(12)
    offsets = [rng.randrange(0, size - 65536) for _ in range(range_requests)]
    ranges = iter(offsets * 100)

    def ranged(path):
        def request():
            start = next(ranges)
            response = client.get(path, headers={"Range": f"bytes={start}-{start + 65535}"})
            assert response.status_code == 206 and len(response.get_data()) == 65536
            response.close()
        return request

    ours, plain = side_by_side(ranged(url), ranged("/bench/plain"), range_requests)
    rows.append(Row("64 KiB Range at random offsets", f"{ours * 1000:.2f} ms", f"send_file {plain * 1000:.2f} ms",
                    ours / plain, "≤ 1.5", ours / plain <= 1.5))
    crypto_seconds = _range_crypto_seconds(app, recording_id, offsets)
    floor = (plain + crypto_seconds) / plain
    rows.append(Row("  (floor) per-Range crypto alone: key unwrap, HKDF, final segment, 2 segments",
                    f"{crypto_seconds * 1000:.2f} ms", f"send_file {plain * 1000:.2f} ms", floor,
                    "send_file + this, / send_file", True))
    decided, plain_again = side_by_side(ranged(f"/bench/decided/{recording_id}"), ranged("/bench/plain"),
                                        range_requests)
    decided_floor = decided / plain_again + crypto_seconds / plain
    rows.append(Row("  (floor) send_file after callrec's per-request decision (actor, grant statement), "
                    "+ that crypto", f"{decided * 1000:.2f} ms + {crypto_seconds * 1000:.2f} ms",
                    f"send_file {plain_again * 1000:.2f} ms", decided_floor,
                    "(the decision every Range must make, and its crypto)", True))
    worst = max(_count_segments(app, client, url, {"Range": f"bytes={o}-{o + 65535}"}) for o in offsets[:10])
    rows.append(Row("segments decrypted per 64 KiB Range", str(worst), "ceil(64 KiB/64 KiB) + 2 = 3",
                    worst / 3, "≤ 1.0", worst <= 3))
    return rows
