"""The token service's HTTP API as an OpenAPI 3.0 document, served at ``/openapi.json``.

The document is what the schemathesis run in the test suite holds the live service to:
every response's status, content type, headers and body must match it.
"""

from __future__ import annotations

from typing import Any

from keelhaul import __version__

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Errors"}


def _errors(*codes: int) -> dict[str, Any]:
    descriptions = {
        400: "malformed request: scope, Authorization header, grant, service",
        401: "credentials missing or wrong",
        413: "query string or body over the configured limit",
        414: "request line over gunicorn's ceiling (8190 bytes)",
        431: "request headers over the configured limit",
        429: "too many failed logins for this account or address",
        503: "a user store could not answer",
    }
    out: dict[str, Any] = {}
    for code in codes:
        entry: dict[str, Any] = {
            "description": descriptions[code],
            "content": {"application/json": {"schema": _ERROR}},
        }
        if code == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
            }
        if code == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "string"}, "required": True}}
        out[str(code)] = entry
    return out


def _token_ok() -> dict[str, Any]:
    return {
        "description": "a signed registry token",
        "headers": {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Token"}}},
    }


def openapi_document(service: str) -> dict[str, Any]:
    string = {"type": "string"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "keelhaul token service",
            "version": __version__,
            "description": "Docker Registry v2 token authentication and its OAuth2 variant.",
        },
        "paths": {
            "/token": {
                "get": {
                    "summary": "Docker token request (Basic credentials or anonymous)",
                    "parameters": [
                        {
                            "name": "service",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "example": service},
                        },
                        {
                            "name": "scope",
                            "in": "query",
                            "style": "form",
                            "explode": True,
                            "schema": {"type": "array", "items": string},
                        },
                        {"name": "account", "in": "query", "schema": string},
                        {"name": "client_id", "in": "query", "schema": string},
                        {"name": "offline_token", "in": "query", "schema": string},
                    ],
                    "security": [{}, {"basic": []}],
                    "responses": {"200": _token_ok(), **_errors(400, 401, 413, 414, 429, 431, 503)},
                },
                "post": {
                    "summary": "OAuth2 token request (password or refresh_token grant)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "required": ["grant_type", "service", "client_id"],
                                    "properties": {
                                        "grant_type": {
                                            "type": "string",
                                            "enum": ["password", "refresh_token"],
                                        },
                                        "service": {"type": "string", "example": service},
                                        "client_id": string,
                                        "scope": string,
                                        "access_type": {
                                            "type": "string",
                                            "enum": ["offline", "online"],
                                        },
                                        "username": string,
                                        "password": string,
                                        "refresh_token": string,
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"200": _token_ok(), **_errors(400, 401, 413, 414, 429, 431, 503)},
                },
            },
            "/healthz": {
                "get": {
                    "summary": "readiness: keys, user stores, Redis",
                    "responses": {
                        "200": {
                            "description": "ok or degraded (still serving)",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status", "checks"],
                                        "properties": {
                                            "status": {
                                                "type": "string",
                                                "enum": ["ok", "degraded"],
                                            },
                                            "checks": {"type": "object"},
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": string}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.0",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "schemas": {
                "Token": {
                    "type": "object",
                    "required": ["token", "access_token", "expires_in", "issued_at"],
                    "properties": {
                        "token": string,
                        "access_token": string,
                        "expires_in": {"type": "integer", "minimum": 60},
                        "issued_at": {"type": "string", "format": "date-time"},
                        "refresh_token": string,
                        "scope": string,
                    },
                    "additionalProperties": False,
                },
                "Errors": {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {
                        "errors": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["code", "message"],
                                "properties": {
                                    "code": string,
                                    "message": string,
                                    "detail": {"nullable": True},
                                },
                            },
                        }
                    },
                    "additionalProperties": False,
                },
            },
        },
    }
