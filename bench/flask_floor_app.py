"""A Flask hello-world answering ``/token`` with a constant body: how much of the gap between
the token service and the constant-200 floor is Flask's own (``bench/token_bench.py``,
row e). Served with ``gunicorn 'flask_floor_app:create_app()'``: a factory, as the token
service's app is."""

from __future__ import annotations

from flask import Flask, Response

_BODY = b'{"token":"constant"}'


def create_app() -> Flask:
    app = Flask("flask_floor")

    @app.get("/token")
    def token() -> Response:
        return Response(_BODY, mimetype="application/json")

    return app
