"""python -m bench: print DESIGN.md §12's figures as a table of ratios to references measured in the same run.

CALLREC_BENCH_QUICK=1 uses small sizes (a smoke run). CALLREC_BENCH_DATABASE_URL selects the database of
the purge and panel figures; without it the purge runs on the local PostgreSQL `test` database (in a schema
of its own) and the panel on SQLite, the demo's database.
"""
import importlib
import os
import sys
import traceback

from bench.timing import Row

QUICK = bool(os.environ.get("CALLREC_BENCH_QUICK"))

# (module, keyword arguments for a full run, for a quick run)
FIGURES = [
    ("bench.playback_bench", {}, {"size": 8 * 2**20, "range_requests": 10}),
    ("bench.ingest_bench", {}, {"small": 2 * 2**20, "large": 20 * 2**20}),
    ("bench.panel_bench", {}, {"rows": 20_000}),
    ("bench.call_log_bench", {}, {"rows": 50_000, "repeat": 10}),
    ("bench.export_bench", {}, {"quick": True}),
    ("bench.should_record_bench", {}, {"repeat": 50}),
    ("bench.purge_bench", {}, {"quick": True}),
    ("bench.http_bench", {}, {"quick": True}),
]


def main():
    rows = []
    for module_name, full, quick in FIGURES:
        try:
            module = importlib.import_module(module_name)
            rows.extend(module.run(**(quick if QUICK else full)))
        except Exception as exc:  # one failing figure must not hide the others
            traceback.print_exc()
            rows.append(Row(f"{module_name} FAILED", type(exc).__name__, str(exc)[:40], float("nan"), "", False))
    print_table(rows)
    from bench import results

    if QUICK:  # a smoke run's small sizes are not the figures of record
        print("\nquick run: bench/RESULTS.md left as it was")
    else:
        print(f"\nwritten to {results.write(rows, QUICK)}")
    missed = [row.figure for row in rows if not row.ok]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} figures meet their bar" + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 0


def print_table(rows):
    headers = ("figure", "measured", "reference", "ratio", "bar", "")
    table = [(r.figure, r.measured, r.reference, f"{r.ratio:.2f}", r.bar, "ok" if r.ok else "MISSED") for r in rows]
    widths = [max(len(str(line[i])) for line in [headers, *table]) for i in range(len(headers))]
    for line in [headers, tuple("-" * w for w in widths), *table]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)))


if __name__ == "__main__":
    sys.exit(main())
