# The registry from Debian's docker-registry package (distribution 2.8), for hosts that cannot
# pull the official `registry:2.8.3`. `make images` builds it FROM its debootstrap base:
#   docker build -f deploy/images/registry.Dockerfile --build-arg BASE=keelhaul-local/base:bookworm .
# Same contract as the official image, on purpose including its awkward part: config at
# /etc/docker/registry/config.yml, data in a root-owned VOLUME /var/lib/registry and no USER.
# The rendered compose file runs the registry as uid 1000, so a fresh named volume is not
# writable until its one-shot `registry-data-init` service has chowned it (Kubernetes: the
# pod's fsGroup); building this image like the official one keeps that path tested here.
# `wget` is for the health check (the official image has busybox's).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
VOLUME ["/var/lib/registry"]
EXPOSE 5000 5001
ENTRYPOINT ["/usr/bin/docker-registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
