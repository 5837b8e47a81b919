# Two commands for a newcomer (see README.md):
#   make synth   - install, then synthesize the CDK app with the default config
#   make test    - install what the tests need, then run the whole suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
CDK := node_modules/.bin/cdk
# jsii (the bridge between Python and the CDK's JavaScript) runs on Node 22 from npm,
# not the machine's Node 20 (end of life since 2026-10-30).
export JSII_NODE := $(CURDIR)/node_modules/.bin/node
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

SYNTH_STAMP := $(VENV)/.synth-installed
DEV_STAMP := $(VENV)/.dev-installed
NODE_STAMP := node_modules/.installed
VLLM_STAMP := .venv-vllm/.installed
CHECKOV_STAMP := .venv-checkov/.installed
CONFIG ?=
CDK_CONTEXT := $(if $(CONFIG),-c config_file=$(CONFIG))

.PHONY: help synth test local manifests bench-synth bench-gateway bench-routing bench-upload bench-local bench-overload deps deps-dev deps-engine deps-browser deps-promtool deps-registry deps-checkov clean chart-imports metrics test-fast gateway-lambda

help:
	@echo "make synth   install and synthesize the app (CONFIG=my.yaml to override the default config)"
	@echo "make test    install test dependencies and run the whole suite"
	@echo "make test-fast  the suite without the engine, browser and registry tests (prints its wall time)"
	@echo "make metrics    the largest functions and the import graph between our packages"
	@echo "make local   install the tools and the CPU engine, start the local stack (stop: .venv/bin/qvllm local down)"
	@echo "make manifests | bench-synth | bench-gateway | bench-routing | bench-upload | bench-local | bench-overload | chart-imports | gateway-lambda"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(SYNTH_STAMP): requirements.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt
	@touch $@

$(DEV_STAMP): $(SYNTH_STAMP) requirements-dev.txt services/gateway/requirements.txt pyproject.toml
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q --no-deps -e .
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(VLLM_STAMP): requirements-vllm.txt requirements-vllm-model.txt scripts/install-vllm-venv.sh
	bash scripts/install-vllm-venv.sh .venv-vllm
	@touch $@

# checkov in its own venv: its pins (boto3, botocore, packaging) conflict with requirements-dev.txt.
$(CHECKOV_STAMP): requirements-checkov.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip --disable-pip-version-check install -q -r requirements-checkov.txt
	@touch $@

deps: $(SYNTH_STAMP) $(NODE_STAMP)
deps-dev: deps $(DEV_STAMP)
deps-engine: $(VLLM_STAMP)
deps-checkov: $(CHECKOV_STAMP)
# The browser test drives $(CHROMIUM_PATH) (any Chromium or Chrome); Debian's chromium by default.
CHROMIUM_PATH ?= /usr/bin/chromium
deps-browser:
	@test -x "$(CHROMIUM_PATH)" || { apt-get update -q && apt-get install -y -q chromium; }
# The deploy rehearsal (tests/stacks/test_deploy_rehearsal.py) serves Helm charts from a real OCI
# registry on loopback: Debian's docker-registry (CNCF distribution), its binary unpacked into
# .tools/ only (the package would also start a system service on :5000).
REGISTRY := .tools/docker-registry
deps-registry:
	@test -x $(REGISTRY) || { mkdir -p .tools/deb-registry && cd .tools/deb-registry && \
	  { apt-get download docker-registry 2>/dev/null || { apt-get update -q && apt-get download docker-registry; }; } && \
	  dpkg-deb -x docker-registry_*.deb root && cp root/usr/bin/docker-registry ../docker-registry && cd .. && rm -rf deb-registry; }

synth: deps
	$(CDK) synth --quiet $(CDK_CONTEXT)
	$(PY) scripts/list_stacks.py cdk.out

