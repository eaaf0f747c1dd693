# The README's two commands live here; nothing is installed by hand.
SHELL := /bin/bash
PY ?= python3
# This machine's pip configuration names local package folders that do not exist; pip warns
# about each one on every install. Only those lines are dropped; every other message shows.
QUIET_PIP := 2> >(grep -v "^WARNING: Location 'file:///opt/" >&2)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system-deps browser-deps bundle demo test lint bench bench-widgets clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip $(QUIET_PIP)

install: $(BIN)/python system-deps browser-deps bundle
	$(BIN)/pip install -q -e ".[dev]" $(QUIET_PIP)
	@# An editable install compiles nothing: without this the first use of a module compiles
	@# it while holding the GIL, and a server's first render stalls every request ~200 ms.
	$(BIN)/python -m compileall -q sapari_nb server/sapari_server sapari_testkit

# The widgets' front end (esbuild output, git-ignored): built where it is missing. The wheel's
# build hook (hatch_build.py) does the same for `pip install`/`pip wheel` of a clean clone.
# Node.js comes from Debian when it is missing (best effort, as root).
BUNDLE := sapari_nb/static/sapari.js
bundle:
	@[ -f $(BUNDLE) ] && [ -f sapari_nb/static/sapari.css ] || { \
	  command -v npm >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; } ; \
	  cd widgets && npm ci --prefer-offline --no-audit --no-fund --loglevel=error && npm run build; }

# espeak-ng speaks the tests' talks (speech tests skip without it). Best effort: only
# where apt-get runs as root; PyAV's wheels carry FFmpeg, so nothing else is needed.
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null) || \
	  echo "espeak-ng not installed: speech tests will be skipped"; }

# Debian's Chromium drives the browser tests (Playwright cannot download its own browsers
# here). Best effort like system-deps: without it the browser tests skip, except under
# SAPARI_REQUIRE_SERVICES=1 (.ci/run), where they fail.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && \
	  command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  echo "chromium not installed: browser tests will be skipped"; }

demo: install
	$(BIN)/sapari-nb edit --sample -o edited.mp4 --edits edits.json

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/analysis_speed.py

bench-widgets: install
	$(BIN)/python bench/widget_speed.py

clean:
	rm -rf $(VENV) .pytest_cache edited.mp4 edits.json
