"""nginx in front of the stack: the single entry point, tuned as a registry proxy. Pure.

``/v2/`` goes to the registry and ``/token`` to the token service; nothing else is served
(``/healthz`` answers for probes, ``stub_status`` listens on a loopback-only port). What
makes it a *registry* proxy, each against a failure the field report saw or an operator
would otherwise meet:

* blobs stream in both directions (``proxy_request_buffering off``, ``proxy_buffering
  off``): nginx never spools a multi-GiB layer to its temp directory, and a push is not
  held until the whole body has arrived;
* ``client_max_body_size 0`` (the default 1 MiB refuses every real layer) and read/send
  timeouts measured in minutes, between two reads, so slow multi-GiB pushes survive;
* ``worker_processes auto`` and thousands of ``worker_connections`` (each proxied request
  holds two), keep-alive to both upstreams so that no request pays a TCP handshake;
* ``Docker-Distribution-Api-Version`` on every ``/v2/`` answer, nginx's own errors
  included; ``X-Forwarded-*`` set from what nginx saw, never passed on from the client,
  so the tiers behind it can trust them; the upstream's ``Date`` passed through, so that
  ``stack doctor`` can see the clocks behind the proxy;
* one JSON line per request with the upstream timings, for the diagnosis.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from keelhaul.stack.layout import NGINX_TEMP_DIRS
from keelhaul.stack.plan import StackPlan

__all__ = [
    "ACCESS_LOG_FIELDS",
    "BLOB_TIMEOUT",
    "JSON_ERRORS",
    "STATUS_PATH",
    "nginx_argv",
    "render_nginx_conf",
]

BLOB_TIMEOUT = "900s"
"""Between two reads or writes, not for the whole transfer: a stalled multi-GiB push fails
after 15 minutes of silence, a slow one never does."""

STATUS_PATH = "/nginx_status"

ACCESS_LOG_FIELDS: tuple[tuple[str, str, bool], ...] = (
    # (JSON key, nginx variable, quoted)
    ("time", "$time_iso8601", True),
    ("request_id", "$request_id", True),
    ("remote_addr", "$remote_addr", True),
    ("method", "$request_method", True),
    ("uri", "$request_uri", True),
    ("protocol", "$server_protocol", True),
    ("status", "$status", False),
    ("bytes_sent", "$bytes_sent", False),
    ("body_bytes_sent", "$body_bytes_sent", False),
    ("request_length", "$request_length", False),
    ("request_time", "$request_time", False),
    # "-" when no upstream was asked, "a, b" after a retry: strings, not numbers
    ("upstream_addr", "$upstream_addr", True),
    ("upstream_status", "$upstream_status", True),
    ("upstream_connect_time", "$upstream_connect_time", True),
    ("upstream_header_time", "$upstream_header_time", True),
    ("upstream_response_time", "$upstream_response_time", True),
    ("connection", "$connection", False),
    ("connection_requests", "$connection_requests", False),
    ("user_agent", "$http_user_agent", True),
)

JSON_ERRORS: tuple[tuple[int, int, str, str], ...] = (
    # (nginx's status, status sent, Docker error code, message): nginx's own refusals in the
    # token service's format; the first three can happen before a location is chosen
    (400, 400, "BAD_REQUEST", "malformed request"),
    (414, 414, "SIZE_INVALID", "request line too long"),
    (494, 431, "SIZE_INVALID", "request header fields too large"),
    (413, 413, "SIZE_INVALID", "request body too large"),
    (502, 502, "UNAVAILABLE", "the token service is not reachable"),
    (504, 504, "UNAVAILABLE", "the token service did not answer in time"),
)
"""Docker-style JSON bodies for nginx's own errors: server-wide for the early ones, and on
``/token`` for all; the token service's own answers pass through untouched."""
_EARLY_ERRORS = (400, 414, 494)
_ERROR_URI = "/.keelhaul/errors/"

_KEEPALIVE = {"registry": 64, "auth": 32}
"""Idle upstream connections kept per worker."""


def _log_format() -> str:
    parts = []
    for key, variable, quoted in ACCESS_LOG_FIELDS:
        value = f'"{variable}"' if quoted else variable
        parts.append(f'"{key}":{value}')
    return "'{" + ",".join(parts) + "}'"


def _temp_paths(plan: StackPlan) -> Iterator[str]:
    for kind in NGINX_TEMP_DIRS:
        yield f"{kind}_temp_path {plan.files.nginx_temp}/{kind};"


def _proxy_headers() -> list[str]:
    return [
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";  # keep-alive to the upstreams',
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "# set, not appended: nginx is the edge, a client's own X-Forwarded-* is dropped",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        "proxy_set_header X-Request-Id $request_id;",
        "proxy_pass_header Date;  # the upstream's clock, for stack doctor",
        "proxy_connect_timeout 5s;",
    ]


def _tls(plan: StackPlan) -> list[str]:
    if not plan.settings.tls:
        return []
    return [
        f"ssl_certificate {plan.files.tls_cert};",
        f"ssl_certificate_key {plan.files.tls_key};",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_prefer_server_ciphers off;",
        "ssl_session_cache shared:keelhaul_tls:10m;",
        "ssl_session_timeout 1h;",
        "ssl_session_tickets off;",
    ]


def _upstream(plan: StackPlan, name: str) -> list[str]:
    return [
        f"upstream {name} {{",
        f"    server {plan.peer(name)} max_fails=0;",
        f"    keepalive {_KEEPALIVE[name]};",
        "    keepalive_requests 10000;",
        "    keepalive_timeout 60s;",
        "}",
    ]


