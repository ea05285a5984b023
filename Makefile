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
DAPR_VERSION ?= 1.16.5

PACK := $(OFN_CACHE)/bin/pack-v$(PACK_VERSION)/pack
LIFECYCLE_DIR := $(OFN_CACHE)/bin/lifecycle-v$(LIFECYCLE_VERSION)
DAPRD := $(OFN_CACHE)/bin/daprd-v$(DAPR_VERSION)/daprd
export OFN_PACK := $(PACK)
export OFN_DAPRD := $(DAPRD)

.PHONY: help system system-build venv daprd test test-unit demo

help:
	@echo "make demo       build the builder, pack build samples/hello, run it and call it"
	@echo "make test       run the whole test suite"
	@echo "make test-unit  run the unit and contract tests only (no Docker, no daprd)"
	@echo "make tools | stacks | wheels | builder | daprd | e2e-prereqs | bench"

system:
	@bash scripts/ensure-system.sh

# what building the builder needs: Docker (running), debootstrap, Go
system-build:
	@bash scripts/ensure-system.sh build

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


# ---------------------------------------------------------------------------------------
# Buildpack, stacks and builder: tools, wheels, stacks, builder, demo, e2e-prereqs.
#
#   make builder                       pack, lifecycle, stack images, wheelhouse, builder image
#   make demo                          ... then pack build samples/hello, run it and curl it
#   make stacks BASE_IMAGE=debian:bookworm-slim   stacks from a registry base, no debootstrap
#
# Each step is cached: tools by stamp files, the debootstrap base and the builder by an
# image label holding a hash of their inputs, stack images by Docker's build cache, the
# wheelhouse by a stamp keyed on the runtime's sources.

UV_VERSION ?= 0.13.9
BASE_IMAGE ?=
DEBOOTSTRAP_IMAGE ?= openfunction/debian-base:bookworm
STACK_BASE_IMAGE ?= openfunction/python-stack-base:bookworm
BUILD_IMAGE ?= openfunction/python-build:bookworm
RUN_IMAGE ?= openfunction/python-run:bookworm
BUILDER_IMAGE ?= openfunction/builder-python:latest
SAMPLE_IMAGE ?= ofn-sample/hello:latest
DEMO_PORT ?= 8080
WHEELHOUSE_DIR := $(OFN_CACHE)/wheelhouse
LIFECYCLE := $(LIFECYCLE_DIR)/lifecycle
LIFECYCLE_MODULE_DIR = $(shell go env GOMODCACHE)/github.com/buildpacks/lifecycle@v$(LIFECYCLE_VERSION)
# CA bundle trusted while building wheels (a TLS-intercepting proxy's CA, if any)
HOST_CA_BUNDLE ?= $(firstword $(wildcard $(PIP_CERT) /etc/ssl/certs/ca-certificates.crt))
PACK_BUILD_FLAGS := --builder $(BUILDER_IMAGE) --trust-builder --pull-policy never --network host

export OFN_BUILDER_IMAGE := $(BUILDER_IMAGE)
export OFN_RUN_IMAGE := $(RUN_IMAGE)
# a stable key makes pack reuse its cache volumes across builds
export PACK_VOLUME_KEY ?= ofn-python

.PHONY: tools pack lifecycle wheels stacks base-image buildpack builder e2e-prereqs demo

$(PACK):
	tools/build-go-tool.sh github.com/buildpacks/pack v$(PACK_VERSION) $(OFN_CACHE)/bin/pack-v$(PACK_VERSION) \
	  github.com/buildpacks/pack=pack -- -ldflags "-s -w -X github.com/buildpacks/pack/pkg/client.Version=$(PACK_VERSION)"

$(LIFECYCLE):
	tools/build-go-tool.sh github.com/buildpacks/lifecycle v$(LIFECYCLE_VERSION) $(LIFECYCLE_DIR) \
	  github.com/buildpacks/lifecycle/cmd/lifecycle=lifecycle github.com/buildpacks/lifecycle/cmd/launcher=launcher \
	  -- -ldflags "-s -w -X github.com/buildpacks/lifecycle/cmd.Version=$(LIFECYCLE_VERSION)"

pack: system-build $(PACK)
lifecycle: system-build $(LIFECYCLE)
tools: pack lifecycle

base-image: system-build
	@if [ -z "$(BASE_IMAGE)" ]; then stacks/make-base.sh $(DEBOOTSTRAP_IMAGE); fi

stacks: base-image
	DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE_IMAGE=$(or $(BASE_IMAGE),$(DEBOOTSTRAP_IMAGE)) \
	  -t $(STACK_BASE_IMAGE) stacks/base >/dev/null
	DOCKER_BUILDKIT=0 docker build -q --network host --build-arg STACK_BASE=$(STACK_BASE_IMAGE) -t $(BUILD_IMAGE) stacks/build >/dev/null
	DOCKER_BUILDKIT=0 docker build -q --network host --build-arg STACK_BASE=$(STACK_BASE_IMAGE) -t $(RUN_IMAGE) stacks/run >/dev/null
	@docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^($(BUILD_IMAGE)|$(RUN_IMAGE)) '

# wheels for runtime[all] (and uv), built in the build image so the ABI matches
wheels: stacks
	HOST_CA_BUNDLE=$(HOST_CA_BUNDLE) stacks/build-wheelhouse.sh $(BUILD_IMAGE) runtime $(WHEELHOUSE_DIR) $(UV_VERSION)

# out/buildpack (what pack packages) and out/lifecycle.tgz (builder.toml's [lifecycle])
buildpack: wheels lifecycle
	stacks/stage-buildpack.sh . $(WHEELHOUSE_DIR)/wheels out/buildpack
	stacks/make-lifecycle-tgz.sh $(LIFECYCLE_DIR) $(LIFECYCLE_VERSION) $(LIFECYCLE_MODULE_DIR) out/lifecycle.tgz

builder: pack stacks buildpack
	stacks/make-builder.sh $(PACK) $(BUILDER_IMAGE) builder.toml $(BUILD_IMAGE) $(RUN_IMAGE)

e2e-prereqs: tools stacks builder

demo: system-build builder
	$(PACK) build $(SAMPLE_IMAGE) --path samples/hello $(PACK_BUILD_FLAGS)
	@name=ofn-demo-$$$$; \
	docker run -d --rm --name $$name --network host -e PORT=$(DEMO_PORT) $(SAMPLE_IMAGE) >/dev/null; \
	trap 'docker stop -t 2 '$$name' >/dev/null 2>&1 || true' EXIT; \
	for _ in $$(seq 1 50); do curl -fsS -o /dev/null http://127.0.0.1:$(DEMO_PORT)/ 2>/dev/null && break; sleep 0.2; done; \
	echo "GET http://127.0.0.1:$(DEMO_PORT)/ ->"; \
	curl -fsS http://127.0.0.1:$(DEMO_PORT)/ || { docker logs $$name; exit 1; }; \
	echo "image $(SAMPLE_IMAGE): $$(docker image inspect -f '{{.Size}}' $(SAMPLE_IMAGE) | awk '{printf "%.0f MB", $$1/1e6}')"

# ---------------------------------------------------------------------------------------
# Benchmarks (figures land in bench/results-*.md; see bench/README.md)
.PHONY: bench
bench: venv daprd builder
	$(VPY) bench/serving.py
	$(VPY) bench/plugins.py
	$(VPY) bench/tracing.py
	$(VPY) bench/instructions.py
	$(VPY) bench/dapr.py
	bash bench/build.sh
