# `make test` is what CI runs (.ci/run) and what the README tells you to run.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= auto

.PHONY: system venv lint typecheck test pytest run bench clean

# Debian packages (PortAudio, mosquitto, espeak-ng, ...); quick when they are already there.
system:
	./scripts/setup-system.sh

$(VENV)/.installed: pyproject.toml | system
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
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

run: venv
	$(VENV)/bin/listend run config/listend.example.yaml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache state

# Benchmarks (numbers in bench/RESULTS.md and the README); not part of `make test`.
# engine_bench.py: the offline engine. run.py: listend against the SDK-guide baseline and
# voice-activity gating (about 10 minutes; wants both cores otherwise idle). wyoming_bench.py:
# 20 Assist requests over Wyoming, audio-stop -> transcript latency. commits.py: the outbox's
# commit scheduling against the old fixed 50 ms window, side by side (a minute). idle.py: an
# idle source's wake-ups per second, CPU per minute and start-up CPU against the script.
bench: venv
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/engine_bench.py
	$(PY) bench/run.py
	$(PY) bench/wyoming_bench.py
	$(PY) bench/commits.py
	$(PY) bench/idle.py
