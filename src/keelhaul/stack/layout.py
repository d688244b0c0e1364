"""Where everything of one stack lives inside its directory.

::

    DIR/
      stack.json          state: URLs, users and passwords, pids (mode 0600)
      .lock               held while `up`/`down` run
      config/             registry.yml, auth.yml, nginx.conf, htpasswd (0600);
                          with --monitoring: prometheus.yml, process-exporter.yml,
                          tiers.yaml (the diagnosis' --tiers mapping for this stack)
      keys/               token signing key + certificate, bundle.pem for the registry;
                          with --tls: ca.crt (give it to clients), ca.key, proxy.crt/.key
      data/               registry storage (kept by `down` and by restarts)
      logs/               one <component>.log each, audit.log from the token service,
                          access.log (nginx, JSON lines)
      nginx/              nginx's prefix: its temp directories (client_body, proxy, ...)
      run/                nginx.pid; auth-metrics/: PROMETHEUS_MULTIPROC_DIR (emptied at start)
      prometheus/         with --monitoring: Prometheus' TSDB (a day's retention)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_DIR", "NGINX_TEMP_DIRS", "StackLayout"]

DEFAULT_DIR = Path(".keelhaul/stack")

NGINX_TEMP_DIRS: tuple[str, ...] = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
"""Every temp path nginx has: all set, so that nginx never touches /var/lib/nginx."""


@dataclass(frozen=True)
class StackLayout:
    root: Path

    @classmethod
    def at(cls, directory: Path) -> StackLayout:
        """Absolute paths, so that components never depend on the caller's cwd."""
        return cls(directory.expanduser().absolute())

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def nginx_dir(self) -> Path:
        """nginx's prefix (``-p``)."""
        return self.root / "nginx"

    @property
    def nginx_temp_dir(self) -> Path:
        return self.nginx_dir / "tmp"

    @property
    def registry_config(self) -> Path:
        return self.config_dir / "registry.yml"

    @property
    def auth_config(self) -> Path:
        return self.config_dir / "auth.yml"

    @property
    def nginx_config(self) -> Path:
        return self.config_dir / "nginx.conf"

    @property
    def prometheus_config(self) -> Path:
        return self.config_dir / "prometheus.yml"

    @property
    def process_exporter_config(self) -> Path:
        return self.config_dir / "process-exporter.yml"

    @property
    def tiers_file(self) -> Path:
        return self.config_dir / "tiers.yaml"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus"

    @property
    def htpasswd(self) -> Path:
        return self.config_dir / "htpasswd"

    @property
    def bundle(self) -> Path:
        return self.keys_dir / "bundle.pem"

    @property
    def ca_cert(self) -> Path:
        return self.keys_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.keys_dir / "ca.key"

    @property
    def tls_cert(self) -> Path:
        return self.keys_dir / "proxy.crt"

    @property
    def tls_key(self) -> Path:
        return self.keys_dir / "proxy.key"

    @property
    def audit_log(self) -> Path:
        return self.logs_dir / "audit.log"

    @property
    def access_log(self) -> Path:
        return self.logs_dir / "access.log"

    @property
    def auth_metrics_dir(self) -> Path:
        return self.run_dir / "auth-metrics"

    def log(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    def nginx_temp(self, kind: str) -> Path:
        return self.nginx_temp_dir / kind

    def dirs(self) -> tuple[Path, ...]:
        return (
            self.config_dir,
            self.keys_dir,
            self.data_dir,
            self.logs_dir,
            self.run_dir,
            self.nginx_dir,
            self.nginx_temp_dir,
            *(self.nginx_temp(kind) for kind in NGINX_TEMP_DIRS),
        )
