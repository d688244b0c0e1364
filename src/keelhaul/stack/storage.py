"""Where the registry keeps blobs: filesystem, S3 or GCS, and its ``storage:`` section. Pure.

Parameters follow the distribution 2.8 storage drivers. Credentials never go into the
rendered config: S3 keys come from ``REGISTRY_STORAGE_S3_ACCESSKEY``/``_SECRETKEY`` (or the
pod's IAM role), GCS from workload identity or ``REGISTRY_STORAGE_GCS_KEYFILE``. Debian's
``docker-registry`` is built without the GCS driver, so the local stack is filesystem only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from keelhaul.settings_base import FrozenModel

__all__ = ["StorageDriver", "StorageSettings", "render_storage", "storage_identity"]

StorageDriver = Literal["filesystem", "s3", "gcs"]

CHUNK = 10 * 1024 * 1024
"""Multipart chunk for object stores: fewer, larger parts for multi-GiB layers (a multiple of
256 KiB, as GCS wants; above S3's 5 MiB minimum)."""


class StorageSettings(FrozenModel):
    driver: StorageDriver = "filesystem"
    bucket: str | None = Field(default=None, min_length=1, description="s3/gcs bucket")
    region: str | None = Field(default=None, min_length=1, description="s3 region")
    endpoint: str | None = Field(
        default=None, min_length=1, description="s3 regionendpoint (MinIO, Ceph...); default: AWS"
    )
    rootdirectory: str | None = Field(
        default=None, description="prefix inside the bucket; default: the bucket root"
    )
    size: str = Field(default="50Gi", description="filesystem on Kubernetes: the PVC's size")

    @model_validator(mode="after")
    def _complete(self) -> StorageSettings:
        if self.driver in ("s3", "gcs") and self.bucket is None:
            raise ValueError(f"storage {self.driver} needs a bucket (--bucket)")
        if self.driver == "s3" and self.region is None:
            raise ValueError("storage s3 needs a region (--region)")
        if self.driver != "s3" and (self.region is not None or self.endpoint is not None):
            raise ValueError("--region and --endpoint apply to storage s3 only")
        return self


def render_storage(storage: StorageSettings, data_dir: str) -> dict[str, Any]:
    """The driver's part of the registry's ``storage:`` section."""
    if storage.driver == "filesystem":
        return {"filesystem": {"rootdirectory": data_dir}}
    params: dict[str, Any] = {"bucket": storage.bucket}
    if storage.driver == "s3":
        params["region"] = storage.region
        if storage.endpoint is not None:
            params["regionendpoint"] = storage.endpoint
        secure = not (storage.endpoint or "").startswith("http://")
        params.update({"encrypt": True, "secure": secure, "v4auth": True, "chunksize": CHUNK})
    else:
        params["chunksize"] = CHUNK
    if storage.rootdirectory:
        params["rootdirectory"] = storage.rootdirectory
    return {storage.driver: params}


def storage_identity(section: dict[str, Any]) -> tuple[str, str]:
    """``(driver, where)`` of a registry ``storage:`` section, for comparing tiers.

    Two registries share their blobs exactly when both values are equal: the same bucket
    (and endpoint and prefix) for object stores, the same directory for the filesystem.
    """
    for driver in ("filesystem", "s3", "gcs", "azure", "swift", "oss", "inmemory"):
        params = section.get(driver)
        if driver in section:
            p = params if isinstance(params, dict) else {}
            if driver == "filesystem":
                return driver, str(p.get("rootdirectory", "/var/lib/registry"))
            if driver == "inmemory":
                return driver, "(process memory)"
            where = str(p.get("bucket") or p.get("container") or "?")
            if p.get("regionendpoint"):
                where = f"{p['regionendpoint']}/{where}"
            elif p.get("region"):
                where = f"{where} ({p['region']})"
            if p.get("rootdirectory"):
                where += f":{p['rootdirectory']}"
            return driver, where
    return "unknown", "?"
