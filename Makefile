# Two commands do all set-up on a fresh machine (Debian 12/13, Python 3.11):
#   make sample   - install the light runtime (no torch) and colorize the bundled sample photo
#   make test     - install everything (CPU torch, pinned), GIMP 3 for the plug-in tests, and run all tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# An unpinned torch pulls a multi-GB CUDA build; 2.13.0 is the CPU build these machines carry.
TORCH ?= torch==2.13.0
SAMPLE ?= samples/chelsea_grey.jpg

.PHONY: sample test setup setup-dev gimp clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[torch,train,video,dev]'
	touch $@ $(VENV)/.core-installed

setup: $(VENV)/.core-installed
setup-dev: $(VENV)/.dev-installed

sample: setup
	$(BIN)/colorize-gan $(SAMPLE) -o out/
	@echo "colorized: out/$(notdir $(basename $(SAMPLE))).jpg"

gimp:
	scripts/setup_gimp.sh

test: setup-dev gimp
	COLORIZE_GAN_REQUIRE_GIMP=1 $(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) out .pytest_cache
