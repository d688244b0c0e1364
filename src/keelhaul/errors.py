"""Every error keelhaul raises on purpose, in one place.

::

    KeelhaulError                      base; ``str(e)`` is safe to show a user
    ├── ConfigError                    settings invalid; names the key and the fix   (exit 2)
    ├── RequestError                   a token-service request the client got wrong (HTTP 4xx)
    │   ├── BadRequest                 400 malformed input (scope, header, grant, service)
    │   │   └── ScopeError             400 a scope string outside the spec's grammar
    │   ├── Unauthorized               401 credentials missing or wrong
    │   ├── Forbidden                  403 authenticated, but nothing may be granted at all
    │   ├── TooManyRequests            429 brute-force protection; carries ``retry_after``
    │   └── PayloadTooLarge            413 body or query over the configured limit
    ├── BackendError                   a user store or cache could not decide (never shown raw)
    ├── IncompleteImport               a docker_auth import left something out; lists it (exit 8)
    ├── StackError                     the local stack could not start/stop           (exit 3)
    │   ├── MissingBinaryError         names the Debian package to install
    │   └── ComponentError             a component died or never became healthy; has a log tail
    ├── RegistryClientError            the registry client (CLI and load users)         (exit 4)
    │   ├── InvalidReference           an image reference or repository name that does not parse (2)
    │   ├── RegistryUnauthorized       credentials missing or wrong (registry or token service) (10)
    │   ├── RegistryDenied             authenticated, but the registry refuses this action     (11)
    │   ├── RegistryNotFound           something named does not exist                          (12)
    │   │   ├── RepositoryNotFound     the repository                                          (12)
    │   │   ├── ManifestNotFound       the tag, the manifest digest, or the wanted platform    (13)
    │   │   └── BlobNotFound           a layer or config blob                                  (14)
    │   ├── DigestMismatch             content does not hash to its digest; nothing was kept   (15)
    │   ├── RegistryUnreachable        cannot connect, or timed out                            (16)
    │   │   └── ConnectionDropped      the connection broke mid-transfer (uploads resume)      (16)
    │   ├── TLSFailure                 TLS handshake or certificate verification failed        (17)
    │   ├── UnsupportedMediaType       a manifest type keelhaul does not speak (e.g. schema 1) (18)
    │   ├── CredentialsError           a credentials file unreadable, or names a helper        (19)
    │   └── LayoutError                an OCI image layout missing, malformed or without a tag (20)
    ├── LoadError                      the load kit (keelhaul.load)                      (exit 5)
    │   ├── CheckSpecError             a ``--check`` that does not parse; also a ValueError     (2)
    │   ├── StatsFormatError           load statistics from a worker or file that do not parse (5)
    │   └── ChecksFailed               the run finished, but ``--check`` thresholds failed      (6)
    ├── DiagnoseError                  the diagnosis (keelhaul.diagnose)                 (exit 7)
    │   └── ProfileError               py-spy or dot missing or failing; says which
    └── TuneError                      keelhaul tune could not measure or apply      (exit 9)

HTTP status and exit codes are assigned here and mapped in exactly one place each:
``keelhaul.auth.app`` (HTTP) and ``keelhaul.cli.main`` (exit codes).
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BadRequest",
    "BlobNotFound",
    "CheckSpecError",
    "ChecksFailed",
    "ComponentError",
    "ConfigError",
    "ConnectionDropped",
    "CredentialsError",
    "DiagnoseError",
    "DigestMismatch",
    "Forbidden",
    "IncompleteImport",
    "InvalidReference",
    "KeelhaulError",
    "LayoutError",
    "LoadError",
    "ManifestNotFound",
    "MissingBinaryError",
    "PayloadTooLarge",
    "ProfileError",
    "RegistryClientError",
    "RegistryDenied",
    "RegistryNotFound",
    "RegistryUnauthorized",
    "RegistryUnreachable",
    "RepositoryNotFound",
    "RequestError",
    "ScopeError",
    "StackError",
    "StatsFormatError",
    "TLSFailure",
    "TooManyRequests",
    "TuneError",
    "Unauthorized",
    "UnsupportedMediaType",
]


class KeelhaulError(Exception):
    """Base class. The message must never contain a secret or a backend's raw text."""

    exit_code: int = 1


