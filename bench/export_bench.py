"""Export throughput against decrypt throughput, and peak memory, for a small and a large bundle.

    python -m bench.export_bench            # small 8 x 1 MiB, large 24 x 16 MiB
    CALLREC_BENCH_QUICK=1 python -m bench.export_bench

``run()`` returns rows (figure, measured, reference, ratio, bar) for ``python -m bench``.
The bar of DESIGN.md §12: export ZIP build >= 50 % of decrypt throughput; peak memory independent of
the bundle's size (here: the large bundle's peak within 1.5 x the small one's).

Both sides run in one process on the same recordings. "decrypt" reads every recording through
``playback.open_plaintext`` (CRE1 decryption from the page cache). "export" is ``exports.build_export``:
decrypt, SHA-256 of each file (SHA256SUMS), CRC-32 (ZIP), SHA-256 of the whole ZIP, re-encryption as
CRE1, written and fsynced. The storage directory is on tmpfs (/dev/shm) when there is one, so the
figure is the CPU pipeline's and not the disk's (CALLREC_BENCH_DIR overrides it).
Peak memory is tracemalloc's peak of Python allocations during a build.
"""
import datetime as dt
import os
import sys
import tempfile
import time
import tracemalloc

MiB = 1024 * 1024
SIZES = {"small": (8, 1 * MiB), "large": (24, 16 * MiB)}
QUICK_SIZES = {"small": (4, 256 * 1024), "large": (8, 4 * MiB)}


def _app(workdir):
    import sqlalchemy as sa

    from callrec_plugin import migrate
    from callrec_plugin.keyring import generate_key_file
    from tests import hostapp

    url = f"sqlite:///{workdir}/bench.db"
    engine = sa.create_engine(url)
    migrate.upgrade(engine)
    hostapp.db.metadata.create_all(engine)
    engine.dispose()
    key_file = os.path.join(workdir, "keys.txt")
    generate_key_file(key_file)
    app = hostapp.create_app({"SQLALCHEMY_DATABASE_URI": url, "CALLREC_STORAGE_DIR": os.path.join(workdir, "storage"),
                              "CALLREC_KEY_FILE": key_file})
    with app.app_context():
        hostapp.seed_users(hostapp.db.session)
    return app


def _seed(app, patient_ref, count, size):
    import sqlalchemy as sa

    from callrec_plugin.models import Recording, utcnow
    from tests import hostapp
    from tests.jobs_support import Blobs, recording_row

    blobs, rows = Blobs(app), []
    chunk = os.urandom(MiB)
    for n in range(count):
        row = recording_row(utcnow() - dt.timedelta(days=1, minutes=n), patient_ref=patient_ref)
        payload = (chunk * (size // MiB + 1))[:size]
        row.update(blobs.write(row["id"], payload))
        rows.append(row)
    hostapp.db.session.execute(sa.insert(Recording), rows)
    hostapp.db.session.commit()
    return [row["id"] for row in rows]


def _decrypt_seconds(ids):
    from callrec_plugin.models import Recording
    from callrec_plugin.playback import open_plaintext
    from tests import hostapp

    total, started = 0, time.perf_counter()
    for rid in ids:
        with open_plaintext(hostapp.db.session.get(Recording, rid)) as reader:
            for chunk in reader:
                total += len(chunk)
    return time.perf_counter() - started, total


def _build(patient_ref, trace=False):
    from callrec_plugin import exports
    from callrec_plugin.identity import Actor

    dpo = Actor(user=None, ref="dpo", name="Dpo", roles=frozenset({"dpo"}), practice_ref="pA")
    export, _job = exports.request_subject_access(dpo, patient_ref)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    exports.build_export(export.id)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    return seconds, peak


def run(quick=None, sizes=None):
    from bench.timing import Row

    quick = os.environ.get("CALLREC_BENCH_QUICK") == "1" if quick is None else quick
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    rows, peaks = [], {}
    base = os.environ.get("CALLREC_BENCH_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    where = "tmpfs" if base == "/dev/shm" else "disk"
    with tempfile.TemporaryDirectory(prefix="callrec-export-bench-", dir=base) as workdir:
        app = _app(workdir)
        with app.app_context():
            for label, (count, size) in sizes.items():
                patient = {"small": "pat1", "large": "pat2"}[label]
                ids = _seed(app, patient, count, size)
                _decrypt_seconds(ids[:1])  # warm the page cache and the code paths
                best_decrypt = min(_decrypt_seconds(ids)[0] for _ in range(3))
                volume = count * size
                best_build = min(_build(patient)[0] for _ in range(3))
                _, peaks[label] = _build(patient, trace=True)
                decrypt_rate, build_rate = volume / best_decrypt / MiB, volume / best_build / MiB
                ratio = build_rate / decrypt_rate
                rows.append(Row(f"export ZIP build, {label} bundle ({count} calls, {volume // MiB} MiB, {where})",
                                f"{build_rate:,.0f} MiB/s", f"decrypt {decrypt_rate:,.0f} MiB/s", ratio, ">= 0.50",
                                ratio >= 0.5))
    ratio = peaks["large"] / peaks["small"]
    large_mib = sizes["large"][0] * sizes["large"][1] // MiB
    rows.append(Row(f"export peak memory (tracemalloc), large bundle ({large_mib} MiB) vs small",
                    f"{peaks['large'] / 1024:,.0f} KiB", f"{peaks['small'] / 1024:,.0f} KiB", ratio,
                    "flat: <= 1.5", ratio <= 1.5))
    return rows


def main():
    for row in run(quick="--quick" in sys.argv or None):
        print(" | ".join(str(cell) for cell in (row.figure, row.measured, row.reference, f"{row.ratio:.2f}", row.bar,
                                                "ok" if row.ok else "MISSED")))


if __name__ == "__main__":
    main()
