"""The token service's HTTP edge: a Flask app factory.

Serve it with ``keelhaul auth serve`` (gunicorn + gevent), or with any WSGI server as
``keelhaul.auth.app:create_app()`` (settings from ``KEELHAUL_AUTH_CONFIG``). This module is
the one place where errors become HTTP responses: a Docker-style ``{"errors": [...]}``
body, ``WWW-Authenticate`` on 401, ``Retry-After`` on 429, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from keelhaul.auth.audit import AuditLog
from keelhaul.auth.headerlimits import header_limits
from keelhaul.auth.headerlimits import measure as measure_headers
from keelhaul.auth.metrics import Metrics
from keelhaul.auth.openapi import openapi_document
from keelhaul.auth.service import Progress, TokenRequest
from keelhaul.auth.settings import AuthSettings, load_auth_settings
from keelhaul.auth.wiring import Parts, build
from keelhaul.errors import (
    BackendError,
    BadRequest,
    PayloadTooLarge,
    RequestError,
    ScopeError,
    TooManyRequests,
    Unauthorized,
)

__all__ = ["LeanTokenPath", "create_app", "parse_get", "shutdown"]

log = logging.getLogger(__name__)


_NO_STORE = {"Cache-Control": "no-store"}
_OUTCOMES: dict[type[RequestError], str] = {
    Unauthorized: "unauthorized",
    TooManyRequests: "throttled",
    PayloadTooLarge: "too_large",
    BadRequest: "bad_request",
    ScopeError: "bad_scope",
}


Answer = tuple[int, list[tuple[str, str]], bytes]
"""Status, headers, body: what both paths to ``/token`` send (see :class:`LeanTokenPath`)."""

_JSON = "application/json"


def _error_bytes(code: str, message: str) -> bytes:
    document = {"errors": [{"code": code, "message": message, "detail": None}]}
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def _error_body(code: str, message: str, status: int) -> Response:
    return Response(_error_bytes(code, message), status=status, mimetype=_JSON)


def _as_response(answer: Answer) -> Response:
    status, headers, body = answer
    return Response(body, status=status, headers=headers)


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise BadRequest(
            "unsupported Authorization scheme; the token endpoint takes Basic credentials",
            code="INVALID_REQUEST",
        )
    try:
        raw = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest(
            "malformed Basic credentials in the Authorization header", code="INVALID_REQUEST"
        ) from None
    username, sep, password = raw.partition(":")
    if not sep or not username:
        raise BadRequest(
            "malformed Basic credentials: expected base64(username:password)",
            code="INVALID_REQUEST",
        )
    return username, password


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def parse_get(
    settings: AuthSettings, query: bytes, authorization: str | None, client_ip: str
) -> TokenRequest:
    """``GET /token``'s query and ``Authorization`` → :class:`TokenRequest` (Docker's way).
    Raises :class:`RequestError` subclasses only."""
    if len(query) > settings.limits.max_query_bytes:
        raise PayloadTooLarge(f"query string over {settings.limits.max_query_bytes} bytes")
    first: dict[str, str] = {}
    scopes: list[str] = []
    # werkzeug's request.args, without building a request: blanks kept, bad UTF-8 replaced
    text = query.decode("utf-8", "replace")
    for key, value in parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"):
        if key == "scope":
            scopes.append(value)
        first.setdefault(key, value)
    username = password = None
    if authorization is not None:
        username, password = _basic_credentials(authorization)
    return TokenRequest(
        grant="basic" if username is not None else "anonymous",
        service=first.get("service"),
        scopes=tuple(scopes),
        client_ip=client_ip,
        username=username,
        password=password,
        offline=_truthy(first.get("offline_token")),
        client_id=first.get("client_id"),
        account=first.get("account"),
    )


def parse_token_request(settings: AuthSettings) -> TokenRequest:
    """Flask request → :class:`TokenRequest`. Raises :class:`RequestError` subclasses only."""
    if len(request.query_string) > settings.limits.max_query_bytes:
        raise PayloadTooLarge(f"query string over {settings.limits.max_query_bytes} bytes")
    client_ip = request.remote_addr or ""
    if request.method == "GET":
        authorization = request.headers.get("Authorization")
        return parse_get(settings, request.query_string, authorization, client_ip)
    # POST: the OAuth2 form (https://distribution.github.io/distribution/spec/auth/oauth/)
    if request.mimetype != "application/x-www-form-urlencoded":
        raise BadRequest(
            "POST /token takes an application/x-www-form-urlencoded body", code="INVALID_REQUEST"
        )
    form = request.form
    grant_type = form.get("grant_type")
    scopes = tuple(form.getlist("scope"))
    common: dict[str, Any] = {
        "service": form.get("service"),
        "scopes": scopes,
        "client_ip": client_ip,
        "offline": form.get("access_type") == "offline",
        "client_id": form.get("client_id"),
    }
    if not common["client_id"]:
        raise BadRequest("client_id is required", code="INVALID_REQUEST")
    if grant_type == "password":
        return TokenRequest(
            grant="password", username=form.get("username"), password=form.get("password"), **common
        )
    if grant_type == "refresh_token":
        return TokenRequest(
            grant="refresh_token", refresh_token=form.get("refresh_token"), **common
        )
    if grant_type is None:
        raise BadRequest(
            "grant_type is required (password or refresh_token)", code="INVALID_REQUEST"
        )
    raise BadRequest("unsupported grant_type; use password or refresh_token", code="UNSUPPORTED")


class _Endpoints:
    """The routes' bodies; one instance per app, holding that app's parts."""

    def __init__(self, settings: AuthSettings, parts: Parts) -> None:
        self.settings = settings
        self.parts = parts
        self.service = parts.service
        self.metrics = Metrics()
        self.audit = AuditLog(settings.audit)
        self._www_authenticate = f'Basic realm="{settings.realm}"'
        self._ok_headers = [("Content-Type", _JSON), ("Cache-Control", "no-store")]
        self._degraded_shown = False
        self._kinds = {b.name: b.kind for b in parts.backends}
        server = settings.server
        self.metrics.capacity.set(
            {"sync": 1, "gthread": server.threads}.get(
                server.worker_class, server.worker_connections
            )
        )

    def token(self) -> Response:
        """``/token`` through Flask: the OAuth2 ``POST`` form (``GET`` takes the lean path)."""
        client_ip = request.remote_addr or ""
        request_id = g.get("request_id") or ""
        return _as_response(
            self.answer(lambda: parse_token_request(self.settings), client_ip, request_id)
        )

    def answer(self, parse: Callable[[], TokenRequest], client_ip: str, request_id: str) -> Answer:
        """One token request, parse to audit line; errors become their Docker-style answer
        here, for both paths."""
        started = time.perf_counter()
        progress = Progress()
        req: TokenRequest | None = None
        self.metrics.inflight.inc()
        status, outcome = 500, "error"
        granted: list[str] = []
        try:
            req = parse()
            issued = self.service.issue(req, progress)
            status, outcome = 200, "issued"
            granted = [str(s) for s in issued.granted if s.actions]
            body = json.dumps(issued.body, separators=(",", ":")).encode()
            return 200, [*self._ok_headers, ("Content-Length", str(len(body)))], body
        except RequestError as exc:
            status, outcome = exc.status, _OUTCOMES.get(type(exc), "bad_request")
            body = _error_bytes(exc.code, exc.message)
            headers = [("Content-Type", _JSON), ("Content-Length", str(len(body)))]
            if exc.status == 401:
                headers.append(("WWW-Authenticate", self._www_authenticate))
            if isinstance(exc, TooManyRequests):
                headers.append(("Retry-After", str(exc.retry_after)))
            return exc.status, headers, body
        except BackendError:
            log.exception("user store failed")
            status, outcome = 503, "backend_error"
            body = _error_bytes("UNAVAILABLE", "user store unavailable; try again shortly")
            return 503, [("Content-Type", _JSON), ("Content-Length", str(len(body)))], body
        finally:
            self.metrics.inflight.dec()
            elapsed = time.perf_counter() - started
            self._account(req, progress, status, outcome, granted, elapsed, client_ip, request_id)

    def _account(
        self,
        req: TokenRequest | None,
        progress: Progress,
        status: int,
        outcome: str,
        granted: list[str],
        elapsed: float,
        client_ip: str,
        request_id: str,
    ) -> None:
        m = self.metrics
        grant = req.grant if req is not None else "unknown"
        m.add(m.requests_for(outcome, grant))
        m.observe(m.request_seconds_for(outcome), elapsed)
        cache_label = progress.cache or "none"
        for stage, seconds in progress.stages.items():
            m.observe(m.stage_seconds_for(stage, cache_label if stage == "authn" else ""), seconds)
        if progress.cache is not None:
            m.add(m.cache_for(progress.cache))
        trace = progress.authn
        if trace.result:
            backend = trace.backend or "none"
            kind = self._kinds.get(trace.backend, "none")
            m.add(m.authn_for(backend, kind, trace.result))
            m.observe(m.authn_seconds_for(backend, kind, trace.result), trace.seconds)
        self._backend_events()
        m.settle()
        shared = self.parts.shared
        if shared is not None and shared.degraded != self._degraded_shown:
            self._degraded_shown = shared.degraded  # a gauge write only on change
            m.redis_degraded.set(1 if shared.degraded else 0)
        if not self.audit.enabled:
            return
        record: dict[str, object] = {
            "ts": self.audit.timestamp(),
            "request_id": request_id,
            "client_ip": client_ip,
            "account": progress.account,
            "backend": progress.backend or None,
            "grant": grant,
            "client_id": req.client_id if req is not None else None,
            "service": req.service if req is not None else None,
            "requested": [str(s) for s in progress.requested],
            "granted": granted,
            "outcome": outcome,
            "status": status,
            "cache": progress.cache,
            "reused": progress.reused,
            "duration_ms": round(elapsed * 1000, 3),
        }
        if progress.identity:
            record["identity"] = dict(progress.identity)  # which CI job (verified claims)
        self.audit.record(record)

    def _backend_events(self) -> None:
        m = self.metrics
        for backend in self.parts.backends:
            for event, n in backend.events.drain().items():
                m.add(m.backend_events_for(backend.name, backend.kind, event), n)

    def _backend_health(self) -> dict[str, dict[str, object]]:
        checks: dict[str, dict[str, object]] = {}
        for backend in self.parts.backends:
            ok, detail = backend.health()
            checks[f"users.{backend.name}"] = {"ok": ok, "detail": detail}
            self.metrics.backend_up.labels(backend.name, backend.kind).set(1 if ok else 0)
        return checks

    def healthz(self) -> Response:
        checks: dict[str, dict[str, object]] = {}
        status = "ok"
        signer = self.service.keys.signer
        days_left = (signer.not_after.timestamp() - time.time()) / 86400
        checks["keys"] = {
            "ok": True,
            "signing_kid": signer.kid,
            "cert_days_left": int(days_left),
            "published": len(self.service.keys.keys),
        }
        if days_left < 14:
            status = "degraded"
        for name, check in self._backend_health().items():
            checks[name] = check
            if not check["ok"]:
                status = "degraded"
        shared = self.parts.shared
        if shared is not None:
            ok = shared.ping()
            self._degraded_shown = not ok
            self.metrics.redis_degraded.set(0 if ok else 1)
            detail = (
                "shared credential cache"
                if ok
                else (f"unavailable ({shared.last_error}); verifying passwords directly")
            )
            checks["redis"] = {"ok": ok, "detail": detail}
            if not ok:
                status = "degraded"
        elif self.settings.cache.enabled:
            checks["redis"] = {"ok": True, "detail": "not configured; in-process cache only"}
        response = jsonify({"status": status, "checks": checks})
        response.headers["Cache-Control"] = "no-store"
        return response

    def metrics_text(self) -> Response:
        self._backend_health()
        self._backend_events()
        body, content_type = self.metrics.render()
        return Response(body, content_type=content_type)


_HTTP_CODES = {
    404: "NOT_FOUND",
    405: "UNSUPPORTED",
    413: "SIZE_INVALID",
    414: "SIZE_INVALID",
    431: "SIZE_INVALID",
}


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 400
    code = _HTTP_CODES.get(status, "BAD_REQUEST")
    return _error_body(code, exc.description or exc.name, status)


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error in the token service")
    return _error_body("INTERNAL", "internal error; see the token service log", 500)


def _new_request_id(header: str | None) -> str:
    return (header or "")[:64] or os.urandom(16).hex()  # uuid4().hex's form, 4x cheaper


def _request_id() -> None:
    g.request_id = _new_request_id(request.headers.get("X-Request-Id"))


_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


class LeanTokenPath:
    """WSGI middleware answering ``GET /token`` without building a Flask request.

    ``GET /token`` is the registry clients' whole traffic, and Flask's request context,
    URL matching and response object cost about as much CPU as issuing the token (call
    graph under ``wrk``). This path parses the query and ``Authorization`` header itself
    (:func:`parse_get`, the same parsing the Flask route uses) and hands them to the same
    :meth:`_Endpoints.answer`: same checks, errors, metrics and audit line. Everything
    else (``POST /token``, ``HEAD``, ``/healthz``, ``/metrics``, 404s) goes to Flask.
    """

    def __init__(
        self,
        app: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]],
        endpoints: _Endpoints,
    ) -> None:
        self.app = app
        self.endpoints = endpoints
        self.settings = endpoints.settings

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/token" or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        settings = self.settings
        fields, size = measure_headers(environ)
        if fields > settings.limits.max_headers or size > settings.limits.max_header_bytes:
            return self.app(environ, start_response)  # Flask's hook answers the 431 in JSON
        query = environ.get("QUERY_STRING", "").encode("latin-1")
        authorization = environ.get("HTTP_AUTHORIZATION")
        client_ip = environ.get("REMOTE_ADDR") or ""
        request_id = _new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        try:
            status, headers, body = self.endpoints.answer(
                lambda: parse_get(settings, query, authorization, client_ip),
                client_ip,
                request_id,
            )
        except Exception:  # mapped as Flask maps it (_unexpected)
            log.exception("unexpected error in the token service")
            body = _error_bytes("INTERNAL", "internal error; see the token service log")
            status, headers = 500, [("Content-Type", _JSON), ("Content-Length", str(len(body)))]
        start_response(_STATUS_LINES[status], headers)
        return [body]


def create_app(settings: AuthSettings | None = None, *, parts: Parts | None = None) -> Flask:
    """Build a token-service app. Settings default to ``KEELHAUL_AUTH_CONFIG`` + environment."""
    settings = settings if settings is not None else load_auth_settings()
    parts = parts if parts is not None else build(settings)
    endpoints = _Endpoints(settings, parts)

    app = Flask("keelhaul.auth")
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.wsgi_app = LeanTokenPath(app.wsgi_app, endpoints)  # type: ignore[method-assign]
    if settings.server.trusted_proxies:
        n = settings.server.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    app.extensions["keelhaul"] = {"settings": settings, "parts": parts, "endpoints": endpoints}
    app.add_url_rule("/token", "token", endpoints.token, methods=["GET", "POST"])
    app.add_url_rule("/healthz", "healthz", endpoints.healthz, methods=["GET"])
    app.add_url_rule("/metrics", "metrics", endpoints.metrics_text, methods=["GET"])
    document = openapi_document(settings.token.service)
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document), methods=["GET"])
    app.before_request(_request_id)
    app.before_request(header_limits(settings.limits))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app


def shutdown(app: Flask) -> None:
    """Release what ``create_app`` opened (audit file, Redis pool): for tests and embedding."""
    ext = app.extensions.get("keelhaul")
    if not ext:
        return
    ext["endpoints"].audit.close()
    ext["endpoints"].metrics.close()
    for backend in ext["parts"].backends:
        backend.close()
    shared = ext["parts"].shared
    if shared is not None:
        shared.close()
