"""Export throughput against decrypt throughput, and peak memory, for a small and a large bundle.

    python -m bench.export_bench            # small 8 x 1 MiB, large 24 x 16 MiB
    CALLREC_BENCH_QUICK=1 python -m bench.export_bench

``run()`` returns rows (figure, measured, reference, ratio, bar) for ``python -m bench``.
The bar of DESIGN.md §12: export ZIP build >= 0.9 x the one-core floor (decrypt, SHA-256 once, CRC-32, copy,
AES-GCM, write, as DESIGN.md defines it; the build itself makes both digests on a second thread, so its own
thread has no SHA-256 at all); peak memory independent of the bundle's
size (here: the large bundle's peak within 1.5 x the small one's).

Both sides run in one process on the same recordings, measured the same way for both bundle sizes (best of
three rates, each over repeated runs lasting at least 0.3 s). "decrypt" reads every recording (its row already
loaded, as the build's plan has it) through ``playback.open_plaintext`` (CRE1 decryption from the page cache). "export" is ``exports.build_export``:
decrypt, CRC-32 (ZIP), re-encryption as CRE1, written and fsynced; the SHA-256 of each file (SHA256SUMS) and of
the whole ZIP on a second thread (callrec_plugin/digests.py). The storage directory is on tmpfs (/dev/shm) when there is one, so the
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
        # A patient with no calls: a build of their bundle is the fixed cost of any bundle.
        hostapp.db.session.add(hostapp.Patient(id="pat-none", name="No Calls", practice="pA", phone="+447700900099"))
        hostapp.db.session.commit()
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


def _recordings(ids):
    from callrec_plugin.models import Recording
    from tests import hostapp

    return [hostapp.db.session.get(Recording, rid) for rid in ids]


def _decrypt_pass(recordings):
    from callrec_plugin.playback import open_plaintext

    total = 0
    for recording in recordings:
        with open_plaintext(recording) as reader:
            for chunk in reader:
                total += len(chunk)
    return total


def _best_rate(function, volume, min_seconds=0.3, rounds=3):
    """Best of ``rounds`` rates (bytes/s), each over as many calls as take ``min_seconds`` (at least one): the
    same procedure for a 40 ms build and a 400 ms one, so neither is a single noisy sample."""
    rates = []
    for _ in range(rounds):
        calls, elapsed = 0, 0.0
        while calls == 0 or elapsed < min_seconds:
            elapsed += function()
            calls += 1
        rates.append(volume * calls / elapsed)
    return max(rates)


def _build(patient_ref, trace=False):
    """Seconds (and tracemalloc peak) of one exports.build_export; the bundle's blob is deleted afterwards,
    untimed, so tmpfs does not fill up with bundles (see bench.timing.side_by_side)."""
    from callrec_plugin import exports
    from callrec_plugin.identity import Actor
    from callrec_plugin.models import Export
    from callrec_plugin.playback import storage_backend
    from tests import hostapp

    dpo = Actor(user=None, ref="dpo", name="Dpo", roles=frozenset({"dpo"}), practice_ref="pA")
    from tests.subject_access_support import registered

    entry = registered(hostapp.db.session, patient_ref)
    export_id = exports.request_subject_access(dpo, entry)[0].id
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    exports.build_export(export_id)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    storage_backend().delete(hostapp.db.session.get(Export, export_id).storage_key)
    return seconds, peak


def _per_byte_rates(directory):
    """MiB/s of each per-byte step of a build other than decryption, measured in this run."""
    from bench import floors

    return {"SHA-256": floors.sha256() / MiB, "CRC-32": floors.crc32() / MiB, "copy": floors.copy() / MiB,
            "AES-GCM": floors.aes_gcm_encrypt() / MiB, "write": floors.write(directory) / MiB}


def _floor(decrypt_rate, steps):
    """What one core doing every per-byte step of a build in turn can reach: decrypt, SHA-256 once, CRC-32,
    copy, AES-GCM, write (DESIGN.md §12's reference; the build hashes on a second thread)."""
    from bench import floors

    return floors.one_core(decrypt_rate, *steps.values())


def _floor_row(decrypt_rate, steps):
    from bench.timing import Row

    floor = _floor(decrypt_rate, steps)
    parts = ", ".join(f"{name} {rate:,.0f}" for name, rate in steps.items())
    return Row(f"  (floor) export, one core: decrypt {decrypt_rate:,.0f}, {parts} MiB/s (SHA-256 once)",
               f"{floor:,.0f} MiB/s", f"decrypt {decrypt_rate:,.0f} MiB/s", floor / decrypt_rate,
               "(the most one core can do)", True)


def _fixed_cost_row(volume, floor, label):
    """What a bundle costs whatever its size (plan, audit extract, cover note, manifest, commits, the
    audit event, the key, fsync), measured as the build of a patient with no calls; and the best ratio
    a bundle of ``volume`` bytes can reach against the per-byte floor once it is paid."""
    from bench.timing import Row

    fixed = min(_build("pat-none")[0] for _ in range(5))
    best = volume / (volume / (floor * MiB) + fixed) / MiB
    return Row(f"  (floor) fixed cost of any bundle (a patient with no calls), and the best the {label} "
               f"bundle can reach with it", f"{fixed * 1000:.1f} ms; {best:,.0f} MiB/s",
               f"floor {floor:,.0f} MiB/s", best / floor, "(context: best ratio possible)", True)


def run(quick=None, sizes=None):
    from bench.timing import Row

    quick = os.environ.get("CALLREC_BENCH_QUICK") == "1" if quick is None else quick
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    rows, peaks, steps = [], {}, None
    from bench.demoapp import scratch_base, where as kind_of

    with tempfile.TemporaryDirectory(prefix="callrec-export-bench-", dir=scratch_base()) as workdir:
        where = kind_of(workdir)
        app = _app(workdir)
        with app.app_context():
            for label, (count, size) in sizes.items():
                patient = {"small": "pat1", "large": "pat2"}[label]
                recordings = _recordings(_seed(app, patient, count, size))
                volume = count * size
                assert _decrypt_pass(recordings) == volume  # warms the page cache and the code paths

                def decrypt():
                    started = time.perf_counter()
                    _decrypt_pass(recordings)
                    return time.perf_counter() - started

                decrypt_rate = _best_rate(decrypt, volume) / MiB  # before any build: a build detaches the rows
                _build(patient)  # warm
                build_rate = _best_rate(lambda: _build(patient)[0], volume) / MiB
                _, peaks[label] = _build(patient, trace=True)
                steps = steps or _per_byte_rates(app.config["CALLREC_STORAGE_DIR"])
                floor = _floor(decrypt_rate, steps)
                ratio = build_rate / floor
                rows.append(Row(f"export ZIP build / one-core floor, {label} bundle ({count} calls, "
                                f"{volume // MiB} MiB, {where})", f"{build_rate:,.0f} MiB/s",
                                f"floor {floor:,.0f} MiB/s", ratio, ">= 0.90", ratio >= 0.9))
                rows.append(_floor_row(decrypt_rate, steps))
                rows.append(_fixed_cost_row(volume, floor, label))
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
