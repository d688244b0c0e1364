"""What a stack will look like before anything starts: addresses, URLs, file paths. Pure data.

One :class:`StackPlan` feeds every renderer (:mod:`.registry`, :mod:`.authconf`,
:mod:`.nginx`) and the component list (:mod:`.components`), so a URL is spelled in one
place. The local stack and the deployment artifacts differ only in their plan:

============  =============================  ===================================
              local (``stack up``)           compose / k8s (``stack render``)
============  =============================  ===================================
bind          ``127.0.0.1:<free port>``      ``0.0.0.0:<fixed port>``
peers         ``127.0.0.1:<port>``           the service name (``registry:5000``)
files         inside the stack directory     fixed paths inside each container
entry URL     ``http(s)://127.0.0.1:<port>`` ``--public-url``
============  =============================  ===================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from keelhaul.errors import StackError
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.settings import StackSettings, wanted_components
from keelhaul.stack.storage import StorageSettings

__all__ = [
    "CONTAINER_FILES",
    "CONTAINER_PORTS",
    "HOST",
    "ISSUER",
    "REDIS_DB_AUTH",
    "REDIS_DB_REGISTRY",
    "SERVICE",
    "SERVICE_NAMES",
    "USERS",
    "Files",
    "StackPlan",
    "Target",
    "choose_ports",
]

Target = Literal["local", "compose", "k8s"]

HOST = "127.0.0.1"
ANY = "0.0.0.0"  # noqa: S104 - containers listen on their own network namespace
SERVICE = "keelhaul-registry"
ISSUER = "keelhaul-auth"
USERS: tuple[str, ...] = ("admin", "reader")

REDIS_DB_REGISTRY = 0
REDIS_DB_AUTH = 1
"""One Redis instance, two databases, so that the registry's and the token service's keys
never collide; ``stack doctor`` expects the same instance and shows the databases."""

LOOPBACK_ONLY = frozenset({"nginx_status"})
"""Ports that listen on loopback everywhere (nginx's stub_status: read on the host/pod only)."""


@dataclass(frozen=True)
class Files:
    """Where each component finds its files, as that component sees them."""

    registry_config: str
    registry_data: str
    bundle: str
    auth_config: str
    htpasswd: str
    signing_key: str
    signing_cert: str
    audit_log: str | None
    """None: the token service writes its audit lines to stderr (the container log)."""
    nginx_config: str
    nginx_temp: str
    """Parent of nginx's temp directories (client_body, proxy, ...): writable by nginx."""
    nginx_pid: str
    access_log: str
    error_log: str
    """A path, or ``stderr``."""
    tls_cert: str
    tls_key: str
    prometheus_config: str
    prometheus_data: str
    process_exporter_config: str

    @classmethod
    def local(cls, layout: StackLayout) -> Files:
        return cls(
            registry_config=str(layout.registry_config),
            registry_data=str(layout.data_dir),
            bundle=str(layout.bundle),
            auth_config=str(layout.auth_config),
            htpasswd=str(layout.htpasswd),
            signing_key=str(layout.keys_dir / "token.key"),
            signing_cert=str(layout.keys_dir / "token.crt"),
            audit_log=str(layout.audit_log),
            nginx_config=str(layout.nginx_config),
            nginx_temp=str(layout.nginx_temp_dir),
            nginx_pid=str(layout.run_dir / "nginx.pid"),
            access_log=str(layout.access_log),
            # the file its stdout/stderr go to as well: one log, and the start-up tail
            error_log=str(layout.log("nginx")),
            tls_cert=str(layout.tls_cert),
            tls_key=str(layout.tls_key),
            prometheus_config=str(layout.prometheus_config),
            prometheus_data=str(layout.prometheus_data),
            process_exporter_config=str(layout.process_exporter_config),
        )


CONTAINER_FILES = Files(
    registry_config="/etc/docker/registry/config.yml",
    registry_data="/var/lib/registry",
    bundle="/etc/docker/registry/bundle.pem",
    auth_config="/etc/keelhaul/config/auth.yml",
    htpasswd="/etc/keelhaul/users/htpasswd",
    signing_key="/etc/keelhaul/keys/token.key",
    signing_cert="/etc/keelhaul/keys/token.crt",
    audit_log=None,
    nginx_config="/etc/keelhaul/nginx/nginx.conf",
    nginx_temp="/tmp",  # noqa: S108 - a tmpfs/emptyDir of nginx's own
    nginx_pid="/tmp/nginx.pid",  # noqa: S108
    access_log="/dev/stdout",
    error_log="stderr",
    tls_cert="/etc/keelhaul/tls/tls.crt",
    tls_key="/etc/keelhaul/tls/tls.key",
    prometheus_config="/etc/prometheus/prometheus.yml",
    prometheus_data="/prometheus",
    process_exporter_config="/etc/process-exporter/config.yml",
)
"""The same files inside the containers of ``compose.yaml`` and the Kubernetes manifests
(``deploy/auth.Dockerfile`` sets ``KEELHAUL_AUTH_CONFIG`` to ``auth_config``)."""

CONTAINER_PORTS: Mapping[str, int] = {
    "redis": 6379,
    "auth": 8000,
    "registry": 5000,
    "registry_debug": 5001,
    "nginx": 8080,  # unprivileged: nginx runs as non-root in its container
    "nginx_status": 8081,
    "node_exporter": 9100,
    "process_exporter": 9256,
    "nginx_exporter": 9113,
    "redis_exporter": 9121,
    "prometheus": 9090,
}
TLS_ENTRY_PORT = 8443

SERVICE_NAMES: Mapping[str, str] = {
    "redis": "redis",
    "auth": "auth",
    "registry": "registry",
    "registry_debug": "registry",
    "nginx": "nginx",
    "nginx_status": HOST,
    "node_exporter": "node-exporter",
    "process_exporter": "process-exporter",
    "nginx_exporter": "nginx",  # compose: in nginx's network namespace (stub_status on lo)
    "redis_exporter": "redis-exporter",
    "prometheus": "prometheus",
}
"""Component -> the host name its peers use in compose and Kubernetes (Service names)."""


def pick_distinct(pick: Callable[[], int], taken: set[int], component: str) -> int:
    """A port from ``pick`` that is not in ``taken``; a :class:`StackError` naming the likely
    cause when the host has none to give (never a traceback)."""
    try:
        for _ in range(100):
            port = pick()
            if port not in taken:
                return port
    except OSError as exc:
        raise StackError(
            f"{component}: no free TCP port on 127.0.0.1 ({exc.strerror}); {_EXHAUSTED}"
        ) from None
    raise StackError(
        f"{component}: no free TCP port on 127.0.0.1 other than {sorted(taken)}; {_EXHAUSTED}"
    )


_EXHAUSTED = (
    "the ephemeral ports may be held by connections in TIME_WAIT (`ss -tan state time-wait | "
    "wc -l`; they clear within a minute), or set ports with --port COMPONENT=PORT"
)


def choose_ports(settings: StackSettings, pick: Callable[[], int]) -> dict[str, int]:
    """Forced ports from the settings, the rest from ``pick`` (never two equal ones)."""
    wanted = wanted_components(settings)
    ports: dict[str, int] = {c: p for c, p in settings.ports.items() if c in wanted}
    taken = set(ports.values())
    for component in wanted:
        if component in ports:
            continue
        ports[component] = pick_distinct(pick, taken, component)
        taken.add(ports[component])
    return ports


@dataclass(frozen=True)
class StackPlan:
    settings: StackSettings
    ports: Mapping[str, int]
    files: Files
    target: Target = "local"
    bind_host: str = HOST
    peers: Mapping[str, str] = field(default_factory=dict)
    """Component -> host name its peers use; missing ones are :data:`HOST`."""
    public_url: str | None = None
    """The entry point as clients see it; default: the proxy's own address."""
    storage: StorageSettings = field(default_factory=StorageSettings)
    cpus: int | None = None
    """CPUs each container may use (deployments); None: the host's own count."""
    service: str = SERVICE
    issuer: str = ISSUER

    @classmethod
    def local(
        cls, layout: StackLayout, settings: StackSettings, ports: Mapping[str, int]
    ) -> StackPlan:
        return cls(settings=settings, ports=dict(ports), files=Files.local(layout))

    @classmethod
    def deployment(
        cls,
        settings: StackSettings,
        target: Target,
        *,
        public_url: str,
        storage: StorageSettings | None = None,
        cpus: int | None = None,
    ) -> StackPlan:
        wanted = wanted_components(settings)
        ports = {c: p for c, p in CONTAINER_PORTS.items() if c in wanted}
        if settings.tls:
            ports["nginx"] = TLS_ENTRY_PORT
        return cls(
            settings=settings,
            ports=ports,
            files=CONTAINER_FILES,
            target=target,
            bind_host=ANY,
            peers=dict(SERVICE_NAMES),
            public_url=public_url.rstrip("/"),
            storage=storage or StorageSettings(),
            cpus=cpus,
        )

    # ------------------------------------------------------------------ addresses

    def bind(self, component: str) -> str:
        """``host:port`` the component listens on."""
        host = HOST if component in LOOPBACK_ONLY else self.bind_host
        return f"{host}:{self.ports[component]}"

    def peer(self, component: str) -> str:
        """``host:port`` other components use to reach it."""
        return f"{self.peers.get(component, HOST)}:{self.ports[component]}"

    @property
    def scheme(self) -> str:
        return "https" if self.settings.tls else "http"

    def url(self, component: str) -> str:
        if component == "redis":
            return f"redis://{self.peer('redis')}"
        if component == "nginx":
            return self.entry_url
        return f"http://{self.peer(component)}"

    @property
    def entry_url(self) -> str:
        """Where clients go: the proxy (the only address a client ever sees)."""
        if self.public_url is not None:
            return self.public_url
        return f"{self.scheme}://{self.peer('nginx')}"

    @property
    def realm(self) -> str:
        """The token realm the registry announces: through the proxy, like everything else."""
        return f"{self.entry_url}/token"

    @property
    def registry_url(self) -> str:
        """The registry itself, behind the proxy."""
        return self.url("registry")

    @property
    def token_url(self) -> str:
        """The token service itself, behind the proxy (benchmarks measure it directly)."""
        return f"{self.url('auth')}/token"

    @property
    def prometheus_url(self) -> str | None:
        """With ``--monitoring``: the stack's own Prometheus."""
        return self.url("prometheus") if "prometheus" in self.ports else None

    def redis_url(self, db: int = REDIS_DB_REGISTRY, *, password: bool = True) -> str | None:
        """The Redis a tier uses: the stack's own (database ``db``), or the external
        ``redis_url`` (its own database for every tier; ``password=False`` leaves its
        password out, for deployments that pass it from a Secret)."""
        external = self.settings.external_redis
        if external is not None:
            return external.url(password=password)
        return f"{self.url('redis')}/{db}" if self.settings.redis else None

    @property
    def redis_password(self) -> str | None:
        """The external Redis' password (deployments pass it as a secret variable)."""
        external = self.settings.external_redis
        return external.password if external is not None else None

    def urls(self) -> dict[str, str]:
        return {component: self.url(component) for component in self.ports}
