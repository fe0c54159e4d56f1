"""`make test` names a missing service and says how to start it, instead of failing inside pytest."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check(**environment):
    return subprocess.run([sys.executable, "-m", "tests.services", "postgres", "redis"], cwd=ROOT,
                          env={**os.environ, **environment}, capture_output=True, text=True, timeout=60)


def test_a_redis_that_does_not_answer_is_named_with_how_to_start_it():
    result = check(CALLREC_TEST_REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 2
    assert "need redis at 127.0.0.1:1" in result.stderr and "redis-server" in result.stderr


def test_a_missing_test_database_is_named_with_how_to_create_it():
    base = os.environ.get("CALLREC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    result = check(CALLREC_TEST_DATABASE_URL=base.rsplit("/", 1)[0] + "/callrec_no_such_database")
    assert result.returncode == 2
    assert "callrec_no_such_database" in result.stderr and "createdb" in result.stderr
