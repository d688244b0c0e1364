"""A minimal OIDC issuer on a free loopback port (discovery + JWKS over HTTP), with RSA keys
made, published and rotated by the test, and tokens shaped like GitHub Actions' ID tokens.

Used by the integration tests of the OIDC backend and by the end-to-end tests where the
docker CLI logs in with a CI identity token. Stopped by :meth:`Issuer.stop` (a thread of the
test process, nothing to kill).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["AUD", "Issuer"]

AUD = "registry.example.com"


class Issuer:
    """A minimal OIDC issuer: discovery and JWKS over HTTP; signs tokens for the tests."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    body = {"keys": [issuer.jwk(kid) for kid in issuer.published]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def backend(self, **over: Any) -> dict[str, Any]:
        """The token service's ``kind: oidc`` entry trusting this issuer: account
        ``ci:{repository}``, labels ``repository`` and ``protected`` (``ref_protected``),
        keys fetched again at once on an unknown kid; ``over`` replaces or adds keys."""
        backend: dict[str, Any] = {
            "kind": "oidc",
            "name": "ci",
            "issuer": self.url,
            "audiences": [AUD],
            "account": "ci:{repository}",
            "claim_labels": {"repository": "repository", "protected": "ref_protected"},
            "min_refresh": 0,
        }
        return backend | over

    def add_key(self, kid: str, *, publish: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def jwk(self, kid: str) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        return jwk | {"kid": kid, "use": "sig", "alg": "RS256"}

    def sign(self, kid: str = "k1", **over: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": AUD,
            "sub": "repo:team/app:ref:refs/heads/main",
            "repository": "team/app",
            "ref": "refs/heads/main",
            "ref_protected": True,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": f"job-{now}",
            "repository_owner": "team",
            "job_workflow_ref_ok": True,
        } | over
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
