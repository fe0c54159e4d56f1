"""``make mutate``: mutmut over the most critical code, on a copy of the tree, within a time budget.

    python -m tests.mutation [--minutes 60] [--workdir /tmp/callrec-mutate] [--max-children 2] [GLOB ...]

What is mutated and which tests judge it is in setup.cfg's ``[mutmut]`` section. The run happens on a
copy (so a working tree being edited is never disturbed, and mutmut's ``mutants/`` stays out of it),
with the folders setup.cfg maps into the package (hooks, templates, migrations) copied inside
``callrec_plugin/`` so that the copy imports only from itself. GLOBs restrict the run to mutant names
(``callrec_plugin.policy.x_decide__mutmut_*``); by default every mutant of the configured files.

At the end (or when the budget runs out: mutmut keeps each verdict as it goes) it prints the kill rate
over the mutants that were judged and lists every survivor, for docs/reliability.md.
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
SKIP = shutil.ignore_patterns(".venv", ".git", "mutants", ".demo", "__pycache__", ".hypothesis", "build", "dist",
                              "*.egg-info", ".pytest_cache")


def snapshot(workdir):
    """A fresh copy of the tree in workdir/tree, with the mapped folders inside the package."""
    tree = workdir / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(ROOT, tree, ignore=SKIP)
    for folder, name in MAPPED.items():
        shutil.copytree(tree / folder, tree / "callrec_plugin" / name, ignore=SKIP)
    return tree


def mutmut(tree, *args, timeout=None):
    env = {key: value for key, value in os.environ.items() if key != "CALLREC_TEST_DATABASE_URL"}  # SQLite
    env.setdefault("CALLREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
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
    parser.add_argument("--max-children", type=int, default=int(os.environ.get("MUTATE_CHILDREN", 2)))
    parser.add_argument("--keep", action="store_true", help="Reuse workdir/tree and its verdicts (resume a run).")
    parser.add_argument("globs", nargs="*", help="Mutant names (fnmatch) to run; default all configured.")
    options = parser.parse_args(argv)
    options.workdir.mkdir(parents=True, exist_ok=True)
    tree = options.workdir / "tree"
    if not (options.keep and tree.exists()):
        tree = snapshot(options.workdir)
    started = time.monotonic()
    run = mutmut(tree, "run", "--max-children", str(options.max_children), *options.globs,
                 timeout=options.minutes * 60)
    (options.workdir / "mutmut-run.log").write_text((run.stdout or "") + (run.stderr or "")
                                                    if isinstance(run.stdout, str) else str(run.stdout))
    statuses = results(tree)
    if options.globs:
        import fnmatch

        statuses = {name: status for name, status in statuses.items()
                    if any(fnmatch.fnmatch(name, pattern) for pattern in options.globs)}
    counted, killed, survived, judged = summary(statuses)
    rate = 100.0 * killed / judged if judged else 0.0
    report = {"minutes": round((time.monotonic() - started) / 60, 1), "statuses": counted, "killed": killed,
              "survived": survived, "judged": judged, "kill_rate_percent": round(rate, 1),
              "survivors": sorted(name for name, status in statuses.items() if status in ("survived", "no tests"))}
    (options.workdir / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: value for key, value in report.items() if key != "survivors"}, indent=2))
    for name in report["survivors"]:
        print(f"survived: {name}   (see: cd {tree} && mutmut show {name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
