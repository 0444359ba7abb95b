# dmsec: one virtualenv, pip with constraints.txt pinning torch==2.13.0 (the CPU wheel on local
# disk; without the pin a dependency's range can pull a multi-GB CUDA build).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup art-data browser demo test test-fast lint zoo art-zoo art-partial-zoo clean

setup: $(STAMP) art-data

$(STAMP): pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,causal]'
	touch $(STAMP)

art-data: $(STAMP)  ## the art zoo's emoji packages, once, with npm (pinned versions, sha256-checked)
	$(BIN)/dmsec zoo fetch-data

demo: setup          ## the scan on the embedded default: tiny zoo as a hub, local Ray, ./results
	$(BIN)/dmsec scan

browser:             ## Debian's Chromium for the report tests (apt-get; needs root)
	bash tests/setup_browser.sh

test: setup browser  ## the whole suite (builds the small zoo on first run, ~3 min)
	$(BIN)/python -m pytest

test-fast: setup     ## skip the slow tests
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check dmsec pipelines tests benchmarks
	$(BIN)/ruff format --check dmsec pipelines tests benchmarks
	$(BIN)/mypy dmsec

zoo: setup
	$(BIN)/dmsec zoo build

art-zoo: setup       ## the art zoo (miniature Stable Diffusion; ~1 h on 2 cores, minutes on a GPU)
	$(BIN)/dmsec zoo build --zoo art

art-partial-zoo: art-zoo  ## larger style sets on the art zoo's base (partial memorisation; ~10 min)
	$(BIN)/dmsec zoo build --zoo art-partial

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: floors
floors:              ## hub tests with every dependency at its pyproject floor, in a throwaway venv
	PYTHON=$(PYTHON) bash scripts/check_floors.sh
