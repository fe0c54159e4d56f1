"""The wheel holds the mapped packages, the templates and the migration scripts (found through
importlib.resources, so they work in an installed copy, not just in the checkout)."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent


def copy_of_the_source(dest):
    """The files git would ship (tracked, or new and not ignored): a build in the checkout itself would
    reuse its build/ folder, where a file deleted from the source lives on and still gets packaged."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    source = copy_of_the_source(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True, capture_output=True, cwd=out,
    )
    (wheel,) = out.glob("callrec-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_contains_templates_and_migrations(wheel_names):
    templates = sorted(p.relative_to(ROOT / "templates") for p in (ROOT / "templates").rglob("*.html"))
    assert templates
    for template in templates:
        assert f"callrec_plugin/templates/{template.as_posix()}" in wheel_names
    assert "callrec_plugin/templates/callrec/callrec.css" in wheel_names
    versions = sorted((ROOT / "migrations" / "versions").glob("[0-9]*.py"))
    assert versions
    for version in versions:
        assert f"callrec_plugin/migrations/versions/{version.name}" in wheel_names
    assert "callrec_plugin/migrations/env.py" in wheel_names
    assert "callrec_plugin/migrations/script.py.mako" in wheel_names


def test_wheel_maps_hooks_into_the_namespace_and_ships_no_bare_top_level(wheel_names):
    assert "callrec_plugin/hooks/host.py" in wheel_names
    assert "callrec_plugin/hooks/extension.py" in wheel_names
    tops = {name.split("/")[0] for name in wheel_names}
    assert not tops & {"hooks", "templates", "migrations", "tests", "examples"}


def test_wheel_ships_exactly_the_modules_of_the_source(wheel_names):
    mapped = {"callrec_plugin": "callrec_plugin", "hooks": "callrec_plugin/hooks",
              "templates": "callrec_plugin/templates", "migrations": "callrec_plugin/migrations"}
    expected = {f"{target}/{path.relative_to(ROOT / folder).as_posix()}"
                for folder, target in mapped.items() for path in (ROOT / folder).rglob("*.py")
                if "__pycache__" not in path.parts}
    shipped = {name for name in wheel_names if name.endswith(".py")}
    assert shipped == expected
