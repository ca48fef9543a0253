# ir_robot: everything a fresh machine needs, from this file.
#   make demo    create .venv, install, run one autonomous venipuncture through the ROS graph
#                and once more without ROS, writing overlays and a force plot to out/demo/
#   make test    create .venv, install, check style and types (make lint), run the default test suite
#   make lint    ruff (lint + format check) and mypy: zero findings
#   make bench   benchmarks: prints tables, writes out/bench/*.json
#   make test-all  the default suite plus tests marked slow
#   make models  retrain both perception models, benchmark them, ship them to models/ with cards

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: install demo lint test test-all bench clean models

install: $(STAMP)

$(STAMP): requirements.txt requirements-ros.txt requirements-dev.txt torch-requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	# torch first and alone, CPU build, so nothing can pull a CUDA torch later
	$(PIP) install --quiet -r torch-requirements.txt
	$(PIP) install --quiet -r requirements.txt -r requirements-ros.txt -r requirements-dev.txt
	$(PIP) install --quiet --no-deps -e .
	touch $(STAMP)

demo: install
	# one autonomous venipuncture through the ROS 2 graph (plain rclpy), recorded to MCAP
	$(VENV)/bin/ir-robot launch sim --procedures 1 --record out/demo/session.mcap
	# the same procedure without ROS, with overlay frames and a force plot in out/demo/
	$(VENV)/bin/ir-robot demo --out out/demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m "slow or not slow"

bench: install
	$(VENV)/bin/ir-robot bench all --json out/bench/all.json

# the shipped weights: train both segmenters, benchmark them, copy them to models/ with their cards
models: install
	$(VENV)/bin/ir-robot train-perception us --out out/train/us_seg
	$(VENV)/bin/ir-robot train-perception nir --out out/train/nir_seg
	$(VENV)/bin/ir-robot bench perception --us-weights out/train/us_seg/model.pt \
		--nir-weights out/train/nir_seg/model.pt --json out/bench/perception.json
	$(VENV)/bin/ir-robot ship-model us --run out/train/us_seg --bench out/bench/perception.json
	$(VENV)/bin/ir-robot ship-model nir --run out/train/nir_seg --bench out/bench/perception.json

clean:
	rm -rf out .pytest_cache
