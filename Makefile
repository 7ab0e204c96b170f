# distillery: `make demo` runs the whole pipeline on scikit-image's bundled photos;
# `make test` runs the test suite. Both bootstrap what they need on a fresh machine:
# protoc (for lance's build), a Python venv with torch 2.13.0 (whose libtorch tch links)
# and timm, and the Rust build. The venv and the cargo target directory live outside the
# checkout, under $(DISTILLERY_HOME), so that clones and CI reuse them.

SHELL := /bin/bash
# The machine's python, found before PATH is changed below; it only creates the venv.
SYSTEM_PYTHON := $(shell command -v python3)
DISTILLERY_HOME ?= $(HOME)/.cache/distillery
VENV ?= $(DISTILLERY_HOME)/venv
export CARGO_TARGET_DIR ?= $(DISTILLERY_HOME)/target
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
export DISTILLERY_PYTHON := $(VENV)/bin/python

# The demo's build profile: release as documented; `make demo PROFILE=dev` reuses the
# test build instead of a ~50 minute cold release build on two cores.
PROFILE ?= release
PROFILE_DIR := $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
DEMO_DIR ?= out/demo

.PHONY: demo test bench bootstrap build protoc venv

demo: bootstrap
	cargo build --profile $(PROFILE) --bin distillery
	pipelines/demo.sh $(CARGO_TARGET_DIR)/$(PROFILE_DIR)/distillery $(DEMO_DIR)

test: bootstrap
	cargo test --no-fail-fast

# End-to-end extract vs the teachers alone (the bound) vs a PyTorch reference pipeline, on
# the same images and teachers. BENCH_IMAGES=N, BENCH_DEVICE=cuda, PROFILE as for demo.
bench: bootstrap
	cargo build --profile $(PROFILE) --bin distillery
	bench/run.sh $(CARGO_TARGET_DIR)/$(PROFILE_DIR)/distillery out/bench

bootstrap: protoc venv

venv: $(VENV)/.ready

$(VENV)/.ready: pipelines/requirements.txt
	[ -x $(VENV)/bin/python ] || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r pipelines/requirements.txt
	touch $@

protoc:
	@command -v protoc >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q protobuf-compiler >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q protobuf-compiler; }; }
