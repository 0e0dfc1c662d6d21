# The README's first commands. Each bootstraps a fresh Debian machine (apt packages if missing,
# a virtualenv at .venv with pinned requirements) before it runs.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# pytest-xdist workers: most tests wait on services, so more workers than cores pay off.
PYTEST_JOBS ?= 3

.PHONY: setup demo demo-loop demo-clips test test-jetson lint docs bench demo-model clean install uninstall

setup:
	scripts/bootstrap.sh $(VENV)

demo: setup
	$(VENV)/bin/asl-edge demo

# The learning loop end to end: feedback -> dataset -> finetune -> evaluate -> publish -> adopted.
demo-loop: setup
	$(VENV)/bin/asl-edge demo --loop

demo-clips: setup
	$(PY) -m edge.demo.showcase

test: setup
	$(PY) -m pytest -n $(PYTEST_JOBS) --dist loadgroup $(PYTEST_ARGS)

# The runtime tests on the Jetson's NumPy, ONNX Runtime and OpenCV, in .venv-jetson.
test-jetson: setup
	PYTEST_JOBS=$(PYTEST_JOBS) scripts/jetson-lane.sh $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy asl_edge edge convert calibration

# The README's configuration reference, regenerated from the config schema (edge/core/config.py).
docs: setup
	$(PY) -m asl_edge config-reference --write README.md
	$(PY) -m asl_edge health-reference --write README.md

demo-model: setup
	$(PY) -m convert.demo_model --out edge/demo/bundle

bench: setup
	$(PY) bench/inference.py

# The kiosk service (as root, on the device): see "Install on a Jetson kiosk" in the README.
install:
	scripts/install.sh

uninstall:
	scripts/uninstall.sh

clean:
	rm -rf $(VENV) .venv-jetson .pytest_cache .mypy_cache .ruff_cache build *.egg-info
