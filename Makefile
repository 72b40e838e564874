# interca — two commands: `make serve` runs the service, `make test` runs the whole suite.
# Both set everything up on a fresh Debian machine (system packages, virtualenv, database).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
PROXY_VENV   := .venv-proxy
PROXY_LISTEN ?= 127.0.0.1:8081
ADMIN  ?= admin@example.com
# Debian packages the service and its tests need: openssl (the admin-side CLI the tests drive),
# softhsm2 and p11-kit (the embedded PKCS#11 "Cloud HSM", spec/hsm.md), and the real TLS clients
# of the end-to-end matrix (certificates.md §7): curl, nodejs, chromium, and libnss3-tools
# (certutil, which puts the test root into Chromium's NSS database).
DEB_PACKAGES := openssl softhsm2 p11-kit curl nodejs chromium libnss3-tools

.PHONY: serve test system-deps venv proxy-venv proxy lint check clean

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# `interca proxy` runs from its own virtualenv: mitmproxy 11.0.2 pins cryptography<44.1, which the
# test extra's Zscaler SDK (cryptography>=45) cannot share (see the `proxy` extra in pyproject.toml).
$(PROXY_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PROXY_VENV) && $(PROXY_VENV)/bin/pip install -q -e '.[proxy]'
	touch $@

proxy-venv: $(PROXY_VENV)/.installed

proxy: system-deps $(PROXY_VENV)/.installed
	$(PROXY_VENV)/bin/interca init
	$(PROXY_VENV)/bin/interca proxy --listen $(PROXY_LISTEN)

serve: system-deps $(VENV)/.installed
	$(BIN)/interca init --admin $(ADMIN)
	$(BIN)/interca serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/lint-imports
	$(BIN)/mypy

# Two workers: most integration tests wait on real processes (servers, TLS clients, browsers).
test: system-deps $(VENV)/.installed-test $(PROXY_VENV)/.installed lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2

clean:
	rm -rf $(VENV) $(PROXY_VENV) .pytest_cache .mypy_cache .ruff_cache
