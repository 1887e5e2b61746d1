# vggheads: `make run` runs the whole pipeline on its defaults; `make test` runs the tests.
# Both create the environment (.venv) when it is missing. `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
CORES ?= 2
# Every library offline and quiet (see src/vggheads/offline.py); the CLI sets the same.
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1
export YOLO_OFFLINE=1
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true
export DVC_NO_ANALYTICS=1
export ORT_DISABLE_TELEMETRY=1
# Debian packages the headless rasteriser needs (EGL through Mesa's llvmpipe on a CPU), and strace,
# with which the tests record every connection attempt of a whole run (native libraries' included).
SYSTEM_PACKAGES := libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri strace

.PHONY: help run demo test test-fast env system-packages bench dvc-sync clean-data

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-16s %s\n", $$1, $$2}'

run: env  ## the whole pipeline on params.yaml (small, CPU, minutes); outputs under data/, metrics/, plots/
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/vggheads summary

demo: env  ## the demo scale: 3,000 procedural images, about an hour on 2 cores (workflow/recipes/demo.yaml)
	$(BIN)/snakemake --cores $(CORES) --configfile workflow/recipes/demo.yaml
	$(BIN)/vggheads summary

test: env  ## every test (unit, workflow, end-to-end on tiny params)
	$(BIN)/pytest -q

test-fast: env  ## the tests without the end-to-end runs of the DAG
	$(BIN)/pytest -q -m "not slow"

bench: env  ## every benchmark in benchmarks/
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

dvc-sync: env  ## regenerate dvc.yaml from the Snakemake rules
	$(BIN)/vggheads dvc-sync

env: $(STAMP)  ## create .venv with the pinned dependencies (pip takes torch from this machine's files)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-packages
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@# facenet-pytorch ships MTCNN's weights but pins torch<2.3: install it without its stale pins.
	$(VENV)/bin/python -m pip install --quiet --no-deps facenet-pytorch==2.6.0
	@# img2dataset pins pandas<3 and opencv-python-headless<5, albumentations/albucore want opencv-python-headless
	@# (a second cv2 over ultralytics' opencv-python), gliner pins transformers<5.17: all run on our pins
	@# (tests/test_download.py, tests/test_names.py), so install them without their pins; their other
	@# imports are in pyproject.toml.
	$(VENV)/bin/python -m pip install --quiet --no-deps img2dataset==1.47.0 albumentations==1.4.24 albucore==0.0.23 gliner==0.2.29
	@rm -f $(VENV)/.installed-*
	@touch $@

system-packages:  ## the Debian packages of the EGL rasteriser (installed with apt when missing and root)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "install these Debian packages first: sudo apt-get install $$missing"; exit 1; fi; \
	fi

clean-data:  ## delete every pipeline output (data/ except data/demo, logs, metrics, plots, MLflow store)
	rm -rf data/captions data/poses data/headmodel data/render data/models data/detector data/detect data/labels \
	  data/filter data/manifest data/model logs metrics plots mlflow.db mlflow.db.lock mlruns .snakemake .vggheads/params
