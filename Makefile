# The README's two commands live here; nothing is installed by hand.
SHELL := /bin/bash
PY ?= python3
# This machine's pip configuration names local package folders that do not exist; pip warns
# about each one on every install. Only those lines are dropped; every other message shows.
QUIET_PIP := 2> >(grep -v "^WARNING: Location 'file:///opt/" >&2)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system-deps demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip $(QUIET_PIP)

install: $(BIN)/python system-deps
	$(BIN)/pip install -q -e ".[dev]" $(QUIET_PIP)

# espeak-ng speaks the tests' talks (speech tests skip without it). Best effort: only
# where apt-get runs as root; PyAV's wheels carry FFmpeg, so nothing else is needed.
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null) || \
	  echo "espeak-ng not installed: speech tests will be skipped"; }

demo: install
	$(BIN)/sapari-nb edit --sample -o edited.mp4 --edits edits.json

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/analysis_speed.py

clean:
	rm -rf $(VENV) .pytest_cache edited.mp4 edits.json
