"""Reading what the doctor examines: config files, the files they name, a local stack's
``stack.json``, and the live probes. The doctor's I/O shell.

Paths named inside a config (the registry's bundle, the token service's certificates) are
those of the host the config was written for. When such a path does not exist here, it is
looked up under each ``--files-root`` (a copy of the remote file system: ``ROOT/etc/...``)
and then next to the config file that names it; if it is still missing, the check that
needs it becomes a note, not a finding.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keelhaul.errors import ConfigError, StackError
from keelhaul.settings_base import read_yaml
from keelhaul.stack.doctor.model import (
    AuthView,
    CertInfo,
    ClockReading,
    KeyView,
    NginxView,
    RealmProbe,
    RegistryView,
    Snapshot,
)
from keelhaul.stack.doctor.nginxconf import NginxSyntaxError, parse
from keelhaul.stack.doctor.probes import probe_realm, read_clock
from keelhaul.stack.doctor.views import (
    auth_view,
    cert_infos,
    key_cert_paths,
    nginx_view,
    parse_redis_url,
    registry_view,
)
from keelhaul.stack.state import read_state

__all__ = [
    "DoctorRequest",
    "collect",
    "load_auth",
    "load_nginx",
    "load_registry",
    "request_for_stack",
]


@dataclass(frozen=True)
class DoctorRequest:
    registry_configs: tuple[Path, ...] = ()
    auth_configs: tuple[Path, ...] = ()
    nginx_configs: tuple[Path, ...] = ()
    registry_url: str | None = None
    """Where to read the registry's clock; default: its ``http.host``, if any."""
    cpus: int | None = None
    cpus_source: str = ""
    files_root: tuple[Path, ...] = ()
    ca_cert: str | None = None
    probe: bool = True
    stack_redis: str | None = None
    stack_redis_external: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not (self.registry_configs or self.auth_configs or self.nginx_configs)


def request_for_stack(directory: Path, *, probe: bool = True) -> DoctorRequest:
    """Everything of the local stack in ``directory`` (it need not be running)."""
    from keelhaul.stack.layout import StackLayout

    layout = StackLayout.at(directory)
    state = read_state(layout.state_file)
    if state is None:
        raise StackError(
            f"no stack in {layout.root}; start one with keelhaul stack up --dir {layout.root}, "
            "or give the config files (--registry-config, --auth-config, --nginx-config)"
        )
    configs = state.config
    notes = () if state.status == "running" else (f"the stack in {layout.root} is {state.status}",)
    return DoctorRequest(
        registry_configs=(Path(configs["registry"]),) if "registry" in configs else (),
        auth_configs=(Path(configs["auth"]),) if "auth" in configs else (),
        nginx_configs=(Path(configs["nginx"]),) if "nginx" in configs else (),
        registry_url=state.registry,
        cpus=os.cpu_count(),
        cpus_source="this host",
        ca_cert=state.ca_cert,
        probe=probe,
        stack_redis=state.redis_url,
        stack_redis_external=state.external_redis,
        notes=notes,
    )


def _resolve(named: str, roots: Sequence[Path], config: Path) -> Path | None:
    path = Path(named)
    candidates = [path if path.is_absolute() else config.parent / path]
    candidates += [root / str(path).lstrip("/") for root in roots]
    candidates.append(config.parent / path.name)
    return next((c for c in candidates if c.is_file()), None)


def _certs(
    named: str, roots: Sequence[Path], config: Path
) -> tuple[tuple[CertInfo, ...] | None, str | None]:
    path = _resolve(named, roots, config)
    if path is None:
        return None, "not found here (give --files-root)"
    try:
        return cert_infos(path.read_bytes()), None
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"
    except ValueError:
        return None, "holds no PEM certificate"


def _dig(raw: dict[str, Any], *keys: str) -> Any:
    node: Any = raw
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def load_registry(path: Path, roots: Sequence[Path]) -> RegistryView:
    raw = read_yaml(path, "registry")
    named = _dig(raw, "auth", "token", "rootcertbundle")
    bundle: tuple[CertInfo, ...] | None = None
    problem: str | None = None
    if named:
        bundle, problem = _certs(str(named), roots, path)
    return registry_view(raw, str(path), bundle, problem)


def load_auth(path: Path, roots: Sequence[Path]) -> AuthView:
    raw = read_yaml(path, "auth")
    keys = []
    for named in key_cert_paths(raw):
        chain, problem = _certs(named, roots, path)
        keys.append(KeyView(cert_path=named, chain=chain, problem=problem))
    return auth_view(raw, str(path), keys)


def load_nginx(path: Path) -> NginxView:
    def include(pattern: str) -> list[tuple[str, str]]:
        full = pattern if os.path.isabs(pattern) else str(path.parent / pattern)
        found = []
        for name in sorted(glob.glob(full)):
            try:
                found.append((name, Path(name).read_text(encoding="utf-8")))
            except OSError:
                continue
        return found

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("nginx", [f"config file {path} cannot be read: {exc.strerror}"]) from None
    try:
        return nginx_view(parse(text, str(path), include), str(path))
    except NginxSyntaxError as exc:
        raise ConfigError("nginx", [str(exc)]) from None


def _probes(
    request: DoctorRequest, registries: Sequence[RegistryView]
) -> tuple[tuple[RealmProbe, ...], tuple[ClockReading, ...]]:
    realms: dict[str, str | None] = {}
    for r in registries:
        if r.auth_kind == "token" and r.realm:
            realms.setdefault(r.realm, r.service)
    probes: list[RealmProbe] = []
    clocks: list[ClockReading] = []
    for url, service in realms.items():
        probe, clock = probe_realm(url, service, request.ca_cert)
        probes.append(probe)
        if not clocks:  # the token service's clock, read from the first realm's answer
            clocks.append(clock)
    registry_url = request.registry_url or next((r.host for r in registries if r.host), None)
    if registry_url is not None:
        clocks.append(read_clock("registry", f"{registry_url.rstrip('/')}/v2/", request.ca_cert))
    elif registries:
        clocks.append(
            ClockReading("registry", "", None, "its URL is unknown here; pass --registry-url")
        )
    if not realms and registries:
        clocks.append(ClockReading("auth", "", None, "no token realm configured"))
    return tuple(probes), tuple(clocks)


def collect(request: DoctorRequest, *, now: datetime | None = None) -> Snapshot:
    roots = request.files_root
    registries = tuple(load_registry(p, roots) for p in request.registry_configs)
    auths = tuple(load_auth(p, roots) for p in request.auth_configs)
    proxies = tuple(load_nginx(p) for p in request.nginx_configs)
    probes: tuple[RealmProbe, ...] = ()
    clocks: tuple[ClockReading, ...] = ()
    if request.probe:
        probes, clocks = _probes(request, registries)
    return Snapshot(
        registries=registries,
        auths=auths,
        nginx=proxies,
        stack_redis=parse_redis_url(request.stack_redis) if request.stack_redis else None,
        stack_redis_external=request.stack_redis_external,
        cpus=request.cpus,
        cpus_source=request.cpus_source,
        realm_probes=probes,
        clocks=clocks,
        probed=request.probe,
        now=now or datetime.now(UTC),
        notes=request.notes,
    )
