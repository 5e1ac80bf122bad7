# oe_async developer commands. `make test` is the one CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= $(shell scripts/find-python 3.11 | grep . || command -v python3)
PY313 := $(shell scripts/find-python 3.13)
PY314 := $(shell scripts/py314 find)
# No Python 3.14 here: as root, scripts/py314 builds a Debian sid root with one (.py314root/).
PY314_CAN_BUILD := $(if $(PY314),,$(shell scripts/py314 can-build && echo yes))
VENV ?= .venv
VENV313 ?= .venv313
VENV314 ?= .venv314
PIP_FLAGS ?= --quiet --disable-pip-version-check

.PHONY: test lint typecheck verifytypes pytest test-313 test-314 integration integration-mqtt plugin-conformance ha browser demo docs dist test-wheel fuzz bench bench-mqtt matrix reliability flake-hunt clean clean-314

# A venv is (re)built when pyproject.toml changes; the stamp records a finished install.
$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -e '.[test,cli,docs]'
	@touch $@

$(VENV313)/.installed: pyproject.toml
	@test -x $(VENV313)/bin/python || $(PY313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV313)/bin/python -m pip install $(PIP_FLAGS) -e '.[test,cli]'
	@touch $@

$(VENV314)/.installed: pyproject.toml
	@test -x $(VENV314)/bin/python || $(PY314) -m venv $(VENV314)
	$(VENV314)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV314)/bin/python -m pip install $(PIP_FLAGS) -e '.[test,cli]'
	@touch $@

# pdoc for `make docs`, in the same venv (the reference imports oe_async.testing's pytest plugin).
$(VENV)/.docs-installed: $(VENV)/.installed
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -e '.[docs]'
	@touch $@

test: lint typecheck verifytypes pytest test-313 test-314

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy --strict oe_async scripts/reliability.py scripts/matrix.py scripts/docs.py scripts/docs_pages.py scripts/docs_public.py scripts/check_dist.py scripts/flake_hunt.py

# Type completeness of the public API (pyright --verifytypes, must be 100%). pyright runs on
# Node.js: the machine's, or one it fetches from the npm registry on first use.
verifytypes: $(VENV)/.installed
	@export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; \
	if pyright --version >/dev/null 2>&1; then \
		set -o pipefail; pyright --verifytypes oe_async --ignoreexternal | grep -E " error: |completeness score"; \
	else \
		echo "verifytypes: pyright cannot start here (no Node.js, npm registry unreachable); skipping."; \
	fi

pytest: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

ifeq ($(PY313),)
test-313:
	@echo "test-313: no Python 3.13 interpreter found (PATH or pyenv); skipping the 3.13 run."
else
test-313: $(VENV313)/.installed
	@echo "== Python 3.13 ($(PY313)) =="
	$(VENV313)/bin/mypy --strict --python-version 3.13 oe_async
	$(VENV313)/bin/python -m pytest
endif

# Python 3.14: an installed one (PATH or pyenv) in .venv314, else (as root) the cached Debian
# sid root of scripts/py314 with its own venv inside (built or refreshed by `ensure`).
ifneq ($(PY314),)
test-314: $(VENV314)/.installed
	@echo "== Python 3.14 ($(PY314)) =="
	$(VENV314)/bin/mypy --strict --python-version 3.14 oe_async
	$(VENV314)/bin/python -m pytest
else ifeq ($(PY314_CAN_BUILD),yes)
test-314:
	@PY314_PIP_FLAGS="$(PIP_FLAGS)" scripts/py314 ensure
	@echo "== Python 3.14 ($$(scripts/py314 describe)) =="
	scripts/py314 run mypy --strict --python-version 3.14 oe_async
	scripts/py314 run python -m pytest
else
test-314:
	@echo "test-314: no Python 3.14 interpreter (PATH, pyenv) and cannot build one (needs root and debootstrap); skipping the 3.14 run."
endif

