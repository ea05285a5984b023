# OpenFunction Python functions framework and buildpack.
#
#   make demo   build tools, stacks and builder, `pack build` samples/hello, run it and call it
#   make test   the whole test suite (unit, contract, integration against real components)
#
# Built tools and images are cached under $(OFN_CACHE) and in the Docker engine,
# so a second run only rebuilds what changed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

OFN_CACHE ?= $(HOME)/.cache/ofn-python
export OFN_CACHE

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

# Pinned upstream tool versions (built from their Go modules).
PACK_VERSION ?= 0.38.2
LIFECYCLE_VERSION ?= 0.20.11
DAPR_VERSION ?= 1.16.0

PACK := $(OFN_CACHE)/bin/pack-v$(PACK_VERSION)/pack
LIFECYCLE_DIR := $(OFN_CACHE)/bin/lifecycle-v$(LIFECYCLE_VERSION)
DAPRD := $(OFN_CACHE)/bin/daprd-v$(DAPR_VERSION)/daprd
export OFN_PACK := $(PACK)
export OFN_DAPRD := $(DAPRD)

.PHONY: help system venv daprd test test-unit demo

help:
	@echo "make demo       build the builder, pack build samples/hello, run it and call it"
	@echo "make test       run the whole test suite"
	@echo "make test-unit  run the unit and contract tests only (no Docker, no daprd)"

system:
	@bash scripts/ensure-system.sh

$(VENV)/.ok: runtime/pyproject.toml tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r tests/requirements.txt
	PIP_NO_BINARY=apache-skywalking $(VPY) -m pip install -q -e 'runtime[all]'
	touch $@

venv: $(VENV)/.ok

# stablecomponents: cron, redis (bindings, pubsub, state), pubsub.mqtt3, in-memory, ...
# (allcomponents also pulls in the kitex binding, whose pinned dependencies do not build
# with current Go; MQTT is covered by pubsub.mqtt3.)
$(DAPRD):
	tools/build-go-tool.sh github.com/dapr/dapr v$(DAPR_VERSION) $(dir $(DAPRD)) \
	  github.com/dapr/dapr/cmd/daprd=daprd -- -tags stablecomponents -ldflags "-s -w"

daprd: $(DAPRD)

test-unit: venv
	$(VPY) -m pytest -q tests -m "not integration and not e2e"

# The whole suite: unit and contract tests, then the integration tier against the real
# server process, daprd, Redis, Mosquitto, the SkyWalking/OTLP protocol peers, and the
# end-to-end tier with pack, the lifecycle and the Docker engine.
test: system venv daprd e2e-prereqs
	$(VPY) -m pytest -q -ra tests

