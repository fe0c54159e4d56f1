# The two commands: `make demo` runs the product, `make test` passes the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
CALLREC_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
CALLREC_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# The PostgreSQL pass runs beside the SQLite pass, so it keeps its RQ queues and counters in a Redis
# database of its own.
CALLREC_TEST_REDIS_URL_POSTGRES ?= redis://127.0.0.1:6379/14
DEMO := $(BIN)/flask --app examples.practice_host
export CALLREC_TEST_REDIS_URL

.PHONY: test test-sqlite test-postgres demo demo-reset bench mutate services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-test: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-demo: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $@

services: $(VENV)/.installed-test
	CALLREC_TEST_DATABASE_URL=$(CALLREC_TEST_DATABASE_URL) $(BIN)/python -m tests.services postgres redis

# The two passes run at once, one core each (they share no database, no Redis database and no port);
# each pass's output is printed whole when it ends, so a failure reads as it would alone.
test: services
	@echo "== callrec tests: the SQLite and PostgreSQL passes run side by side; each prints when it ends =="
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

test-sqlite: $(VENV)/.installed-test
	@echo "== callrec tests on SQLite =="
	env -u CALLREC_TEST_DATABASE_URL $(BIN)/python -m pytest

# The browser journeys drive the demo on its own SQLite, and the no_database tests (the import graph,
# the wheel) use no database at all: the SQLite pass runs them, the PostgreSQL pass need not again.
test-postgres: $(VENV)/.installed-test
	@echo "== callrec tests on PostgreSQL ($(CALLREC_TEST_DATABASE_URL)) =="
	CALLREC_TEST_DATABASE_URL=$(CALLREC_TEST_DATABASE_URL) CALLREC_TEST_REDIS_URL=$(CALLREC_TEST_REDIS_URL_POSTGRES) \
	  $(BIN)/python -m pytest -m "not browser and not no_database"

demo: $(VENV)/.installed-demo
	$(DEMO) init-db
	$(DEMO) callrec db upgrade
	$(DEMO) seed
	@echo "callrec demo on http://127.0.0.1:$(PORT)  (logins: owner, manager, handler, trainer, reception, dpo, reception2; password demo)"
	$(DEMO) serve --host 127.0.0.1 --port $(PORT)

demo-reset:
	rm -rf .demo

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

# Mutation testing of the critical functions (tests/mutation.py CRITICAL, setup.cfg [mutmut]); not part
# of `make test`. Mutates the last commit (--from-head) in a copy in $(MUTATE_DIR), one child process
# (MUTATE_CHILDREN=2: both cores, about 35 minutes for the whole scope), for
# at most $(MUTATE_MINUTES) minutes; the kill rate and every survivor go to docs/reliability.md by hand.
# MUTANTS='callrec_plugin.policy.x_decide__mutmut_*' narrows it; MUTATE_FLAGS=--keep resumes a run.
MUTATE_MINUTES ?= 120
MUTATE_DIR ?= /tmp/callrec-mutate
mutate: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e '.[test,mutate]'
	MUTATE_DIR=$(MUTATE_DIR) $(BIN)/python -m tests.mutation --from-head --minutes $(MUTATE_MINUTES) $(MUTATE_FLAGS) $(MUTANTS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
