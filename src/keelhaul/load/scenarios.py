"""The flows a simulated docker client runs, written over :class:`RegistryClient`.

Every flow starts as docker starts: ``GET /v2/`` without credentials, the ``401`` with the
bearer challenge (counted under ``ping``, as a success), then a token for the scopes of the
first operation (``token``), then the operations with that token, which the client reuses
until it expires and renews when a new scope is needed. A fresh client per flow means a
fresh login per flow: tokens are never shared between simulated clients.

==============  ==========================================================================
scenario        requests (stage names)
==============  ==========================================================================
``pull``        ping, token, ``manifest GET`` (by tag), ``blob GET`` for the config, then
                for the layers, ``parallel`` at once, as docker does (only blobs the user
                has not pulled before with ``--only-missing``; hashed with ``--verify``)
``push``        ping, token, ``blob HEAD`` per blob, ``upload start`` / ``upload PATCH`` /
                ``upload PUT`` per missing blob (docker's POST-PATCH-PUT), ``manifest PUT``
``login``       ping, token (the pull scope of the test repository): the token service
``browse``      ping, token, ``tags`` of the test repository, token, ``catalog``
``pull-reuse``  ``pull`` with one client kept across iterations: the token is reused, only
                the first iteration pings (for ``make bench-load``)
==============  ==========================================================================

No Locust here: the transport decides where the requests are counted. ``run_all`` runs a
list of calls (blob transfers) concurrently; the load kit passes a gevent one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from keelhaul.client.images import BuiltImage
from keelhaul.client.media import select_platform
from keelhaul.client.registry import RegistryClient

__all__ = [
    "FLOW_ENTRIES",
    "RunAll",
    "browse",
    "flow_entry",
    "login",
    "pull",
    "push",
    "sequential",
]

T = TypeVar("T")
RunAll = Callable[[Sequence[Callable[[], int]]], list[int]]

FLOW_ENTRIES: dict[str, str] = {
    "pull": "image pull",
    "pull-reuse": "image pull",
    "push": "image push",
    "login": "login",
    "browse": "browse",
}
"""The whole-flow statistics entry of each scenario (its requests count on their own too)."""


def flow_entry(scenario: str) -> str:
    return FLOW_ENTRIES[scenario]


def sequential(calls: Sequence[Callable[[], int]]) -> list[int]:
    return [call() for call in calls]


def pull(
    client: RegistryClient,
    repository: str,
    tag: str,
    *,
    verify: bool,
    have: set[str] | None = None,
    run_all: RunAll = sequential,
) -> int:
    """Pull ``repository:tag`` and throw the bytes away (hashed first with ``verify``).
    ``have``: blobs this client holds already (skipped, and added to once pulled).
    Returns the body bytes received."""
    client.probe()
    manifest = client.get_manifest(repository, tag)
    received = len(manifest.raw)
    if manifest.is_index:
        chosen = select_platform(manifest, client.platform)
        manifest = client.get_manifest(repository, chosen.digest)
        received += len(manifest.raw)
    config = manifest.config
    if config is not None and (have is None or config.digest not in have):
        received += client.get_blob(repository, config, verify=verify)  # docker needs it first
        if have is not None:
            have.add(config.digest)
    layers = [b for b in manifest.layers if have is None or b.digest not in have]

    def fetch(blob_index: int) -> Callable[[], int]:
        blob = layers[blob_index]
        return lambda: client.get_blob(repository, blob, verify=verify)

    sizes = run_all([fetch(i) for i in range(len(layers))])
    if have is not None:
        have.update(b.digest for b in layers)
    return received + sum(sizes)


def push(client: RegistryClient, repository: str, tag: str, image: BuiltImage) -> int:
    """Push ``image`` as ``repository:tag`` (blobs first, skipped when present, then the
    manifest). Returns the bytes sent: uploaded blobs and the manifest."""
    client.probe()
    result = client.push_image(repository, tag, image)
    return result.bytes + len(image.root.raw)


def login(client: RegistryClient, repository: str) -> int:
    """What ``docker login`` then a pull's first step cost the token service: the challenge,
    and one token (always fetched, never taken from a cache)."""
    client.probe()
    client.get_token((client.pull_scopes(repository)[0],), reuse=False)
    return 0


def browse(client: RegistryClient, repository: str) -> int:
    """A registry UI's page: the repository's tags, then the catalog (one page each)."""
    client.probe()
    client.tags(repository)
    client.catalog()
    return 0
