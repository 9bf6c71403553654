# promptsim: `make demo` runs the main job on the bundled data, `make test` runs the tests.
# Both create .venv when missing and install what they need (torch first: a pinned CPU build).

VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help demo test check lint bench clean browser

help:  ## list targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/ -/'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,ray]'  # ray: the scale-out tests run too
	$(VENV)/bin/promptsim models build  # the static bulk-path model, distilled offline once and cached
	touch $(STAMP)

demo: $(STAMP)  ## ingest data/demo and search an example campaign prompt
	$(VENV)/bin/promptsim demo

# The suite run serially keeps about one of two cores busy (subprocesses, servers, Ray and the
# browser wait on each other), so it runs in worker processes, one test file each at a time
# (module fixtures are built once); tests/conftest.py starts the slow files first.
TEST_WORKERS ?= auto
test: $(STAMP) browser  ## run the test suite (real model, real SQLite, subprocess kills, Chromium)
	$(PY) -m pytest --numprocesses $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --no-loadscope-reorder

# The UI tests drive Debian's Chromium (Playwright's own browser download fails here). Installed
# when missing; where apt cannot run, say so loudly and let those four tests skip with a reason.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:  ## install Debian's chromium and chromium-driver when missing
	@command -v chromium >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	} || echo "WARNING: could not install Debian's chromium: the browser tests will be skipped" >&2

# mypy's settings per package are in pyproject.toml: --strict on api/ and promptsim/ (the public
# surface), every function body checked on search/ and indexer/; bench/ and tests/ are not checked.
lint: $(STAMP)  ## ruff, and mypy on api/, promptsim/, search/ and indexer/
	$(VENV)/bin/ruff check search indexer api promptsim tests bench
	$(VENV)/bin/mypy api promptsim search indexer

check: lint test  ## lint and test

bench: $(STAMP)  ## core benchmarks at 10k and 100k prompts (slow)
	$(PY) bench/core.py --sizes 10000 100000

clean:  ## remove the virtualenv and demo index
	rm -rf $(VENV) .promptsim-demo
