"""``make mutate``: mutmut over the most critical code, on a copy of the tree, within a time budget.

    python -m tests.mutation [--minutes 90] [--workdir /tmp/callrec-mutate] [--max-children 1]
                             [--all | GLOB ...] [--keep [--refresh-tests]]

What is mutated and which tests judge it is in setup.cfg's ``[mutmut]`` section. The run happens on a
copy (so a working tree being edited is never disturbed, and mutmut's ``mutants/`` stays out of it),
with the folders setup.cfg maps into the package (hooks, templates, migrations) copied inside
``callrec_plugin/`` so that the copy imports only from itself. By default the run covers CRITICAL
below (the functions a bug in which would leak audio, lose a held call or hide tampering); ``--all``
runs every mutant of the configured files; GLOBs name mutants (``callrec_plugin.policy.x_decide__mutmut_*``).

Re-judging survivors after adding tests: ``--keep --refresh-tests NAME ...`` copies the current
tests into the kept copy and runs mutmut again on exactly those mutants (mutmut finds the new tests'
coverage itself). At the end (or when the budget runs out: mutmut keeps each verdict as it goes) it
prints, per module and in total, the mutants judged, killed and survived, and lists every survivor.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"hooks": "hooks", "templates": "templates", "migrations": "migrations"}  # folder -> callrec_plugin.<name>
# The critical scope the recorded run completes (docs/reliability.md): whole modules for policy, audit,
# holds, retention and grants; for crypto, playback and purge the functions named in issue 10 item 9.
CRITICAL = (
    "callrec_plugin.policy.*",
    "callrec_plugin.audit.*",
    "callrec_plugin.holds.*",
    "callrec_plugin.retention.*",
    "callrec_plugin.grants.*",
    "callrec_plugin.crypto.x__recording_id_bytes__mutmut_*",
    "callrec_plugin.crypto.x__check_data_key__mutmut_*",
    "callrec_plugin.crypto.x_derive_file_key__mutmut_*",
    "callrec_plugin.crypto.x__nonce__mutmut_*",
    "callrec_plugin.crypto.x__segment_count__mutmut_*",
    "callrec_plugin.crypto.x_stored_length_for__mutmut_*",
    "callrec_plugin.crypto.x_plaintext_length_for__mutmut_*",
    "callrec_plugin.crypto.x_encrypt_stream__mutmut_*",
    "callrec_plugin.crypto.xǁDecryptingReaderǁ_open__mutmut_*",
    "callrec_plugin.crypto.xǁDecryptingReaderǁ_decrypt_segment__mutmut_*",
    "callrec_plugin.crypto.xǁDecryptingReaderǁ_read_ciphertext__mutmut_*",
    "callrec_plugin.crypto.xǁDecryptingReaderǁ_segment__mutmut_*",
    "callrec_plugin.crypto.xǁDecryptingReaderǁ_verified_length__mutmut_*",
    "callrec_plugin.playback.x__range_as_rfc_9110_says__mutmut_*",
    "callrec_plugin.playback.x_issue_grant__mutmut_*",
    "callrec_plugin.purge.x__candidates__mutmut_*",
    "callrec_plugin.purge.x_tombstone_reason__mutmut_*",
)
SKIP = shutil.ignore_patterns(".venv", ".git", "mutants", ".demo", "__pycache__", ".hypothesis", "build", "dist",
                              "*.egg-info", ".pytest_cache")


# What --from-head takes from the working tree over the last commit: the mutation run's own files.
OWN_FILES = ("setup.cfg", "tests/mutation.py", "tests/mutation_pytest_plugin.py", "tests/test_pinned_behaviours.py",
             "tests/test_mutation_pins_*.py")


def snapshot(workdir, from_head=False):
    """A fresh copy of the tree in workdir/tree, with the mapped folders inside the package.

    ``from_head``: the last commit instead (``git archive HEAD``), with OWN_FILES from the working
    tree, so that a run is not disturbed by half-made changes others have in the working tree."""
    tree = workdir / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    if from_head:
        tree.mkdir()
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        for pattern in OWN_FILES:
            for path in ROOT.glob(pattern):
                shutil.copy2(path, tree / path.relative_to(ROOT))
    else:
        shutil.copytree(ROOT, tree, ignore=SKIP)
    for folder, name in MAPPED.items():
        shutil.copytree(tree / folder, tree / "callrec_plugin" / name, ignore=SKIP)
    return tree


def refresh_tests(tree, from_head=False):
    """The current tests (and setup.cfg's selection) in a kept copy, its mutants and verdicts untouched."""
    if from_head:
        for pattern in OWN_FILES:
            for path in ROOT.glob(pattern):
                shutil.copy2(path, tree / path.relative_to(ROOT))
        return
    shutil.rmtree(tree / "tests")
    shutil.copytree(ROOT / "tests", tree / "tests", ignore=SKIP)
    shutil.copy2(ROOT / "setup.cfg", tree / "setup.cfg")


def mutmut(tree, *args, timeout=None, log=None):
    env = {key: value for key, value in os.environ.items() if key != "CALLREC_TEST_DATABASE_URL"}  # SQLite
    env.setdefault("CALLREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    if log is not None:  # a long run: its progress goes to a file that can be watched
        with open(log, "w") as out:
            try:
                return subprocess.run([str(Path(sys.executable).with_name("mutmut")), *args], cwd=tree, env=env,
                                      timeout=timeout, stdout=out, stderr=subprocess.STDOUT, text=True)
            except subprocess.TimeoutExpired as expired:
                print(f"time budget reached after {timeout:.0f} s: the mutants not yet judged are left out",
                      flush=True)
                return expired
    command = [str(Path(sys.executable).with_name("mutmut")), *args]
    try:
        return subprocess.run(command, cwd=tree, env=env, timeout=timeout, capture_output=True, text=True)
    except subprocess.TimeoutExpired as expired:
        print(f"time budget reached after {timeout:.0f} s: the mutants not yet judged are left out", flush=True)
        return expired


def results(tree):
    """{mutant name: status} from mutmut's own results listing (every status, survivors included)."""
    listing = mutmut(tree, "results", "--all", "true").stdout or ""
    if not listing.strip():
        listing = mutmut(tree, "results").stdout or ""
    statuses = {}
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name and status:
            statuses[name] = status.strip()
    return statuses


def module_of(name):
    return name.split(".x", 1)[0].rsplit(".", 1)[-1]


def per_module(statuses):
    """module -> (judged, killed, survived, not judged)."""
    table = {}
    for name, status in statuses.items():
        row = table.setdefault(module_of(name), [0, 0, 0, 0])
        if status in ("killed", "timeout"):
            row[0], row[1] = row[0] + 1, row[1] + 1
        elif status in ("survived", "no tests"):
            row[0], row[2] = row[0] + 1, row[2] + 1
        else:
            row[3] += 1
    return {module: tuple(row) for module, row in sorted(table.items())}


def summary(statuses):
    counted = {status: sum(1 for value in statuses.values() if value == status) for status in set(statuses.values())}
    killed = counted.get("killed", 0) + counted.get("timeout", 0)
    survived = counted.get("survived", 0) + counted.get("no tests", 0)
    judged = killed + survived
    return counted, killed, survived, judged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("MUTATE_MINUTES", 60)))
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("MUTATE_DIR", "/tmp/callrec-mutate")))
    # One child: the machine's other core is other people's.
    parser.add_argument("--max-children", type=int, default=int(os.environ.get("MUTATE_CHILDREN", 1)))
    parser.add_argument("--keep", action="store_true", help="Reuse workdir/tree and its verdicts (resume a run).")
    parser.add_argument("--refresh-tests", action="store_true", help="With --keep: copy the current tests in first.")
    parser.add_argument("--from-head", action="store_true",
                        help="Mutate the last commit (with this run's own files from the working tree).")
    parser.add_argument("--report", action="store_true",
                        help="With --keep: run nothing, summarise the verdicts kept (of CRITICAL unless --all).")
    parser.add_argument("--all", action="store_true", help="Every mutant of the configured files, not CRITICAL.")
    parser.add_argument("globs", nargs="*", help="Mutant names (fnmatch) to run; default CRITICAL.")
    options = parser.parse_args(argv)
    if not options.globs and not options.all:
        options.globs = list(CRITICAL)
    options.workdir.mkdir(parents=True, exist_ok=True)
    tree = options.workdir / "tree"
    if not (options.keep and tree.exists()):
        tree = snapshot(options.workdir, options.from_head)
    elif options.refresh_tests:
        refresh_tests(tree, options.from_head)
    started = time.monotonic()
    if not options.report:
        mutmut(tree, "run", "--max-children", str(options.max_children), *options.globs,
               timeout=options.minutes * 60, log=options.workdir / "mutmut-run.log")
    statuses = results(tree)
    if options.report and not options.all:  # the verdicts of the whole critical scope, however many runs made them
        options.globs = list(CRITICAL)
    if options.globs:
        import fnmatch

        statuses = {name: status for name, status in statuses.items()
                    if any(fnmatch.fnmatch(name, pattern) for pattern in options.globs)}
    counted, killed, survived, judged = summary(statuses)
    rate = 100.0 * killed / judged if judged else 0.0
    minutes = (time.monotonic() - started) / 60
    report = {"minutes": round(minutes, 1), "statuses": counted, "killed": killed,
              "survived": survived, "judged": judged, "kill_rate_percent": round(rate, 1),
              "seconds_per_judged_mutant": round(60 * minutes / judged, 2) if judged and not options.report else None,
              "per_module (judged, killed, survived, not judged)": per_module(statuses),
              "survivors": sorted(name for name, status in statuses.items() if status in ("survived", "no tests"))}
    (options.workdir / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: value for key, value in report.items() if key != "survivors"}, indent=2))
    for name in report["survivors"]:
        print(f"survived: {name}   (see: cd {tree} && mutmut show {name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
