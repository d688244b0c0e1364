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
import time
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from keelhaul.auth.audit import AuditLog
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

__all__ = ["create_app", "shutdown"]

log = logging.getLogger(__name__)


_NO_STORE = {"Cache-Control": "no-store"}
_OUTCOMES: dict[type[RequestError], str] = {
    Unauthorized: "unauthorized",
    TooManyRequests: "throttled",
    PayloadTooLarge: "too_large",
    BadRequest: "bad_request",
    ScopeError: "bad_scope",
}


def _error_body(code: str, message: str, status: int) -> Response:
    response = jsonify({"errors": [{"code": code, "message": message, "detail": None}]})
    response.status_code = status
    return response


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


def parse_token_request(settings: AuthSettings) -> TokenRequest:
    """Flask request → :class:`TokenRequest`. Raises :class:`RequestError` subclasses only."""
    if len(request.query_string) > settings.limits.max_query_bytes:
        raise PayloadTooLarge(f"query string over {settings.limits.max_query_bytes} bytes")
    client_ip = request.remote_addr or ""
    args = request.args
    if request.method == "GET":
        header = request.headers.get("Authorization")
        username = password = None
        if header is not None:
            username, password = _basic_credentials(header)
        return TokenRequest(
            grant="basic" if username is not None else "anonymous",
            service=args.get("service"),
            scopes=tuple(args.getlist("scope")),
            client_ip=client_ip,
            username=username,
            password=password,
            offline=_truthy(args.get("offline_token")),
            client_id=args.get("client_id"),
            account=args.get("account"),
        )
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
        self._degraded_shown = False
        server = settings.server
        self.metrics.capacity.set(
            {"sync": 1, "gthread": server.threads}.get(
                server.worker_class, server.worker_connections
            )
        )

    def token(self) -> Response:
        started = time.perf_counter()
        progress = Progress()
        req: TokenRequest | None = None
        self.metrics.inflight.inc()
        status, outcome = 500, "error"
        granted: list[str] = []
        try:
            req = parse_token_request(self.settings)
            issued = self.service.issue(req, progress)
            status, outcome = 200, "issued"
            granted = [str(s) for s in issued.granted if s.actions]
            return Response(
                json.dumps(issued.body, separators=(",", ":")),
                mimetype="application/json",
                headers=_NO_STORE,
            )
        except RequestError as exc:
            status, outcome = exc.status, _OUTCOMES.get(type(exc), "bad_request")
            response = _error_body(exc.code, exc.message, exc.status)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = self._www_authenticate
            if isinstance(exc, TooManyRequests):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except BackendError:
            log.exception("user store failed")
            status, outcome = 503, "backend_error"
            return _error_body("UNAVAILABLE", "user store unavailable; try again shortly", 503)
        finally:
            self.metrics.inflight.dec()
            self._account(req, progress, status, outcome, granted, time.perf_counter() - started)

    def _account(
        self,
        req: TokenRequest | None,
        progress: Progress,
        status: int,
        outcome: str,
        granted: list[str],
        elapsed: float,
    ) -> None:
        m = self.metrics
        grant = req.grant if req is not None else "unknown"
        m.requests_for(outcome, grant).inc()
        m.request_seconds_for(outcome).observe(elapsed)
        cache_label = progress.cache or "none"
        for stage, seconds in progress.stages.items():
            m.stage_seconds_for(stage, cache_label if stage == "authn" else "").observe(seconds)
        if progress.cache is not None:
            m.cache_for(progress.cache).inc()
        shared = self.parts.shared
        if shared is not None and shared.degraded != self._degraded_shown:
            self._degraded_shown = shared.degraded  # a gauge write only on change
            m.redis_degraded.set(1 if shared.degraded else 0)
        self.audit.record(
            {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "request_id": g.get("request_id"),
                "client_ip": request.remote_addr,
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
                "duration_ms": round(elapsed * 1000, 3),
            }
        )

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
        for backend in self.parts.backends:
            ok, detail = backend.health()
            checks[f"users.{backend.name}"] = {"ok": ok, "detail": detail}
            if not ok:
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
        body, content_type = self.metrics.render()
        return Response(body, content_type=content_type)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 400
    code = {404: "NOT_FOUND", 405: "UNSUPPORTED", 413: "SIZE_INVALID"}.get(status, "BAD_REQUEST")
    return _error_body(code, exc.description or exc.name, status)


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error in the token service")
    return _error_body("INTERNAL", "internal error; see the token service log", 500)


def _request_id() -> None:
    g.request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex


def create_app(settings: AuthSettings | None = None, *, parts: Parts | None = None) -> Flask:
    """Build a token-service app. Settings default to ``KEELHAUL_AUTH_CONFIG`` + environment."""
    settings = settings if settings is not None else load_auth_settings()
    parts = parts if parts is not None else build(settings)
    endpoints = _Endpoints(settings, parts)

    app = Flask("keelhaul.auth")
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
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
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app


def shutdown(app: Flask) -> None:
    """Release what ``create_app`` opened (audit file, Redis pool): for tests and embedding."""
    ext = app.extensions.get("keelhaul")
    if not ext:
        return
    ext["endpoints"].audit.close()
    for backend in ext["parts"].backends:
        backend.close()
    shared = ext["parts"].shared
    if shared is not None:
        shared.close()
