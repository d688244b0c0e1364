# The registry from Debian's docker-registry package (distribution 2.8), for hosts that cannot
# pull the official `registry:2.8.3`. `make images` builds it FROM its debootstrap base:
#   docker build -f deploy/images/registry.Dockerfile --build-arg BASE=keelhaul-local/base:bookworm .
# Same contract as the official image: config at /etc/docker/registry/config.yml, data in
# /var/lib/registry (owned by uid 1000, the user the rendered compose file runs it as, so a
# fresh named volume starts writable), busybox-like `wget` for the health check.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && install -d -o 1000 -g 1000 -m 0755 /var/lib/registry
USER 1000:1000
EXPOSE 5000 5001
ENTRYPOINT ["/usr/bin/docker-registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
