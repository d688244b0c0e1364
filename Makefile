# Every target the README and CI run. `make demo` and `make test` do all set-up
# themselves on a fresh Debian machine (as root): apt packages, .venv, locked deps.
SHELL := /bin/bash
PY    := .venv/bin/python
APT_PACKAGES := docker-registry redis-server nginx-light skopeo wrk hey graphviz chromium \
	docker.io docker-compose podman debootstrap slapd ldap-utils prometheus \
	prometheus-node-exporter prometheus-process-exporter prometheus-nginx-exporter prometheus-redis-exporter
# command that proves each package is installed (same order as APT_PACKAGES)
APT_PROBES   := /usr/bin/docker-registry /usr/bin/redis-server /usr/sbin/nginx /usr/bin/skopeo /usr/bin/wrk /usr/bin/hey /usr/bin/dot /usr/bin/chromium \
	/usr/sbin/dockerd /usr/bin/docker-compose /usr/bin/podman /usr/sbin/debootstrap /usr/sbin/slapd /usr/bin/ldapadd /usr/bin/prometheus \
	/usr/bin/prometheus-node-exporter /usr/bin/prometheus-process-exporter /usr/bin/prometheus-nginx-exporter /usr/bin/prometheus-redis-exporter

.PHONY: demo test test-unit test-integration test-e2e lint deps venv lock images bench-token bench-identity bench-client bench-load bench-diagnose clean

# the field report retold: a badly shaped stack, skopeo checks, `keelhaul tune` step by step, stack down
demo: deps venv
	$(PY) -m keelhaul.demo

test: deps venv
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest tests/unit

test-integration: deps venv
	$(PY) -m pytest tests/integration

test-e2e: deps venv
	$(PY) -m pytest tests/e2e

# the stack's images from Debian packages and the locked wheels, built by a private dockerd
# whose data root (the cache) is /var/cache/keelhaul/docker; reused when present
images: deps venv
	$(PY) -m keelhaul.engine

lint: venv
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

bench-token: deps venv
	$(PY) bench/token_bench.py
	$(PY) bench/identity_bench.py

# the identity rows alone (an LDAP user against an htpasswd user, warm and cold)
bench-identity: deps venv
	$(PY) bench/identity_bench.py

bench-client: deps venv
	$(PY) bench/client_bench.py

bench-diagnose: deps venv
	$(PY) bench/diagnose_bench.py

bench-load: deps venv
	$(PY) bench/load_bench.py

# --- set-up ---------------------------------------------------------------
deps:
	@missing=""; probes=($(APT_PROBES)); pkgs=($(APT_PACKAGES)); \
	for i in "$${!pkgs[@]}"; do [ -x "$${probes[$$i]}" ] || missing="$$missing $${pkgs[$$i]}"; done; \
	python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: .venv/.installed

.venv/.installed: locks/dev.txt pyproject.toml
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r locks/dev.txt
	.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Re-pin after editing pyproject.toml dependencies (pip-tools, pinned; not run by CI).
lock: venv
	.venv/bin/python -m pip install -q pip-tools==7.4.1
	.venv/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --all-extras --all-build-deps \
	  --no-emit-find-links --no-emit-index-url -o locks/dev.txt pyproject.toml
	.venv/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --extra auth \
	  --no-emit-find-links --no-emit-index-url -o locks/auth.txt pyproject.toml

clean:
	rm -rf .venv .keelhaul .pytest_cache .mypy_cache .ruff_cache
