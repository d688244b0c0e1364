# syntax=docker/dockerfile:1
# The token service (`keelhaul auth serve`) and nothing else: the `auth` extra only, every
# package from a hash pinned in locks/. Build from the repository root:
#
#   docker build -f deploy/auth.Dockerfile -t keelhaul-auth:0.1.0 .
#
# Configure it with a config file (KEELHAUL_AUTH_CONFIG, mounted from a ConfigMap) and
# KEELHAUL_AUTH_* variables; gunicorn's settings are `server.*` keys, so e.g.
# KEELHAUL_AUTH_SERVER__WORKERS=4, KEELHAUL_AUTH_SERVER__WORKER_CLASS=gevent,
# KEELHAUL_AUTH_SERVER__WORKER_CONNECTIONS=1000, KEELHAUL_AUTH_SERVER__TIMEOUT=180.
# `keelhaul stack render` writes the compose file and manifests that run it.
#
# PYTHON_IMAGE may be any image with python3.11 and pip as `python`/`pip` on PATH: `make images`
# passes its debootstrap base (no registry reachable) and PIP_NO_INDEX=1 with PIP_FIND_LINKS
# set to the locked wheels it serves on 127.0.0.1; left unset, pip uses PyPI.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# the build backend, pinned with hashes like everything else (its lines of locks/dev.txt)
COPY locks/dev.txt locks/dev.txt
COPY deploy/lock_subset.py deploy/lock_subset.py
RUN python deploy/lock_subset.py locks/dev.txt > /tmp/build.txt \
 && pip install --require-hashes --no-deps -r /tmp/build.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    KEELHAUL_AUTH_CONFIG=/etc/keelhaul/config/auth.yml \
    PROMETHEUS_MULTIPROC_DIR=/var/run/keelhaul/metrics
COPY locks/auth.txt /tmp/auth.txt
RUN pip install --require-hashes --no-deps -r /tmp/auth.txt && rm /tmp/auth.txt
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin keelhaul \
 && mkdir -p /etc/keelhaul/config /etc/keelhaul/users /etc/keelhaul/keys \
        /var/run/keelhaul/metrics \
 && chown keelhaul:keelhaul /var/run/keelhaul/metrics
EXPOSE 8000
# no curl in a slim image: the interpreter that is there does the probe
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
STOPSIGNAL SIGTERM
CMD ["keelhaul", "auth", "serve"]
# last, so that a source change rebuilds only these three steps (and the build stage's
# wheel): the classic builder with vfs copies the whole file system for every step
COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels
USER 10001
