"""Writing a stack's directory before start: keys, users, configs. The file-system edge.

Secrets are made fresh at every ``up`` (passwords, server secret, signing key, the proxy's
server certificate); ``data/`` and the TLS CA (``keys/ca.*``, which clients were told to
trust) survive from one run to the next.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from keelhaul.atomicfile import write_text
from keelhaul.auth.authn.htpasswd import hash_password
from keelhaul.auth.keygen import generate_keypair
from keelhaul.auth.settings import KeyPair
from keelhaul.errors import StackError
from keelhaul.stack.authconf import auth_yaml, render_auth_config, render_htpasswd
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.monitoring import (
    monitoring_yaml,
    process_exporter_config,
    process_tier_mapping,
    prometheus_config,
)
from keelhaul.stack.nginx import render_nginx_conf
from keelhaul.stack.plan import HOST, USERS, StackPlan
from keelhaul.stack.registry import registry_yaml, render_registry_config
from keelhaul.stack.tls import issue_server_cert

__all__ = [
    "Prepared",
    "make_dirs",
    "prepare_files",
    "rewrite_config",
    "rotate_log",
    "write_private",
]


@dataclass(frozen=True)
class Prepared:
    passwords: dict[str, str]
    key: KeyPair
    ca_cert: Path | None = None


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Atomically replace ``path``; private (0600) unless said otherwise."""
    write_text(path, text, mode=mode, error=None)


def rotate_log(path: Path) -> None:
    """Keep the previous run's log as ``<name>.log.1`` so that a start begins clean."""
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))


def make_dirs(layout: StackLayout) -> None:
    for directory in layout.dirs():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # gunicorn's multiprocess metrics must start from an empty directory every time
    shutil.rmtree(layout.auth_metrics_dir, ignore_errors=True)
    layout.auth_metrics_dir.mkdir(mode=0o700)


def nginx_user() -> str | None:
    """Run as root (tests, CI), nginx's workers would drop to ``nobody``, who cannot enter
    the 0700 stack directory to write temp files; they stay root instead. Otherwise nginx
    runs as the invoking user and the ``user`` directive is not rendered at all."""
    return "root" if os.geteuid() == 0 else None


def write_monitoring_configs(plan: StackPlan, layout: StackLayout) -> None:
    """Prometheus' scrape config, the process groups and the diagnosis' tier mapping;
    Prometheus' data is kept."""
    layout.prometheus_data.mkdir(mode=0o700, exist_ok=True)
    write_text(layout.prometheus_config, monitoring_yaml(prometheus_config(plan)), mode=0o600)
    write_text(
        layout.process_exporter_config,
        monitoring_yaml(process_exporter_config(plan)),
        mode=0o600,
    )
    write_text(layout.tiers_file, monitoring_yaml(process_tier_mapping(plan)), mode=0o600)


def prepare_files(plan: StackPlan, layout: StackLayout) -> Prepared:
    make_dirs(layout)
    key = generate_keypair(layout.keys_dir, algorithm="ES256", name="token", overwrite=True)
    write_private(layout.bundle, key.cert.read_text(encoding="ascii"), mode=0o644)

    passwords = {user: secrets.token_urlsafe(18) for user in USERS}
    hashes = {user: hash_password(pw, plan.settings.bcrypt_cost) for user, pw in passwords.items()}
    write_private(layout.htpasswd, render_htpasswd(hashes))

    auth_config = render_auth_config(plan, secret=secrets.token_urlsafe(48))
    write_private(layout.auth_config, auth_yaml(auth_config))
    registry_config = render_registry_config(plan, http_secret=secrets.token_urlsafe(32))
    write_private(layout.registry_config, registry_yaml(registry_config))

    ca_cert = None
    if plan.settings.tls:
        issue_server_cert(
            layout.ca_cert, layout.ca_key, layout.tls_cert, layout.tls_key, [HOST, "localhost"]
        )
        ca_cert = layout.ca_cert
    write_private(layout.nginx_config, render_nginx_conf(plan, user=nginx_user()))
    if plan.settings.monitoring:
        write_monitoring_configs(plan, layout)
    return Prepared(passwords=passwords, key=key, ca_cert=ca_cert)


def rewrite_config(component: str, plan: StackPlan, layout: StackLayout) -> None:
    """Render one component's configuration again for new knobs, keeping its secrets."""
    if component == "auth":
        old = yaml.safe_load(layout.auth_config.read_text(encoding="utf-8")) or {}
        config = render_auth_config(plan, secret=old.get("secret"))
        write_private(layout.auth_config, auth_yaml(config))
    elif component == "registry":
        old = yaml.safe_load(layout.registry_config.read_text(encoding="utf-8")) or {}
        secret = (old.get("http") or {}).get("secret")
        registry_config = render_registry_config(plan, http_secret=secret)
        write_private(layout.registry_config, registry_yaml(registry_config))
    elif component == "nginx":
        write_private(layout.nginx_config, render_nginx_conf(plan, user=nginx_user()))
    else:
        raise StackError(f"{component}: its configuration is not changed on a running stack")
