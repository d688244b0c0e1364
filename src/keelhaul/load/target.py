"""What ``keelhaul load`` loads, and who the simulated clients are.

With ``--target URL`` the registry is anyone's, and so are the credentials: flags, then
``KEELHAUL_REGISTRY_USERNAME``/``_PASSWORD``, then docker's and podman's auth files
(:mod:`keelhaul.client.credentials`); every flow uses that one identity.

Without a target the kit loads the local reference stack in ``--stack-dir`` (default
``.keelhaul/load-stack``): a healthy one already running there is reused, else one is
started (and stopped again at the end, unless ``--keep-stack``). Clients use the stack's
entry point (nginx) when it has one, else the registry itself. Its two users play the
parts they have in real life: ``reader``, a CI runner or a deployment, pulls (``pull``,
``login``); ``admin``, a build pipeline, seeds the test repository, pushes and browses the
catalog (``push``, ``browse``), and cleans up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from keelhaul.client.credentials import resolve_credentials
from keelhaul.client.tokens import Credentials
from keelhaul.errors import KeelhaulError, LoadError
from keelhaul.load.scenarios import Scenario
from keelhaul.load.settings import LoadSettings
from keelhaul.stack import Stack, StackState, load_stack_settings

__all__ = [
    "Identities",
    "Target",
    "embedded_identities",
    "open_target",
    "split_url",
    "worker_identities",
]


@dataclass(frozen=True)
class Identities:
    """``pull`` runs the ``reader`` scenarios, ``push`` the ``admin`` ones."""

    pull: Credentials
    push: Credentials

    def for_scenario(self, scenario: Scenario) -> Credentials:
        return self.pull if scenario.identity == "reader" else self.push


@dataclass(frozen=True)
class Target:
    registry: str
    """``host[:port]``, as in image references."""
    plain_http: bool
    identities: Identities
    embedded: bool
    ca_cert: str | None = None
    stack: Stack | None = None
    started_stack: bool = False

    @property
    def url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.registry}"


def split_url(url: str) -> tuple[str, bool]:
    """``http://127.0.0.1:5000`` -> (``127.0.0.1:5000``, plain http)."""
    scheme, _, rest = url.partition("://")
    return rest.rstrip("/"), scheme == "http"


def embedded_identities(state: StackState) -> Identities:
    source = f"{state.dir}/stack.json"
    try:
        reader = Credentials("reader", state.password("reader"), source=source)
        admin = Credentials("admin", state.password("admin"), source=source)
    except KeyError:
        raise LoadError(
            f"the stack in {state.dir} has no reader/admin users; start it again with "
            f"keelhaul stack up --dir {state.dir}"
        ) from None
    return Identities(pull=reader, push=admin)


def _entry(state: StackState) -> str:
    return state.entry or state.registry


def _one_identity(
    settings: LoadSettings, registry: str, environ: Mapping[str, str], home: Path
) -> Identities:
    password = settings.password.get_secret_value() if settings.password is not None else None
    credentials = resolve_credentials(
        registry,
        username=settings.username,
        password=password,
        environ=environ,
        home=home,
        authfile=settings.authfile,
    )
    return Identities(pull=credentials, push=credentials)


def open_target(
    settings: LoadSettings,
    *,
    environ: Mapping[str, str],
    home: Path,
    say: Callable[[str], None],
) -> Target:
    """Resolve ``--target`` and its credentials, or reuse / start the local stack."""
    if settings.target is not None:
        registry, plain = split_url(settings.target)
        identities = _one_identity(settings, registry, environ, home)
        return Target(registry, plain, identities, embedded=False)
    try:
        stack = Stack(settings.stack_dir, load_stack_settings(environ=environ))
        state = stack.read()
        started = False
        if state is not None and state.status == "running" and stack.status().healthy:
            say(f"reusing the running stack in {settings.stack_dir}")
        else:
            say(f"starting the local stack in {settings.stack_dir} (keelhaul stack up)")
            state = stack.up()
            started = True
    except KeelhaulError as exc:
        raise LoadError(f"cannot start the local stack: {exc}") from None
    registry, plain = split_url(_entry(state))
    return Target(
        registry,
        plain,
        embedded_identities(state),
        embedded=True,
        ca_cert=state.ca_cert,
        stack=stack,
        started_stack=started,
    )


def worker_identities(
    settings: LoadSettings,
    *,
    registry: str,
    embedded: bool,
    environ: Mapping[str, str],
    home: Path,
) -> Identities:
    """A worker's own credentials for the master's target: the stack's users from its
    ``--stack-dir`` when the master loads a local stack, else flags, env or auth files."""
    if not embedded:
        return _one_identity(settings, registry, environ, home)
    try:
        state = Stack(settings.stack_dir, load_stack_settings(environ=environ)).read()
    except KeelhaulError as exc:
        raise LoadError(f"cannot read the stack's users: {exc}") from None
    if state is None:
        raise LoadError(
            f"the master loads its local stack, but there is none in {settings.stack_dir}; "
            "give this worker the same --stack-dir (same host), or load a --target"
        )
    return embedded_identities(state)
