"""bench/RESULTS.md: the table of the last full run, with the machine and library versions it was taken with."""
import datetime as dt
import importlib.metadata
import os
import platform

LIBRARIES = ("cryptography", "Flask", "Werkzeug", "SQLAlchemy", "Flask-SQLAlchemy", "psycopg", "gunicorn",
             "boto3", "moto", "rq", "pluggy")
PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _database():
    from bench.purge_bench import database_url

    url = os.environ.get("CALLREC_BENCH_DATABASE_URL") or database_url()
    if url.startswith("postgresql"):
        try:
            import sqlalchemy as sa

            engine = sa.create_engine(url)
            with engine.connect() as connection:
                version = connection.exec_driver_sql("SHOW server_version").scalar()
            engine.dispose()
            return f"PostgreSQL {version}"
        except Exception as error:  # the table is still worth writing
            return f"PostgreSQL (version unknown: {type(error).__name__})"
    return url.split(":", 1)[0]


def write(rows, quick, path=PATH):
    """Write the table (markdown) and what it was measured on."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`); every figure is a ratio to a reference measured in the same",
        "run (DESIGN.md §12). Rows marked *(floor)* or *(context)* are the unavoidable work that limits the figure",
        "above them, measured in the same run.",
        "",
        f"- run: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC{' (quick sizes)' if quick else ''}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores; load average at the end "
        f"{' / '.join(f'{value:.1f}' if isinstance(value, float) else value for value in load)} "
        "(the machine is shared: figures under load are noisier and usually worse)",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}; database {_database()}",
        "- libraries: " + ", ".join(f"{name} {_version(name)}" for name in LIBRARIES),
        "",
        "| figure | measured | reference | ratio | bar | |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = "" if row.ratio != row.ratio else f"{row.ratio:.2f}"  # NaN: a row of figures, no ratio
        cells = (row.figure.strip(), row.measured, row.reference, ratio, row.bar, "ok" if row.ok else "**MISSED**")
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |")
    missed = [row.figure.strip() for row in rows if not row.ok]
    lines += ["", f"{len(rows) - len(missed)} of {len(rows)} rows meet their bar."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
