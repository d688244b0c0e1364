# Redis from Debian's redis-server (redis-cli included), for hosts that cannot pull the
# official `redis:7.2-alpine`. `make images` builds it FROM its debootstrap base:
#   docker build -f deploy/images/redis.Dockerfile --build-arg BASE=keelhaul-local/base:bookworm .
# Runs as uid 999 like the official image; working directory /data.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && install -d -o 999 -g 999 -m 0755 /data
WORKDIR /data
USER 999:999
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
