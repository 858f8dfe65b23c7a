# `make test` is what CI runs (.ci/run) and what the README tells you to run.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= auto

.PHONY: system venv lint typecheck test pytest run install uninstall bench clean

# Debian packages (PortAudio, mosquitto, espeak-ng, ...); quick when they are already there.
system:
	./scripts/setup-system.sh

$(VENV)/.installed: pyproject.toml | system
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,whisper]'
	touch $@ $(VENV)/.runtime

# What running needs, and nothing else (no test extras, no broker or browser); the test venv
# above has it too.
$(VENV)/.runtime: pyproject.toml
	./scripts/setup-system.sh --runtime
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[whisper]'
	touch $@

venv: system $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy listend

pytest: venv
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

test: lint typecheck pytest

run: $(VENV)/.runtime
	$(VENV)/bin/listend run config/listend.example.yaml

# The system service from this checkout: /opt/listend, the unit, /etc/listend (see docs/service.md).
# KEY=path/to/keyfile stores the Deepgram key as the service's credential.
install:
	./scripts/install.sh $(if $(KEY),--api-key-file $(KEY))

uninstall:
	./scripts/install.sh --uninstall

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache state

# Benchmarks (numbers in bench/RESULTS.md and the README); not part of `make test`.
# engine_bench.py: the offline engine. run.py: listend against the SDK-guide baseline and
# voice-activity gating (about 10 minutes; wants both cores otherwise idle). wyoming_bench.py:
# 20 Assist requests over Wyoming, audio-stop -> transcript latency. catchup.py: the
# catch-up after a 30 s outage (about 4 minutes). commits.py: the outbox's commit scheduling
# against the old fixed 50 ms window, side by side (a minute). idle.py: an idle source's
# wake-ups per second, CPU per minute and start-up CPU against the script.
bench: venv
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/engine_bench.py
	$(PY) bench/run.py
	$(PY) bench/wyoming_bench.py
	$(PY) bench/catchup.py
	$(PY) bench/commits.py
	$(PY) bench/idle.py
	$(PY) bench/imports.py
