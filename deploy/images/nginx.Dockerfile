# nginx from Debian's nginx-light (stub_status included), for hosts that cannot pull the
# official `nginxinc/nginx-unprivileged`. `make images` builds it FROM its debootstrap base:
#   docker build -f deploy/images/nginx.Dockerfile --build-arg BASE=keelhaul-local/base:bookworm .
# Runs as uid 101 like the unprivileged image; the rendered nginx.conf keeps its pid file and
# temp paths in /tmp and logs to stdout/stderr; `wget` for the health check.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && ln -sf /dev/stderr /var/log/nginx/error.log \
 && ln -sf /dev/stdout /var/log/nginx/access.log
USER 101:101
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
