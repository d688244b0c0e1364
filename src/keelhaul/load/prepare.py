"""Before the first user starts (master or single process): log in, seed, plan.

Everything here fails fast, with the reason, before any load is generated: a target that
cannot be reached, credentials the token service rejects, a pull identity that cannot
read the test repository. It runs over the httpx transport, so none of it is measured.
After the run, :func:`clean_up` deletes what the run pushed.
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keelhaul.client.httpx_transport import HttpxTransport
from keelhaul.client.registry import RegistryClient
from keelhaul.client.tokens import Credentials
from keelhaul.errors import LoadError, RegistryClientError
from keelhaul.load import seed as seeding
from keelhaul.load.mix import MixEntry
from keelhaul.load.plan import RunPlan
from keelhaul.load.scenarios import scenario
from keelhaul.load.settings import LoadSettings
from keelhaul.load.target import Target

__all__ = ["Prepared", "clean_up", "new_run_id", "prepare"]


def new_run_id(now: float | None = None) -> str:
    """``20261126-154012-3fa2``: sortable, unique enough, a valid repository component."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Prepared:
    plan: RunPlan
    seeded: seeding.SeedOutcome
    deletes: seeding.DeleteSupport


def _pushes(mix: Sequence[MixEntry]) -> bool:
    """Whether a scenario of ``mix`` pushes (so the run needs a push repository)."""
    return any(scenario(name).needs_push_repo for name, _ in mix)


def _verify(settings: LoadSettings, target: Target) -> bool | ssl.SSLContext:
    if settings.insecure:
        return False
    if target.ca_cert:
        return ssl.create_default_context(cafile=target.ca_cert)
    return True


def admin_client(
    settings: LoadSettings, target: Target, credentials: Credentials
) -> RegistryClient:
    transport = HttpxTransport(
        verify=_verify(settings, target), timeout=settings.timeout_s, parallel=8
    )
    return RegistryClient(
        transport,
        target.registry,
        credentials=credentials,
        plain_http=target.plain_http,
        token_method=settings.token_method,
        parallel=4,
    )


def prepare(
    settings: LoadSettings, target: Target, run_id: str, say: Callable[[str], None]
) -> Prepared:
    """Seed the test repository, check both identities, probe deletes; the run plan."""
    pusher = admin_client(settings, target, target.identities.push)
    puller = admin_client(settings, target, target.identities.pull)
    push_repo = seeding.push_repository(settings.repo, run_id)
    try:
        with pusher, puller:
            pusher.ping()
            built = seeding.build_seed_images(
                settings.images, settings.layers, settings.layer_size, settings.seed
            )
            seeded = seeding.seed(pusher, settings.repo, built, say=say)
            puller.head_manifest(settings.repo, seeded.images[0].tag)
            if _pushes(settings.mix):
                deletes = seeding.deletes_allowed(pusher, push_repo)
            else:
                deletes = seeding.DeleteSupport(False, "no pushes in the mix")
    except RegistryClientError as exc:
        raise LoadError(f"cannot prepare the run on {target.url}: {exc}") from None
    plan = RunPlan(
        run_id=run_id,
        registry=target.registry,
        plain_http=target.plain_http,
        insecure=settings.insecure,
        ca_cert=target.ca_cert,
        timeout_s=settings.timeout_s,
        token_method=settings.token_method,
        embedded=target.embedded,
        repo=settings.repo,
        images=seeded.images,
        push_repo=push_repo,
        push_unique=deletes.allowed,
        pushed_log=str(settings.pushed_log.resolve()) if settings.pushed_log is not None else None,
        push_tags=settings.push_tags,
        layers=settings.layers,
        layer_size=settings.layer_size,
        seed=settings.seed,
        mix=settings.mix,
        verify=settings.verify,
        only_missing=settings.only_missing,
        parallel=settings.parallel,
        late_after_ms=settings.late_after_ms,
        drop_after_s=settings.drop_after_s,
        total_iterations=settings.iterations,
        total_rate=settings.rate,
    )
    return Prepared(plan, seeded, deletes)


def clean_up(
    settings: LoadSettings, target: Target, prepared: Prepared
) -> tuple[str, dict[str, str]]:
    """Delete what the run pushed (when deletes work); a note for the report, and labels."""
    plan = prepared.plan
    labels = {"push_repository": plan.push_repo}
    if not _pushes(plan.mix):
        return "", {}
    if settings.keep_pushes:
        labels["push_cleanup"] = "none: --keep-pushes"
        return f"Pushes kept in {plan.push_repo} (--keep-pushes).", labels
    if not plan.push_unique:
        labels["push_cleanup"] = f"none: {prepared.deletes.reason}"
        return (
            f"Pushes reused {plan.push_tags} tags in {plan.push_repo}; nothing was deleted "
            f"({prepared.deletes.reason}). Their blobs stay until the registry's garbage "
            "collection.",
            labels,
        )
    try:
        with admin_client(settings, target, target.identities.push) as client:
            done = seeding.cleanup(client, plan.push_repo)
    except RegistryClientError as exc:
        labels["push_cleanup"] = f"failed: {exc}"
        return f"Cleanup of {plan.push_repo} failed: {exc}", labels
    labels["push_cleanup"] = f"deleted {done.deleted} manifests, {done.remaining} tags left"
    note = (
        f"Cleanup: deleted {done.deleted} pushed manifests in {plan.push_repo}; "
        f"{done.remaining} tags left"
    )
    if done.first_error:
        note += f" (first error: {done.first_error})"
    return note + ".", labels
