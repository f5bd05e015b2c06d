# Set-up and the two entry points. `make demo` runs the main job on the embedded
# demo data; `make test` runs the whole test suite. Both build .venv when it is
# missing or older than pyproject.toml / requirements.lock. The tests need the
# gcp extra too: they run the commands on gs:// paths and submit to Dataflow.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: venv demo test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev,gcp]'
	touch $(STAMP)

demo: $(STAMP)
	DEMO_DIR=$(DEMO_DIR) PY=$(PY) bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -n 2 tests

clean:
	rm -rf $(DEMO_DIR)
