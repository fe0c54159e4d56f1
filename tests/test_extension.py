"""init_app: clear errors for misuse, every config key defaulted, state in app.extensions, CLI group."""
import re
from pathlib import Path
import pytest
from flask import Flask
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy

from callrec_plugin import CallRec
from callrec_plugin.config import DEFAULTS
from callrec_plugin.extension import CallRecSetupError, get_state


def bare_host(with_db=True, with_login=True):
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", SECRET_KEY="x", CALLREC_LOAD_ENTRY_POINTS=False)
    if with_db:
        SQLAlchemy(app)
    if with_login:
        LoginManager(app)
    return app


def test_init_app_twice_raises_a_clear_error():
    app = bare_host()
    CallRec(app)
    with pytest.raises(CallRecSetupError, match="already registered"):
        CallRec(app)


def test_missing_flask_sqlalchemy_is_named():
    with pytest.raises(CallRecSetupError, match="Flask-SQLAlchemy"):
        CallRec(bare_host(with_db=False))


def test_missing_flask_login_is_named():
    with pytest.raises(CallRecSetupError, match="Flask-Login"):
        CallRec(bare_host(with_login=False))


# Environment variables, not config keys: each is documented where it is read.
ENVIRONMENT_NAMES = {"CALLREC_KEYS", "CALLREC_APP_FACTORY", "CALLREC_TEST_KILL_AT"}


def test_every_config_key_the_code_reads_has_a_default_and_a_readme_row():
    package = Path(__file__).resolve().parent.parent / "callrec_plugin"
    named = set()
    for source in package.rglob("*.py"):
        named |= set(re.findall(r"CALLREC_[A-Z0-9_]+", source.read_text()))
    assert named - ENVIRONMENT_NAMES == set(DEFAULTS), "a CALLREC_* key is read without a default in config.py"
    readme = (package.parent / "README.md").read_text()
    assert [key for key in DEFAULTS if f"| `{key}` |" not in readme] == [], "config keys missing from the README"


def test_every_config_key_gets_its_default_and_host_values_win():
    app = bare_host()
    app.config["CALLREC_RETENTION_MONTHS"] = 3
    CallRec().init_app(app)
    set_by_host_or_derived = {"CALLREC_RETENTION_MONTHS", "CALLREC_LOAD_ENTRY_POINTS", "CALLREC_STORAGE_DIR"}
    assert {key: app.config[key] for key in DEFAULTS if key not in set_by_host_or_derived} == \
        {key: value for key, value in DEFAULTS.items() if key not in set_by_host_or_derived}
    assert app.config["CALLREC_STORAGE_DIR"] == str(Path(app.instance_path) / "callrec-storage")
    assert app.config["CALLREC_RETENTION_MONTHS"] == 3
    assert app.config["CALLREC_HOLD_GRACE_DAYS"] == 7
    assert app.config["CALLREC_URL_PREFIX"] == "/callrec"


def test_storage_inside_a_static_folder_is_refused(tmp_path):
    app = bare_host()
    app.static_folder = str(tmp_path / "static")
    app.config["CALLREC_STORAGE_DIR"] = str(tmp_path / "static" / "recordings")
    with pytest.raises(CallRecSetupError, match="static folder"):
        CallRec(app)


def test_defaults_are_not_shared_between_apps():
    first, second = bare_host(), bare_host()
    CallRec(first)
    CallRec(second)
    first.config["CALLREC_API_SECRETS"]["pA"] = "secret"
    assert second.config["CALLREC_API_SECRETS"] == {}


def test_state_lives_in_app_extensions_and_uses_the_hosts_session():
    app = bare_host()
    CallRec(app)
    state = app.extensions["callrec"]
    assert state.db is app.extensions["sqlalchemy"]
    assert not hasattr(app, "callrec")


def test_get_state_without_init_app_explains_the_fix():
    app = bare_host()
    with pytest.raises(CallRecSetupError, match=r"CallRec\(app\)"):
        get_state(app)


def test_url_prefix_is_configurable():
    app = bare_host()
    app.config["CALLREC_URL_PREFIX"] = "/calls"
    CallRec(app)
    rules = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("callrec.")}
    assert "/calls/recordings/<recording_id>/audio" in rules


def test_cli_group_is_added_with_its_commands():
    app = bare_host()
    CallRec(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["callrec", "--help"])
    assert result.exit_code == 0
    for command in ("db", "plugins", "audit"):
        assert command in result.output


def test_every_config_key_is_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [key for key in DEFAULTS if f"`{key}`" not in readme]
    assert not missing, f"README's configuration reference lacks {missing}"