# The library's OctoPrint workflows against a real OctoPrint 1.11 (its own venv,
# .venv-octoprint, from PyPI) with the virtual printer, behind oe_async.testing.relay's
# stand-in relay on 127.0.0.1. INTEGRATION_ARGS go to pytest.
integration: $(VENV)/.installed
	scripts/octoprint-integration $(INTEGRATION_ARGS)

# printer.mqtt against real peers (tests/integration/mqtt): Debian's mosquitto (apt-installed
# here when missing, as root) directly and behind the stand-in relay, and the plugin's REAL
# mqttmux proxy, extracted at test time from the bare git copy at OE_PLUGIN_MIRROR (default:
# the /work/.mirror one; those tests skip with a message when it is absent), with mosquitto as
# the printer's broker. Loopback only. INTEGRATION_ARGS go to pytest.
integration-mqtt: $(VENV)/.installed
	@command -v mosquitto >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; \
		else echo "integration-mqtt: mosquitto is missing (apt-get install mosquitto)"; exit 1; fi; }
	OE_MQTT_INTEGRATION=1 $(VENV)/bin/python -m pytest tests/integration/mqtt $(INTEGRATION_ARGS)

# printer.plugin and the default webcam against the REAL OctoEverywhere plugin's command
# handler, every platform, and the LAN identity check against its real OctoPrint API answer
# (tests/conformance): its source from OE_PLUGIN_SOURCE (a clone or
# bare git directory, extracted at test time, never committed; absent: skipped, exit 0), its
# requirements and OctoPrint 1.11 in their own venv, .venv-plugin. CONFORMANCE_ARGS go to pytest.
plugin-conformance:
	scripts/plugin-conformance $(CONFORMANCE_ARGS)

# The example Home Assistant integration (examples/homeassistant) tested inside Home Assistant
# with pytest-homeassistant-custom-component on Python 3.14: a python3.14 found here, else (as
# root) the scripts/py314 root with a venv of its own; skipped otherwise. HA_ARGS go to pytest.
ha:
	examples/homeassistant/run-tests $(HA_ARGS)

# The release files: sdist and wheel built by the standard PEP 517 front end (`python -m build`,
# in a venv of its own, .venv-dist) into dist/, then `twine check --strict` (PyPI will render
# them) and scripts/check_dist.py (what they hold: py.typed in, tests out of the wheel, the
# version, the four runtime dependencies, the sdist free of local files).
$(VENV)-dist/.installed:
	@test -x $(VENV)-dist/bin/python || $(PYTHON) -m venv $(VENV)-dist
	$(VENV)-dist/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)-dist/bin/python -m pip install $(PIP_FLAGS) 'build>=1.2' 'twine>=6.1'
	@touch $@

