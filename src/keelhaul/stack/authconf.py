"""The token service's config (schema: :mod:`keelhaul.auth.settings`), rendered. Pure.

The stack's access policy, first match wins, no match denies:

* ``admin`` may do everything, ``registry:catalog:*`` included;
* every authenticated user owns ``<account>/**`` (pull, push, delete);
* ``reader`` may pull everything;
* anonymous clients may pull ``public/**``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import yaml

from keelhaul.stack.plan import REDIS_DB_AUTH, StackPlan

__all__ = [
    "STACK_ACL",
    "TOKEN_ALGORITHM",
    "auth_args",
    "auth_argv",
    "auth_yaml",
    "render_auth_config",
    "render_htpasswd",
]

TOKEN_ALGORITHM = "ES256"  # noqa: S105 - an algorithm's name
"""What the stack's token service signs with; the registry accepts only this one."""

STACK_ACL: tuple[dict[str, Any], ...] = (
    {
        "match": {"account": "admin"},
        "actions": ["*"],
        "comment": "admin may do everything, the catalog included",
    },
    {
        "match": {"account": "/.+/", "type": "repository", "name": "${account}/**"},
        "actions": ["pull", "push", "delete"],
        "comment": "every authenticated user owns <account>/**",
    },
    {
        "match": {"account": "reader", "type": "repository", "name": "**"},
        "actions": ["pull"],
        "comment": "reader may pull everything",
    },
    {
        "match": {"account": "", "type": "repository", "name": "public/**"},
        "actions": ["pull"],
        "comment": "anonymous clients may pull public/**",
    },
)


def render_auth_config(plan: StackPlan, *, secret: str | None) -> dict[str, Any]:
    """``secret`` None: it comes from ``KEELHAUL_AUTH_SECRET`` at run time (deployments).

    nginx is always in front, so exactly one ``X-Forwarded-For`` hop is trusted
    (``server.trusted_proxies: 1``); the token service itself listens where only the
    proxy and the host (local stack) or the cluster network (deployments) reach it.
    """
    settings = plan.settings
    files = plan.files
    server: dict[str, Any] = {"bind": plan.bind("auth"), "trusted_proxies": 1}
    workers = settings.auth_workers
    if workers is None and plan.cpus is not None:
        # in a container os.cpu_count() is the node's, not the container's CPU limit
        workers = 2 * plan.cpus
    if workers is not None:
        server["workers"] = workers
    if settings.auth_worker_class is not None:
        server["worker_class"] = settings.auth_worker_class
    cache: dict[str, Any] = {"enabled": settings.credential_cache}
    # a deployment's config carries no password: KEELHAUL_AUTH_CACHE__REDIS_PASSWORD does
    redis_url = plan.redis_url(REDIS_DB_AUTH, password=plan.target == "local")
    if redis_url is not None:
        cache["redis_url"] = redis_url
    audit: dict[str, Any] = {"enabled": True}
    if files.audit_log is not None:
        audit["path"] = files.audit_log
    config: dict[str, Any] = {}
    if secret is not None:
        config["secret"] = secret
    config.update(
        {
            "token": {
                "issuer": plan.issuer,
                "service": plan.service,
                "algorithm": TOKEN_ALGORITHM,
                "keys": [{"key": files.signing_key, "cert": files.signing_cert}],
            },
            "users": {"htpasswd": files.htpasswd},
            "acl": [dict(rule) for rule in STACK_ACL],
            "cache": cache,
            "server": server,
            "audit": audit,
        }
    )
    return config


def auth_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def render_htpasswd(hashes: Mapping[str, str]) -> str:
    """``name:hash`` lines; the hashes come from ``keelhaul.auth.authn.htpasswd``."""
    return "".join(f"{name}:{hashed}\n" for name, hashed in hashes.items())


def auth_args(plan: StackPlan) -> list[str]:
    """``keelhaul``'s arguments: the config on the command line, where the process-exporter
    group of the token service (and a human with ``ps``) can see it."""
    return ["auth", "serve", "--config", plan.files.auth_config]


def auth_argv(plan: StackPlan, python: str = sys.executable) -> list[str]:
    return [python, "-m", "keelhaul", *auth_args(plan)]