def _block(lines: list[str], indent: str = "    ") -> list[str]:
    return [f"{indent}{line}" if line else "" for line in lines]


def _json_error_pages(statuses: tuple[int, ...]) -> list[str]:
    # a URI, not a named location: nginx cannot redirect to a named location before it
    # has read the request line (414), it answers 500 instead
    sent = {status: sent for status, sent, *_ in JSON_ERRORS}
    return [f"error_page {status} ={sent[status]} {_ERROR_URI}{status};" for status in statuses]


def _json_error_locations() -> list[str]:
    lines: list[str] = []
    api_version = "$docker_distribution_api_version"
    for status, sent, code, message in JSON_ERRORS:
        body = json.dumps(
            {"errors": [{"code": code, "message": message, "detail": None}]},
            separators=(",", ":"),
        )
        lines += [
            f"location = {_ERROR_URI}{status} {{",
            "    internal;",
            "    default_type application/json;",
            "    add_header Cache-Control no-store always;",
            f"    add_header Docker-Distribution-Api-Version {api_version} always;",
            f"    return {sent} '{body}';",
            "}",
        ]
    return lines


def _entry_server(plan: StackPlan) -> list[str]:
    ssl = " ssl" if plan.settings.tls else ""
    v2 = [
        "location /v2/ {",
        "    proxy_pass http://registry;",
        "    # blob routes: stream, never spool a layer to disk",
        "    proxy_request_buffering off;",
        "    proxy_buffering off;",
        "    proxy_max_temp_file_size 0;",
        f"    proxy_read_timeout {BLOB_TIMEOUT};",
        f"    proxy_send_timeout {BLOB_TIMEOUT};",
        "    add_header Docker-Distribution-Api-Version $docker_distribution_api_version always;",
        "}",
    ]
    token = [
        "location = /token {",
        "    proxy_pass http://auth;",
        "    client_max_body_size 64k;",
        "    proxy_read_timeout 60s;",
        *_block(_json_error_pages(tuple(status for status, *_ in JSON_ERRORS))),
        "}",
    ]
    health = [
        "location = /healthz {",
        "    access_log off;",
        "    default_type text/plain;",
        '    return 200 "ok\\n";',
        "}",
    ]
    rest = ["location / {", "    return 404;", "}"]
    body = [
        f"listen {plan.bind('nginx')}{ssl} backlog=4096;",
        "server_name _;",
        *_tls(plan),
        "",
        "client_max_body_size 0;  # layers of any size",
        f"client_body_timeout {BLOB_TIMEOUT};",
        f"send_timeout {BLOB_TIMEOUT};",
        "chunked_transfer_encoding on;",
        *_proxy_headers(),
        *_json_error_pages(_EARLY_ERRORS),
        "",
        *v2,
        *token,
        *health,
        *rest,
        *_json_error_locations(),
    ]
    return ["server {", *_block(body), "}"]


def _status_server(plan: StackPlan) -> list[str]:
    body = [
        f"listen {plan.bind('nginx_status')};",
        "access_log off;",
        f"location = {STATUS_PATH} {{",
        "    stub_status;",
        "    allow 127.0.0.1;",
        "    deny all;",
        "}",
        "location / {",
        "    return 404;",
        "}",
    ]
    return ["# loopback only: the diagnosis reads it", "server {", *_block(body), "}"]


def render_nginx_conf(plan: StackPlan, *, user: str | None = None) -> str:
    """``user``: only when the master runs as root (workers otherwise drop to ``nobody``)."""
    settings = plan.settings
    # auto is one per CPU of the host: a container's CPU limit is not seen, so say it there
    count = settings.proxy_workers if settings.proxy_workers is not None else plan.cpus
    workers = str(count) if count is not None else "auto"
    connections = settings.proxy_connections
    files = plan.files
    main = [
        f"# nginx in front of the keelhaul stack ({plan.target}); rendered by keelhaul.stack.nginx",
        *([f"user {user};"] if user is not None else []),
        f"worker_processes {workers};",
        f"worker_rlimit_nofile {2 * connections + 256};",
        f"pid {files.nginx_pid};",
        f"error_log {files.error_log} warn;",
        "",
        "events {",
        f"    worker_connections {connections};",
        "    multi_accept on;",
        "}",
        "",
    ]
    http = [
        "default_type application/octet-stream;",
        "server_tokens off;",
        "tcp_nodelay on;",
        "keepalive_timeout 75s;",
        "keepalive_requests 10000;",
        *_temp_paths(plan),
        "",
        f"log_format keelhaul_json escape=json {_log_format()};",
        f"access_log {files.access_log} keelhaul_json buffer=64k flush=1s;",
        "",
        "# the registry's own header, also on nginx's own answers (502, 504, 413...)",
        "map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {",
        "    '' 'registry/2.0';",
        "}",
        "",
        *_upstream(plan, "registry"),
        *_upstream(plan, "auth"),
        "",
        *_entry_server(plan),
        "",
        *_status_server(plan),
    ]
    return "\n".join([*main, "http {", *_block(http), "}", ""])


def nginx_argv(binary: str, plan: StackPlan, prefix: str) -> list[str]:
    """``-e``: even errors before the config is read go to the stack's own log."""
    return [
        binary,
        "-p", prefix,
        "-c", plan.files.nginx_config,
        "-e", plan.files.error_log,
        "-g", "daemon off;",
    ]  # fmt: skip