dist: $(VENV)-dist/.installed
	rm -rf dist
	$(VENV)-dist/bin/python -m build --outdir dist .
	$(VENV)-dist/bin/python -m twine check --strict dist/*
	$(VENV)-dist/bin/python scripts/check_dist.py dist

# The test suite against the INSTALLED wheel: dist/'s wheel in a fresh venv, the sdist's tests
# run where `import oe_async` can only find that install (scripts/test-wheel). WHEEL_ARGS go
# to pytest.
test-wheel: dist
	scripts/test-wheel $(PYTHON) dist $(WHEEL_ARGS)

# examples/mjpeg_proxy.py in a real browser (tests/test_browser.py): headless Chromium, driven
# over its DevTools protocol, shows the re-served webcam, N tabs cost one upstream stream and
# closing them ends it. Debian's chromium is installed when missing (as root; no browser
# download). BROWSER_ARGS go to pytest.
browser: $(VENV)/.installed
	@command -v chromium >/dev/null 2>&1 || command -v "$$CHROMIUM" >/dev/null 2>&1 || { \
		echo "browser: installing Debian's chromium..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	OE_BROWSER_TESTS=1 $(VENV)/bin/python -m pytest tests/test_browser.py $(BROWSER_ARGS)

# The guided tour on the embedded simulator (non-interactive off a TTY). DEMO_ARGS="--out DIR".
# It needs only the package and its CLI extra (rich), not the test tools; `make test` later
# adds those to the same venv.
$(VENV)/.demo-installed: pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -e '.[cli]'
	@touch $@

demo: $(VENV)/.demo-installed
	$(VENV)/bin/oe-async demo $(DEMO_ARGS)

# The documentation site in build/docs/ (open index.html), built by pdoc: the README as front
# page, every guide of docs/, and the API reference generated from the docstrings. Fails on
# any pdoc warning, a reference that names nothing or that pdoc cannot link, a docstring
# section pdoc cannot read, a link to no file, page or anchor, and a private name in a public
# signature: scripts/docs.py lists each one.
docs: $(VENV)/.docs-installed
	$(VENV)/bin/python scripts/docs.py build/docs

# Long property-based runs (>= 100,000 examples per property, 5 s deadline = hang): the MJPEG
# parser and every portal/error/payload decoder, two processes in parallel. Hours; not in
# `make test`. Results: .reliability/fuzz.json (shown by `make reliability`).
fuzz: $(VENV)/.installed
	$(VENV)/bin/python scripts/reliability.py --fuzz-only $(FUZZ_ARGS)

# The suite on Python 3.11 and 3.13 x aiohttp 3.14.4 (lowest) and the newest 3.x.
matrix: $(VENV)/.installed
	$(VENV)/bin/python scripts/matrix.py

# Hostile servers, 1,000-cycle leak checks, the suite in asyncio debug mode, the matrix
# (MATRIX=0 skips) and fuzz results (FUZZ=1 runs them): one table, also in RELIABILITY.md.
reliability: $(VENV)/.installed
	$(VENV)/bin/python scripts/reliability.py

# The suite RUNS times under CPU load it makes itself (stress-ng --cpu N if installed, else N
# busy loops, always ended), then each test that failed and how often. Not in CI: slow.
# RANDOM=1 shuffles each run (seed printed); JOBS=2 runs two at once; TIMED=1 only the files
# that sleep or use deadlines; FLAKE_PYTHON=.venv313/bin/python another interpreter (its
# venv needs pytest-random-order for RANDOM=1); FLAKE_ARGS go to the script, e.g.
# FLAKE_ARGS="--load busy -- tests/test_budget.py -k deadline". Logs: .flake-hunt/.
RUNS ?= 5
JOBS ?= 1
FLAKE_PYTHON ?= $(VENV)/bin/python
flake-hunt: $(VENV)/.installed
	$(VENV)/bin/python scripts/flake_hunt.py --runs $(RUNS) --jobs $(JOBS) --python $(FLAKE_PYTHON) \
		$(if $(filter 1,$(RANDOM)),--random-order) $(if $(filter 1,$(TIMED)),--timed) $(FLAKE_ARGS)

bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/funnel.py
	$(VENV)/bin/python benchmarks/transfers.py
	$(VENV)/bin/python benchmarks/mjpeg.py
	$(VENV)/bin/python benchmarks/shared_streams.py

# oe_async vs paho-mqtt over WebSockets through the stand-in relay in front of mosquitto.
bench-mqtt: $(VENV)/.installed
	@command -v mosquitto >/dev/null || { echo "bench-mqtt: apt-get install mosquitto"; exit 1; }
	$(VENV)/bin/python benchmarks/mqtt.py

# `clean` also empties the 3.14 root's venv but keeps the root itself (a ~300 MB Debian system
# that takes a minute and the network to rebuild); `clean-314` removes the root.
clean:
	rm -rf .venv-octoprint .venv-plugin .venv-ha $(VENV) $(VENV)-dist $(VENV313) $(VENV314) dist .matrix .reliability .mypy_cache .ruff_cache .pytest_cache .hypothesis build/docs scripts/flake_hunt.py
	scripts/py314 clean-venv

clean-314:
	scripts/py314 clean
