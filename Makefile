# edgeq — two commands: `make run` and `make test`. Everything else is set up on demand.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# command-or-file:Debian package; a package is installed only when the first is missing
SYSTEM_DEPS := /usr/sbin/mosquitto:mosquitto mosquitto_pub:mosquitto-clients \
	pkg-config:pkg-config /usr/include/systemd/sd-daemon.h:libsystemd-dev \
	systemd-analyze:systemd node:nodejs npm:npm
PYTEST_ARGS ?=

.PHONY: run test test-slow lint typecheck bench demo image deb system-deps node-deps clean docs

run: $(VENV)/.installed
	$(BIN)/edgeq serve --listen 127.0.0.1:1883 --data-dir var

test: system-deps $(VENV)/.installed node-deps lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

test-slow: system-deps $(VENV)/.installed node-deps
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check gateway tui tests bench image
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed
	$(BIN)/mypy

bench: system-deps $(VENV)/.installed
	$(BIN)/python -m bench

demo: $(VENV)/.installed
	$(BIN)/edgeq demo

image:
	$(MAKE) -C image

# The edgeq Debian package for a gateway made from the image (docs/image.md, "Updating edgeq").
deb:
	$(MAKE) -C image deb

# Debian packages the gateway, the tests and the benchmarks use; installed only when missing.
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
	  what=$${dep%%:*}; pkg=$${dep##*:}; \
	  [ -e "$$what" ] || command -v "$$what" >/dev/null || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml Makefile
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[tui,appliance,device,test]'
	@if pkg-config --exists libsystemd 2>/dev/null; then $(BIN)/pip install -q -e '.[systemd]'; fi
	@touch $@

node-deps: tests/firmware/node_modules/.installed

tests/firmware/node_modules/.installed: tests/firmware/package.json tests/firmware/package-lock.json
	cd tests/firmware && npm ci --no-audit --no-fund --silent
	@touch $@

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .hypothesis