# promtool (Prometheus' own relabeling, the code the collector's Prometheus receiver runs) from
# Debian's prometheus package, unpacked into .tools/ only: nothing is installed or started.
PROMTOOL := .tools/promtool
deps-promtool:
	@test -x $(PROMTOOL) || { mkdir -p .tools/deb && cd .tools/deb && \
	  { apt-get download prometheus 2>/dev/null || { apt-get update -q && apt-get download prometheus; }; } && \
	  dpkg-deb -x prometheus_*.deb root && cp root/usr/bin/promtool ../promtool && cd .. && rm -rf deb; }

test: deps-dev deps-engine deps-browser deps-promtool deps-registry deps-checkov
	$(PY) -m pytest

# The inner loop: everything but the tests that start the vLLM engine, drive a browser, run a
# registry or run a whole tool (pytest markers engine, browser, registry, slow; make test runs
# them all); installs neither the engine nor Chromium.
# Four pytest-xdist workers (many tests wait on sockets and timers); the tests of the synthesized
# app share one worker (tests/conftest.py), so the app is synthesized once.
FAST_MARKERS := not engine and not browser and not registry and not slow
# Compiled modules and pytest's rewritten test modules are cached in __pycache__ even where the
# environment sets PYTHONDONTWRITEBYTECODE (empty means unset to Python): each of the four workers
# otherwise compiles and rewrites every test module again, about 2.5 s of CPU each, every run.
test-fast: export PYTHONDONTWRITEBYTECODE :=
test-fast: deps-dev deps-promtool
	@TIMEFORMAT='test-fast wall time: %R s'; time $(PY) -m pytest -q -m "$(FAST_MARKERS)" -n 4 --dist loadgroup

local: deps-dev deps-engine
	$(VENV)/bin/qvllm local up

# Regenerate the typed classes of the custom resources our charts render (k8s_charts/imports/).
# The largest functions (lines, cyclomatic complexity) and the import graph between our packages.
metrics: deps-dev
	$(PY) scripts/code_metrics.py

chart-imports: deps
	$(PY) scripts/gen_chart_imports.py

# The gateway's non-streaming API as an AWS Lambda deployment package (see README "The gateway"):
# handler services.gateway.lambda_handler.handler, runtime python$(LAMBDA_PYTHON), x86_64.
LAMBDA_PYTHON ?= 3.12
LAMBDA_BUILD := build/gateway-lambda
gateway-lambda: | $(VENV)/bin/python
	rm -rf $(LAMBDA_BUILD) $(LAMBDA_BUILD).zip && mkdir -p $(LAMBDA_BUILD)/services
	$(PIP) install -q --target $(LAMBDA_BUILD) --platform manylinux2014_x86_64 --implementation cp \
		--python-version $(LAMBDA_PYTHON) --only-binary=:all: -r services/gateway/requirements.txt
	cp services/__init__.py $(LAMBDA_BUILD)/services/
	cp -r services/gateway $(LAMBDA_BUILD)/services/gateway
	find $(LAMBDA_BUILD) -name __pycache__ -prune -exec rm -rf {} +
	cd $(LAMBDA_BUILD) && $(CURDIR)/$(PY) -m zipfile -c ../gateway-lambda.zip *
	@echo "wrote $(LAMBDA_BUILD).zip (handler services.gateway.lambda_handler.handler, runtime python$(LAMBDA_PYTHON))"

manifests: deps-dev
	$(PY) scripts/render_manifests.py manifests $(CDK_CONTEXT)

bench-synth: deps-dev
	$(PY) bench/synth.py

bench-gateway: deps-dev deps-engine
	$(PY) bench/gateway.py

# Fake upstreams vs the gateway vs vllm-router (installed by the script into .bench/).
bench-routing: deps-dev
	$(PY) bench/routing.py

bench-upload: deps-dev
	$(PY) bench/upload.py

bench-local: deps-dev deps-engine
	$(PY) bench/local.py

# 10x the gateway's admission capacity against the local stack: every request completes, or is
# answered 429/503 with Retry-After; prints the counts (lost and hung must be 0).
bench-overload: deps-dev deps-engine
	$(PY) bench/overload.py

clean:
	rm -rf cdk.out manifests .pytest_cache
