"""Registry authentication as a state machine: no I/O, the clock passed in.

:class:`AuthState` answers the questions the request loop in
:mod:`keelhaul.client.registry` asks:

* which ``Authorization`` header goes on a request that needs these scopes
  (:meth:`~AuthState.header`): a cached token that covers them and is not about to expire,
  Basic credentials for a Basic registry, or nothing yet;
* how to ask the token service for a token (:meth:`~AuthState.token_request`): ``GET`` with
  Basic credentials (Docker's way), or the OAuth2 ``POST`` form with a refresh token, or with
  a password and ``access_type=offline`` to obtain one;
* what a token answer means (:meth:`~AuthState.token_received`);
* what to do about a ``401`` (:meth:`~AuthState.unauthorized`): fetch a token for the
  scopes the registry asked for and retry once, or give up with
  :class:`~keelhaul.errors.RegistryUnauthorized` / :class:`~keelhaul.errors.RegistryDenied`
  when retrying cannot help (a token fetched for exactly these scopes was refused).

Tokens are reused until ``expires_in`` minus a safety margin (a tenth of the lifetime, at
most 30 s, at least 1 s, at most half the lifetime): a token that expires in flight costs
a retry; one dropped a little early costs nothing.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

from keelhaul.auth.scopes import Scope, parse_scopes
from keelhaul.client.challenge import Challenge
from keelhaul.errors import (
    RegistryClientError,
    RegistryDenied,
    RegistryUnauthorized,
    ScopeError,
)

__all__ = [
    "CATALOG_SCOPE",
    "AuthState",
    "Credentials",
    "Token",
    "TokenFetch",
    "covers",
    "merge_scopes",
    "repository_scope",
]

CATALOG_SCOPE = "registry:catalog:*"
DEFAULT_EXPIRES_IN = 60  # the token spec's default when the answer names none
MAX_MARGIN = 30.0

Scopes = tuple[str, ...]
TokenMethod = Literal["get", "post"]
Grant = Literal["anonymous", "basic", "password", "refresh_token"]


def repository_scope(repository: str, *actions: str) -> str:
    """``repository:<name>:<actions>`` with the actions sorted, as the token service keys it."""
    return str(Scope("repository", repository, tuple(sorted(set(actions)))))


def merge_scopes(*groups: Iterable[str]) -> Scopes:
    """One canonical, sorted tuple; scopes of one resource merged (``pull`` + ``push``)."""
    pieces = [s for group in groups for s in group]
    try:
        return tuple(sorted(str(s) for s in parse_scopes(pieces, max_scopes=64)))
    except ScopeError as exc:
        raise RegistryClientError(f"the registry asked for an unusable scope: {exc}") from None


@dataclass(frozen=True)
class Credentials:
    """Who the client is. ``source`` (flags, environment, a file path) is safe to print."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str = "none"

    @property
    def anonymous(self) -> bool:
        return self.username is None and self.identity_token is None

    def basic(self) -> str:
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Token:
    value: str = field(repr=False)
    scopes: frozenset[str]
    expires_at: float
    """Clock time after which it is not used any more (the safety margin already applied)."""


@dataclass(frozen=True, slots=True)
class TokenFetch:
    """A token request to send: ``name`` for statistics is always ``token``."""

    method: Literal["GET", "POST"]
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes | None = field(repr=False)
    grant: Grant
    scopes: Scopes


@functools.lru_cache(maxsize=4096)
def _split(scope: str) -> tuple[str, frozenset[str]]:
    """``repository:a/b:pull,push`` -> (``repository:a/b``, {pull, push})."""
    resource, _, actions = scope.rpartition(":")
    return resource, frozenset(actions.split(","))


def covers(held: frozenset[str], wanted: frozenset[str]) -> bool:
    """Whether a token asked for ``held`` was asked for every action in ``wanted``
    (``repository:x:pull,push`` covers ``repository:x:pull``)."""
    if wanted <= held:
        return True
    granted: dict[str, frozenset[str]] = {}
    for scope in held:
        resource, actions = _split(scope)
        granted[resource] = granted.get(resource, frozenset()) | actions
    for scope in wanted:
        resource, actions = _split(scope)
        have = granted.get(resource)
        if have is None or not (actions <= have or "*" in have):
            return False
    return True


def _margin(lifetime: float) -> float:
    """A tenth of the lifetime, within [1 s, 30 s], and never more than half of it."""
    return min(max(1.0, min(MAX_MARGIN, lifetime / 10)), lifetime / 2)


