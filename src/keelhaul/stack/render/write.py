"""``keelhaul stack render``: the deployment artifacts written to a directory. The I/O edge.

::

    OUT/
      compose.yaml | kustomization.yaml + *.yaml      the target's own files
      config/        registry.yml auth.yml nginx.conf bundle.pem   (no secret in any)
      secrets/ 0700  token.key token.crt htpasswd auth.env registry.env passwords.txt
                     [tls.crt tls.key ca.crt ca.key]
      [--monitoring: config/prometheus.yml, config/process-exporter.yml (compose),
                     tiers.yaml (the diagnosis' --tiers mapping)]

Secret material is made once and reused by every later render into the same OUT, so
changing a knob never rotates the signing key or the passwords; ``--keys DIR`` brings an
existing signing pair (``token.key``/``token.crt``) and TLS pair (``tls.crt``/``tls.key``).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from keelhaul.atomicfile import write_text
from keelhaul.auth.authn.htpasswd import hash_password
from keelhaul.auth.keygen import generate_keypair
from keelhaul.errors import ConfigError
from keelhaul.stack.authconf import render_htpasswd
from keelhaul.stack.files import write_private
from keelhaul.stack.plan import USERS, StackPlan
from keelhaul.stack.render.compose import COMPOSE_FILES, compose_yaml, render_compose
from keelhaul.stack.render.k8s import kustomization, manifests_yaml, render_manifests
from keelhaul.stack.render.material import (
    AUTH_SECRET_ENV,
    AUTH_UID,
    NGINX_UID,
    REGISTRY_SECRET_ENV,
    Material,
    config_files,
)
from keelhaul.stack.render.monitoring import monitoring_files
from keelhaul.stack.render.settings import DeploySettings
from keelhaul.stack.settings import StackSettings
from keelhaul.stack.tls import issue_server_cert

__all__ = ["Rendered", "plan_for", "render_deployment"]


@dataclass(frozen=True)
class Rendered:
    out: Path
    files: list[Path]
    passwords_file: Path
    notes: list[str] = field(default_factory=list)


def plan_for(settings: StackSettings, deploy: DeploySettings) -> StackPlan:
    if settings.tls and not deploy.public_url.startswith("https://"):
        # the reverse (https outside, plain nginx) is TLS ended in front of nginx: fine
        raise ConfigError(
            "render",
            [
                f"public_url: {deploy.public_url} must be https:// with --tls: nginx serves "
                "https, and the realm must say so"
            ],
        )
    return StackPlan.deployment(
        settings,
        deploy.target,
        public_url=deploy.public_url,
        storage=deploy.storage,
        cpus=deploy.cpus,
    )


def _env_file(values: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def _material(
    settings: StackSettings,
    deploy: DeploySettings,
    sec: Path,
    keys: Path | None,
    redis_password: str | None = None,
) -> Material:
    """Reuse what ``sec`` holds; make (or take from ``keys``) what it lacks."""
    sec.mkdir(parents=True, exist_ok=True, mode=0o700)
    if keys is not None:
        for name in ("token.key", "token.crt", "tls.crt", "tls.key"):
            if (keys / name).is_file():
                write_private(sec / name, (keys / name).read_text(), 0o600)
    if not (sec / "token.key").is_file() or not (sec / "token.crt").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            pair = generate_keypair(Path(tmp), algorithm="ES256", name="token")
            write_private(sec / "token.key", pair.key.read_text(), 0o600)
            write_private(sec / "token.crt", pair.cert.read_text(), 0o644)
    if not (sec / "htpasswd").is_file():
        passwords = {user: secrets.token_urlsafe(18) for user in USERS}
        hashes = {u: hash_password(pw, settings.bcrypt_cost) for u, pw in passwords.items()}
        write_private(sec / "htpasswd", render_htpasswd(hashes))
        lines = "".join(f"{u} {pw}\n" for u, pw in passwords.items())
        write_private(sec / "passwords.txt", lines)
    if not (sec / "auth.env").is_file():
        write_private(sec / "auth.env", _env_file({AUTH_SECRET_ENV: secrets.token_urlsafe(48)}))
    if not (sec / "registry.env").is_file():
        write_private(
            sec / "registry.env", _env_file({REGISTRY_SECRET_ENV: secrets.token_urlsafe(32)})
        )
    tls_cert = tls_key = None
    if settings.tls:
        if not (sec / "tls.crt").is_file() or not (sec / "tls.key").is_file():
            issue_server_cert(
                sec / "ca.crt",
                sec / "ca.key",
                sec / "tls.crt",
                sec / "tls.key",
                [deploy.public_host, "localhost"],
            )
        tls_cert, tls_key = (sec / "tls.crt").read_text(), (sec / "tls.key").read_text()
    auth_env, registry_env = _read_env(sec / "auth.env"), _read_env(sec / "registry.env")
    material = Material(
        token_key=(sec / "token.key").read_text(),
        token_cert=(sec / "token.crt").read_text(),
        htpasswd=(sec / "htpasswd").read_text(),
        auth_secret=auth_env[AUTH_SECRET_ENV],
        registry_secret=registry_env[REGISTRY_SECRET_ENV],
        tls_cert=tls_cert,
        tls_key=tls_key,
        redis_password=redis_password,
    )
    # the external Redis' password (or its absence) follows the settings of this render
    for name, old, new in (
        ("auth.env", auth_env, material.auth_env()),
        ("registry.env", registry_env, material.registry_env()),
    ):
        if old != new:
            write_private(sec / name, _env_file(new))
    return material


def _give(path: Path, uid: int, notes: list[str]) -> None:
    """A compose container reads its bind-mounted key as its own non-root user."""
    if os.geteuid() == 0:
        os.chown(path, uid, uid)
    else:
        notes.append(f"chown {uid} {path} (the container's user must read it; needs root)")


def _write_monitoring(
    plan: StackPlan, deploy: DeploySettings, out: Path, notes: list[str]
) -> list[Path]:
    written = []
    for name, text in monitoring_files(plan, deploy).items():
        path = out / name
        write_text(path, text, mode=0o644)
        written.append(path)
    if deploy.target == "compose":
        notes.append(f"Prometheus: http://127.0.0.1:{plan.ports['prometheus']} (scrapes every 1 s)")
    else:
        notes.append(
            f"{out / 'config/prometheus.yml'}: scrape config for the cluster's Prometheus "
            "(annotated pods, job = tier; cAdvisor); its pods need the label "
            "app.kubernetes.io/name=prometheus to pass the NetworkPolicies"
        )
    notes.append(f"keelhaul diagnose --prometheus URL --tiers {out / 'tiers.yaml'}")
    return written


def render_deployment(
    settings: StackSettings, deploy: DeploySettings, out: Path, *, keys: Path | None = None
) -> Rendered:
    plan = plan_for(settings, deploy)
    out = out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    sec = out / "secrets"
    material = _material(settings, deploy, sec, keys, plan.redis_password)
    configs = config_files(plan, material)
    written: list[Path] = []
    notes: list[str] = []
    config_dir = out / "config"
    config_dir.mkdir(exist_ok=True)
    for name, text in configs.items():
        write_private(config_dir / name, text, 0o644)
        written.append(config_dir / name)
    if deploy.target == "compose":
        path = out / "compose.yaml"
        write_private(path, compose_yaml(render_compose(plan, deploy)), 0o644)
        written.append(path)
        for name in ("token.key", "htpasswd"):
            _give(out / COMPOSE_FILES[name], AUTH_UID, notes)
        if settings.tls:
            _give(out / COMPOSE_FILES["tls.key"], NGINX_UID, notes)
    else:
        manifests = render_manifests(plan, deploy, material, configs)
        for name, docs in manifests.items():
            path = out / name
            # secrets.yaml carries keys and passwords: 0600 like every other secret file
            write_private(path, manifests_yaml(docs), 0o600 if name == "secrets.yaml" else 0o644)
            written.append(path)
        path = out / "kustomization.yaml"
        write_private(path, manifests_yaml([kustomization(list(manifests), deploy)]), 0o644)
        written.append(path)
    if settings.monitoring:
        written += _write_monitoring(plan, deploy, out, notes)
    if settings.tls and (sec / "ca.crt").is_file():
        notes.append(f"clients trust {sec / 'ca.crt'} (docker: /etc/docker/certs.d/HOST/ca.crt)")
    return Rendered(out=out, files=written, passwords_file=sec / "passwords.txt", notes=notes)
