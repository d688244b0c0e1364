"""The files every deployment carries, rendered from one plan: configs, keys, secrets. Pure.

Secrets stay out of the configs: the token service's ``secret`` and the registry's
``http.secret`` are environment variables (:data:`AUTH_SECRET_ENV`,
:data:`REGISTRY_SECRET_ENV`) fed from a Secret (Kubernetes) or an ``env_file`` (compose);
so is an external Redis' password (:data:`AUTH_REDIS_PASSWORD_ENV`,
:data:`REGISTRY_REDIS_PASSWORD_ENV`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keelhaul.stack.authconf import auth_yaml, render_auth_config
from keelhaul.stack.nginx import render_nginx_conf
from keelhaul.stack.plan import StackPlan
from keelhaul.stack.registry import registry_yaml, render_registry_config

__all__ = [
    "AUTH_CONFIG_ENV",
    "AUTH_REDIS_PASSWORD_ENV",
    "AUTH_SECRET_ENV",
    "METRICS_DIR",
    "REGISTRY_REDIS_PASSWORD_ENV",
    "REGISTRY_SECRET_ENV",
    "Material",
    "config_files",
]

AUTH_CONFIG_ENV = "KEELHAUL_AUTH_CONFIG"
AUTH_SECRET_ENV = "KEELHAUL_AUTH_SECRET"  # noqa: S105 - a variable's name
REGISTRY_SECRET_ENV = "REGISTRY_HTTP_SECRET"  # noqa: S105
AUTH_REDIS_PASSWORD_ENV = "KEELHAUL_AUTH_CACHE__REDIS_PASSWORD"  # noqa: S105
REGISTRY_REDIS_PASSWORD_ENV = "REGISTRY_REDIS_PASSWORD"  # noqa: S105
METRICS_DIR = "/var/run/keelhaul/metrics"
"""The token service's PROMETHEUS_MULTIPROC_DIR in its container (an emptyDir/tmpfs)."""
AUTH_UID = 10001
NGINX_UID = 101
REGISTRY_UID = 1000
REDIS_UID = 999


@dataclass(frozen=True)
class Material:
    """Secret and key material, made (or read) by the writer; PEM and text."""

    token_key: str = field(repr=False)
    token_cert: str
    htpasswd: str = field(repr=False)
    auth_secret: str = field(repr=False)
    registry_secret: str = field(repr=False)
    tls_cert: str | None = None
    tls_key: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)
    """The external Redis' (``redis_url``) password, if it has one."""

    def auth_env(self) -> dict[str, str]:
        env = {AUTH_SECRET_ENV: self.auth_secret}
        if self.redis_password is not None:
            env[AUTH_REDIS_PASSWORD_ENV] = self.redis_password
        return env

    def registry_env(self) -> dict[str, str]:
        env = {REGISTRY_SECRET_ENV: self.registry_secret}
        if self.redis_password is not None:
            env[REGISTRY_REDIS_PASSWORD_ENV] = self.redis_password
        return env


def config_files(plan: StackPlan, material: Material) -> dict[str, str]:
    """``registry.yml``, ``auth.yml``, ``nginx.conf``, ``bundle.pem``: no secret in any."""
    return {
        "registry.yml": registry_yaml(render_registry_config(plan, http_secret=None)),
        "auth.yml": auth_yaml(render_auth_config(plan, secret=None)),
        "nginx.conf": render_nginx_conf(plan),
        "bundle.pem": material.token_cert,
    }
