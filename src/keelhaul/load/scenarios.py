"""What a load scenario is: one :class:`Scenario` record per scenario, in one table.

Everything else in the load kit reads :data:`SCENARIOS` (the mix's names and help, the
whole-flow statistics entries, the identity a flow runs as, whether the run needs a push
repository, and the flow itself); :func:`scenario` looks a name up and fails loudly on an
unknown one. To add a scenario, write its flow here and register one record.

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

No Locust here: the transport decides where the requests are counted, and the process
running the flow (:class:`~keelhaul.load.runtime.Runtime`) answers the :class:`Turn` calls.
``run_all`` runs a list of calls (blob transfers) concurrently; the load kit passes a gevent
one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from keelhaul.client.images import BuiltImage
from keelhaul.client.media import select_platform
from keelhaul.client.registry import RegistryClient
from keelhaul.errors import LoadError

if TYPE_CHECKING:
    from keelhaul.load.plan import RunPlan, SeedImage

__all__ = [
    "FLOW_ENTRIES",
    "SCENARIOS",
    "Flow",
    "Identity",
    "RunAll",
    "Scenario",
    "Turn",
    "browse",
    "login",
    "pull",
    "push",
    "scenario",
    "sequential",
]

RunAll = Callable[[Sequence[Callable[[], int]]], list[int]]
Identity = Literal["reader", "admin"]
"""Who runs a flow: ``reader`` (a CI runner pulling) or ``admin`` (a build pipeline pushing
and browsing). With ``--target`` both are the one identity given."""


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


# --- the registry -----------------------------------------------------------------------------


class Turn(Protocol):
    """What a flow asks of the process running it, for one user's iteration."""

    @property
    def plan(self) -> RunPlan: ...

    @property
    def have(self) -> set[str]:
        """Blobs this user holds already (``--only-missing``)."""
        ...

    def next_image(self) -> SeedImage:
        """The seeded image this process pulls next (round-robin)."""
        ...

    def next_push(self) -> tuple[str, str, BuiltImage]:
        """Repository, tag and a freshly built image for this process's next push."""
        ...

    def pushed(self, reference: str) -> None:
        """``repo:tag@digest`` was pushed (for ``--pushed-log``)."""
        ...

    def run_all(self, calls: Sequence[Callable[[], int]]) -> list[int]: ...


Flow = Callable[[RegistryClient, Turn], int]
"""One iteration of a scenario over a ready client; returns the body bytes it moved."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load scenario: everything the load kit needs to know about it."""

    name: str
    """As written in ``--mix``."""
    description: str
    """The requests one flow makes (``keelhaul load --help``)."""
    entry: str
    """The whole-flow statistics entry (its requests also count under their own stages)."""
    identity: Identity
    needs_push_repo: bool
    """The run gets a push repository (and deletes what it pushed afterwards)."""
    flow: Flow
    keep_client: bool = False
    """Reuse one client (and its token) across the user's iterations instead of a fresh login."""


def _pull_flow(client: RegistryClient, turn: Turn) -> int:
    plan = turn.plan
    return pull(
        client,
        plan.repo,
        turn.next_image().tag,
        verify=plan.verify,
        have=turn.have if plan.only_missing else None,
        run_all=turn.run_all,
    )


def _push_flow(client: RegistryClient, turn: Turn) -> int:
    repository, tag, image = turn.next_push()
    sent = push(client, repository, tag, image)
    turn.pushed(f"{repository}:{tag}@{image.digest}")
    return sent


def _login_flow(client: RegistryClient, turn: Turn) -> int:
    return login(client, turn.plan.repo)


def _browse_flow(client: RegistryClient, turn: Turn) -> int:
    return browse(client, turn.plan.repo)


def _table(*records: Scenario) -> Mapping[str, Scenario]:
    return {record.name: record for record in records}


SCENARIOS: Mapping[str, Scenario] = _table(
    Scenario(
        "pull",
        "ping, token, manifest GET, then the config and layer blobs (docker pull)",
        entry="image pull",
        identity="reader",
        needs_push_repo=False,
        flow=_pull_flow,
    ),
    Scenario(
        "push",
        "ping, token, blob HEAD, upload start/PATCH/PUT, manifest PUT (docker push)",
        entry="image push",
        identity="admin",
        needs_push_repo=True,
        flow=_push_flow,
    ),
    Scenario(
        "login",
        "ping, token: the token service alone (docker login)",
        entry="login",
        identity="reader",
        needs_push_repo=False,
        flow=_login_flow,
    ),
    Scenario(
        "browse",
        "ping, token, tags, catalog (a registry UI)",
        entry="browse",
        identity="admin",
        needs_push_repo=False,
        flow=_browse_flow,
    ),
    Scenario(
        "pull-reuse",
        "pull, keeping the client's token across iterations (benchmarks only)",
        entry="image pull",
        identity="reader",
        needs_push_repo=False,
        flow=_pull_flow,
        keep_client=True,
    ),
)
"""Every scenario, in the order help and errors list them."""

FLOW_ENTRIES = frozenset(record.entry for record in SCENARIOS.values())
"""The whole-flow statistics entries: left out of the ``Aggregated`` row (their requests
are in it)."""


def scenario(name: str) -> Scenario:
    """The registered scenario ``name``; LoadError naming the choices for any other."""
    found = SCENARIOS.get(name)
    if found is None:
        raise LoadError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    return found