class AuthState:
    """Everything one client knows about authenticating to one registry. Not thread-safe
    for writes beyond what the GIL gives dict assignment; a race costs an extra token."""

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        registry: str = "",
        clock: Callable[[], float] = time.monotonic,
        token_method: TokenMethod = "get",  # noqa: S107 - a method name
        client_id: str = "keelhaul",
    ) -> None:
        self.credentials = credentials or Credentials()
        self.registry = registry
        self.clock = clock
        self.token_method: TokenMethod = token_method
        self.client_id = client_id
        self.scheme: str | None = None
        self.realm = ""
        self.service = ""
        self.refresh_token: str | None = self.credentials.identity_token
        self._tokens: dict[frozenset[str], Token] = {}

    # --- what is known -------------------------------------------------------------

    def learn(self, challenges: list[Challenge]) -> Challenge | None:
        """Remember the registry's scheme, realm and service; returns the challenge used."""
        chosen = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        if chosen is None:
            chosen = next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            return None
        self.scheme = chosen.scheme
        if chosen.scheme == "bearer":
            if chosen.realm != self.realm or chosen.get("service") != self.service:
                self._tokens.clear()
            self.realm = chosen.realm
            self.service = chosen.get("service")
        return chosen

    def cached(self, scopes: Scopes) -> Token | None:
        """A token covering ``scopes`` that is still good, if any."""
        now = self.clock()
        wanted = frozenset(scopes)
        token = self._tokens.get(wanted)
        if token is not None and token.expires_at > now:
            return token
        for candidate in self._tokens.values():
            if candidate.expires_at > now and covers(candidate.scopes, wanted):
                return candidate
        return None

    def header(self, scopes: Scopes) -> str | None:
        """The ``Authorization`` value for a request needing ``scopes``, when known."""
        if self.scheme == "bearer":
            token = self.cached(scopes)
            return f"Bearer {token.value}" if token is not None else None
        if self.scheme == "basic" and not self.credentials.anonymous:
            return self.credentials.basic()
        return None

    def needs_token(self, scopes: Scopes) -> bool:
        return self.scheme == "bearer" and self.cached(scopes) is None

    def forget(self, header: str | None) -> None:
        """Drop the token that was sent in ``header`` (the registry called it invalid)."""
        if not header or not header.startswith("Bearer "):
            return
        value = header[len("Bearer ") :]
        for key, token in list(self._tokens.items()):
            if token.value == value:
                del self._tokens[key]

    # --- asking the token service --------------------------------------------------

    def token_request(self, scopes: Scopes, *, use_refresh: bool = True) -> TokenFetch:
        if not self.realm:
            raise RegistryClientError(
                f"{self.registry or 'the registry'} asked for a token but named no realm"
            )
        creds = self.credentials
        if use_refresh and self.refresh_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "client_id": self.client_id,
                "service": self.service,
                "scope": " ".join(scopes),
                "access_type": "offline",
            }
            return self._post(form, "refresh_token", scopes)
        if creds.username is not None and self.token_method == "post":  # noqa: S105
            form = {
                "grant_type": "password",
                "username": creds.username,
                "password": creds.password or "",
                "client_id": self.client_id,
                "service": self.service,
                "scope": " ".join(scopes),
                "access_type": "offline",
            }
            return self._post(form, "password", scopes)
        query: list[tuple[str, str]] = []
        if self.service:
            query.append(("service", self.service))
        query.extend(("scope", s) for s in scopes)
        headers: dict[str, str] = {}
        grant: Grant = "anonymous"
        if creds.username is not None:
            query.append(("account", creds.username))
            headers["Authorization"] = creds.basic()
            grant = "basic"
        separator = "&" if "?" in self.realm else "?"
        url = f"{self.realm}{separator}{urlencode(query)}" if query else self.realm
        return TokenFetch("GET", url, headers, None, grant, scopes)

    def _post(self, form: dict[str, str], grant: Grant, scopes: Scopes) -> TokenFetch:
        body = urlencode({k: v for k, v in form.items() if v}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return TokenFetch("POST", self.realm, headers, body, grant, scopes)

    def token_received(self, fetch: TokenFetch, status: int, body: bytes) -> Token | None:
        """Store and return the token; ``None`` means: a refresh token was refused, ask again
        with the password (:meth:`token_request` will no longer use it)."""
        if status != 200:
            if fetch.grant == "refresh_token" and status in (400, 401):
                self.refresh_token = None
                if self.credentials.username is not None and self.credentials.password:
                    return None
            raise self._token_error(fetch, status)
        try:
            data = json.loads(body)
            value = data.get("token") or data.get("access_token")
            expires_in = float(data.get("expires_in") or DEFAULT_EXPIRES_IN)
            refresh = data.get("refresh_token")
        except (ValueError, AttributeError, TypeError):
            raise RegistryClientError(
                f"the token service at {self.realm} answered with something other than a token"
            ) from None
        if not isinstance(value, str) or not value:
            raise RegistryClientError(f"the token service at {self.realm} sent no token")
        if isinstance(refresh, str) and refresh:
            self.refresh_token = refresh
        lifetime = max(expires_in, 1.0)
        token = Token(value, frozenset(fetch.scopes), self.clock() + lifetime - _margin(lifetime))
        now = self.clock()
        self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
        self._tokens[token.scopes] = token
        return token

    def _who(self) -> str:
        creds = self.credentials
        if creds.anonymous:
            return "anonymous"
        return f"{creds.username or 'identity token'} (from {creds.source})"

    def _token_error(self, fetch: TokenFetch, status: int) -> RegistryClientError:
        if status == 401:
            if self.credentials.anonymous:
                return RegistryUnauthorized(
                    f"{self.registry}: authentication required; pass --username and a "
                    "password (or set KEELHAUL_REGISTRY_USERNAME/_PASSWORD, or log in "
                    "with docker/podman)"
                )
            return RegistryUnauthorized(
                f"{self.registry}: the token service rejected the credentials of {self._who()}"
            )
        if status == 403:
            return RegistryDenied(
                f"{self.registry}: the token service refused {self._who()} any access"
            )
        if status == 429:
            return RegistryClientError(f"{self.registry}: the token service is throttling us")
        return RegistryClientError(
            f"{self.registry}: the token service at {self.realm} answered HTTP {status}"
        )

    # --- what a 401 means ----------------------------------------------------------

    def unauthorized(
        self, challenges: list[Challenge], scopes: Scopes, sent: str | None, *, retried: bool
    ) -> Scopes:
        """Decide after a ``401``. Returns the scopes to fetch a token for before retrying;
        raises when a retry cannot succeed. ``retried``: a token was already fetched for this
        request."""
        challenge = self.learn(challenges)
        if challenge is None:
            raise RegistryUnauthorized(
                f"{self.registry}: the registry refused the request (401) without saying how "
                "to authenticate"
            )
        anonymous = self.credentials.anonymous
        if challenge.scheme == "basic":
            if anonymous:
                raise self._token_error_anonymous()
            if sent is not None:
                raise RegistryUnauthorized(
                    f"{self.registry}: the registry rejected the credentials of {self._who()}"
                )
            return scopes
        wanted = merge_scopes(scopes, challenge.scopes) if challenge.scopes else scopes
        error = challenge.error
        if error == "invalid_token":
            self.forget(sent)
            if retried:
                raise RegistryUnauthorized(
                    f"{self.registry}: the registry rejects the token service's tokens "
                    f"(realm {self.realm}, service {self.service!r}): their keys or "
                    "issuer/service settings disagree"
                )
            return wanted
        if error == "insufficient_scope" or sent is not None:
            held = self._tokens_for(sent)
            if retried or (held is not None and covers(held, frozenset(wanted))):
                if anonymous:
                    raise self._token_error_anonymous()
                raise RegistryDenied(f"{self.registry}: {self._who()} may not {_describe(wanted)}")
            return wanted
        return wanted

    def _tokens_for(self, sent: str | None) -> frozenset[str] | None:
        if not sent or not sent.startswith("Bearer "):
            return None
        value = sent[len("Bearer ") :]
        for token in self._tokens.values():
            if token.value == value:
                return token.scopes
        return None

    def _token_error_anonymous(self) -> RegistryUnauthorized:
        return RegistryUnauthorized(
            f"{self.registry}: authentication required; pass --username and a password "
            "(or set KEELHAUL_REGISTRY_USERNAME/_PASSWORD, or log in with docker/podman)"
        )


def _describe(scopes: Scopes) -> str:
    parts = []
    for text in scopes:
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind == "registry" and name == "catalog":
            parts.append("list the catalog")
        else:
            parts.append(f"{actions.replace(',', '/')} {name}")
    return " and ".join(parts)