class ConfigError(KeelhaulError):
    """Invalid settings. ``problems`` lists one ``key: what is wrong`` line each."""

    exit_code = 2

    def __init__(self, component: str, problems: list[str]) -> None:
        self.component = component
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {component} settings:\n{lines}")


class RequestError(KeelhaulError):
    """A client error on the token service; mapped to a Docker-style error body."""

    status: int = 400
    code: str = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(RequestError):
    status = 400
    code = "BAD_REQUEST"


class ScopeError(BadRequest):
    code = "INVALID_SCOPE"


class Unauthorized(RequestError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(RequestError):
    status = 403
    code = "DENIED"


class TooManyRequests(RequestError):
    status = 429
    code = "TOOMANYREQUESTS"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class PayloadTooLarge(RequestError):
    status = 413
    code = "SIZE_INVALID"


class BackendError(KeelhaulError):
    """A backend (user store, Redis) failed to answer; callers degrade or deny."""


class IncompleteImport(KeelhaulError):
    """``keelhaul auth import-docker-auth`` wrote what it could; the message lists the rest."""

    exit_code = 8


class StackError(KeelhaulError):
    exit_code = 3


class MissingBinaryError(StackError):
    def __init__(self, binary: str, package: str) -> None:
        super().__init__(
            f"{binary} not found; install the Debian package: apt-get install {package}"
        )
        self.binary = binary
        self.package = package


class ComponentError(StackError):
    def __init__(self, component: str, problem: str, log_tail: str = "") -> None:
        msg = f"{component}: {problem}"
        if log_tail.strip():
            msg += f"\n--- last lines of the {component} log ---\n{log_tail.rstrip()}"
        super().__init__(msg)
        self.component = component
        self.problem = problem
        self.log_tail = log_tail


class RegistryClientError(KeelhaulError):
    exit_code = 4


# --- the registry client (keelhaul.client); messages name what failed and what to do ------


class InvalidReference(RegistryClientError):
    """A usage error, so it exits like one (click's usage errors exit 2 too)."""

    exit_code = 2


class RegistryUnauthorized(RegistryClientError):
    exit_code = 10


class RegistryDenied(RegistryClientError):
    exit_code = 11


class RegistryNotFound(RegistryClientError):
    exit_code = 12


class RepositoryNotFound(RegistryNotFound):
    exit_code = 12


class ManifestNotFound(RegistryNotFound):
    exit_code = 13


class BlobNotFound(RegistryNotFound):
    exit_code = 14


class DigestMismatch(RegistryClientError):
    """Carries both digests; whatever was being written has been removed."""

    exit_code = 15

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class RegistryUnreachable(RegistryClientError):
    exit_code = 16


class ConnectionDropped(RegistryUnreachable):
    """The connection broke after the request started; an upload may resume from here."""


class TLSFailure(RegistryClientError):
    exit_code = 17


class UnsupportedMediaType(RegistryClientError):
    exit_code = 18


class CredentialsError(RegistryClientError):
    exit_code = 19


class LayoutError(RegistryClientError):
    exit_code = 20


# --- the load kit (keelhaul.load) ------------------------------------------------------------


class LoadError(KeelhaulError):
    exit_code = 5


class CheckSpecError(LoadError, ValueError):
    """A ``--check`` spec that does not parse: a usage error, so it exits like one."""

    exit_code = 2


class StatsFormatError(LoadError, ValueError):
    """Statistics (a worker's delta, a snapshot, a histogram) that cannot be merged exactly."""


class ChecksFailed(LoadError):
    """Raised by the CLI after the reports are written; ``failures`` has one line per check."""

    exit_code = 6

    def __init__(self, failures: list[str]) -> None:
        self.failures = list(failures)
        lines = "\n".join(f"  - {f}" for f in self.failures)
        noun = "check" if len(self.failures) == 1 else "checks"
        super().__init__(f"{len(self.failures)} {noun} failed:\n{lines}")


# --- the diagnosis (keelhaul.diagnose) ---------------------------------------------------------


class DiagnoseError(KeelhaulError):
    exit_code = 7


class ProfileError(DiagnoseError):
    """py-spy or Graphviz's dot is missing or failed; the message says which and why."""


class TuneError(KeelhaulError):
    """``keelhaul tune``: a bad option, a run that could not be measured, a change not applied."""

    exit_code = 9
