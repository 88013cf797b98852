# Two commands do all set-up on a fresh machine (see README.md):
#   make run    creates .venv if needed, then runs the main job on the built-in data
#   make test   creates .venv if needed, then lints (ruff) and runs the test suite
#   make bench  installs the bench extra, then runs the quick speed benchmarks (docs/benchmarks.md)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_ARGS ?= --degrade noise

.PHONY: run test bench clean-venv

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt torch torchvision
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m robustret.experiment $(RUN_ARGS)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[bench]'
	$(PY) benchmarks/bench_degradations.py --quick
	$(PY) benchmarks/bench_search.py
	$(PY) benchmarks/bench_embed.py

clean-venv:
	rm -rf $(VENV)
