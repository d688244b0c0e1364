"""What only a deployment has: where clients find it, storage, images, sizes. Frozen.

Everything else (worker classes, proxy tuning, TLS, Redis on/off...) comes from the same
:class:`~keelhaul.stack.settings.StackSettings` the local stack uses.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from keelhaul import __version__
from keelhaul.settings_base import FrozenModel
from keelhaul.stack.storage import StorageSettings

__all__ = ["DeploySettings", "Images", "MonitoringImages", "RenderTarget"]

RenderTarget = Literal["compose", "k8s"]


_IMAGE = r"^[a-z0-9][a-z0-9._/:@-]*$"
"""An image reference as docker spells it: [host[:port]/]path[:tag][@digest], lower case."""


class Images(FrozenModel):
    """Each tier's image: the official ones by default, so a render works anywhere images
    can be pulled; ``make images`` builds local stand-ins from Debian packages
    (``keelhaul.engine.images.ImageNames``) for hosts that cannot pull."""

    auth: str = Field(
        default=f"keelhaul-auth:{__version__}",
        pattern=_IMAGE,
        description="built from deploy/auth.Dockerfile",
    )
    registry: str = Field(default="registry:2.8.3", pattern=_IMAGE)
    nginx: str = Field(
        default="nginxinc/nginx-unprivileged:1.26-alpine",
        pattern=_IMAGE,
        description="non-root nginx (uid 101); it has stub_status and busybox wget",
    )
    redis: str = Field(default="redis:7.2-alpine", pattern=_IMAGE)


class MonitoringImages(FrozenModel):
    """With ``--monitoring``: the upstream images of the versions Debian ships (the ones
    ``stack up --monitoring`` runs), so the flags rendered are the flags tested."""

    prometheus: str = "prom/prometheus:v2.42.0"
    node_exporter: str = "prom/node-exporter:v1.5.0"
    process_exporter: str = "ncabatoff/process-exporter:0.7.10"
    nginx_exporter: str = "nginx/nginx-prometheus-exporter:0.11.0"
    redis_exporter: str = "oliver006/redis_exporter:v1.45.0"


class DeploySettings(FrozenModel):
    target: RenderTarget
    public_url: str = Field(
        default="http://localhost:5000",
        description="the entry point as clients see it: the realm is <public_url>/token",
    )
    storage: StorageSettings = Field(default_factory=StorageSettings)
    namespace: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63
    )
    cpus: int = Field(
        default=2,
        ge=1,
        le=64,
        description="CPU limit of the nginx, registry and token service containers; worker "
        "counts follow it (a container's os.cpu_count() is the node's)",
    )
    auth_replicas: tuple[int, int] = Field(
        default=(2, 10), description="token service HorizontalPodAutoscaler min, max"
    )
    nginx_replicas: int = Field(default=2, ge=1, le=100)
    images: Images = Field(default_factory=Images)
    monitoring_images: MonitoringImages = Field(default_factory=MonitoringImages)
    publish_address: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F.:\[\]]+$",
        description="compose: the host address the entry port is published on "
        "(default: every address)",
    )

    @field_validator("public_url")
    @classmethod
    def _entry(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be http(s)://HOST[:PORT], the address clients use")
        if parts.path.strip("/") or parts.query:
            raise ValueError("must not have a path: the registry is served at /v2/")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> DeploySettings:
        low, high = self.auth_replicas
        if not 1 <= low <= high:
            raise ValueError("auth_replicas: need 1 <= min <= max")
        return self

    @property
    def public_host(self) -> str:
        return urlsplit(self.public_url).hostname or "localhost"

    @property
    def public_port(self) -> int:
        parts = urlsplit(self.public_url)
        return parts.port or (443 if parts.scheme == "https" else 80)
