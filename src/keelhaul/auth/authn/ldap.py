"""LDAP / Active Directory: search the user as a service account, verify by binding as them.

Why this shape:

* ldap3 is pure Python on the stdlib ``socket``/``ssl``, so under gunicorn's gevent
  workers (monkey-patched at the entry point) every connect, bind and search yields to the
  other greenlets: a slow directory costs only the greenlets waiting for it.
* Service-account searches go through a bounded pool of connections, one greenlet per
  connection at a time (a single shared connection serialised by many greenlets is what
  makes AD answer "Busy"). A greenlet that cannot get one within ``timeout`` fails.
* A user is verified on a fresh connection bound as the user's DN (never pooled: a bound
  identity must not leak to the next search). An empty password is refused before any
  bind, since an LDAP "unauthenticated bind" succeeds with any DN.
* Every directory failure (connect, TLS, timeout, all servers down) opens a breaker for
  ``retry_interval`` seconds: meanwhile the backend answers "cannot decide" at once
  instead of making each login wait for the timeout again; /healthz shows it.
* ``lookup`` answers from a short-TTL copy of the last search (``lookup_ttl``): the
  revision (DN + ``revision_attributes``) and the groups. That is what lets the credential
  cache serve a known user without touching the directory; a password change is seen
  within ``lookup_ttl``. A cold login costs one search and one bind: the bind, always
  live, is what decides, so an old password never passes on a stale copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ldap3 import (
    AUTO_BIND_NO_TLS,
    AUTO_BIND_NONE,
    AUTO_BIND_TLS_BEFORE_BIND,
    FIRST,
    NONE,
    SUBTREE,
    Connection,
    Server,
    ServerPool,
    Tls,
    set_config_parameter,
)
from ldap3.core.exceptions import (
    LDAPException,
    LDAPServerPoolExhaustedError,
    LDAPSessionTerminatedByServerError,
    LDAPSocketOpenError,
    LDAPSocketSendError,
)
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from keelhaul.auth.authn import Account, Events, Outcome, labels_of
from keelhaul.auth.authn.options import LdapOptions
from keelhaul.errors import BackendError

__all__ = ["LdapDirectory"]

log = logging.getLogger(__name__)

_INVALID_CREDENTIALS = 49
_MAX_GROUPS = 256  # nested group expansion stops here, whatever the depth
_MAX_KNOWN = 10000


# what a send or receive on a connection the server has closed raises (not a timeout)
_CLOSED = (LDAPSessionTerminatedByServerError, LDAPSocketSendError, ConnectionError)


class _Stale(Exception):
    def __init__(self, cause: Exception) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class _Entry:
    account: Account
    dn: str
    expires: float


def _server(url: str, o: LdapOptions, tls: Tls | None) -> Server:
    parts = urlsplit(url)
    secure = parts.scheme == "ldaps"
    return Server(
        parts.hostname or "localhost",
        port=parts.port or (636 if secure else 389),
        use_ssl=secure,
        tls=tls,
        connect_timeout=o.connect_timeout,
        get_info=NONE,
    )


def _failure(exc: Exception) -> str:
    """timeout (the directory took too long) or unreachable (no connection), else error."""
    if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
        return "timeout"
    if isinstance(exc, (LDAPSocketOpenError, LDAPServerPoolExhaustedError, ConnectionError)):
        return "unreachable"
    return "error"


def _first_rdn_value(dn: str) -> str:
    try:
        return str(parse_dn(dn)[0][1])
    except (LDAPException, IndexError):
        return dn


class LdapDirectory:
    kind = "ldap"
    throttled = True
    by_token = False

    def __init__(
        self, options: LdapOptions, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = options.name or options.kind
        self.events = Events()
        self._o = options
        self._clock = clock
        tls = None
        if (
            options.ca_file is not None
            or options.start_tls
            or "ldaps://" in "".join(options.servers)
        ):
            tls = Tls(
                validate=ssl.CERT_REQUIRED,
                version=ssl.PROTOCOL_TLS_CLIENT,
                ca_certs_file=str(options.ca_file) if options.ca_file else None,
            )
        # ldap3 sleeps this long (default 10 s) after a pass over the pool found no server;
        # the breaker below already keeps a dead directory from being asked too often
        set_config_parameter("POOLING_LOOP_TIMEOUT", 0)
        self._pool = ServerPool(
            [_server(u, options, tls) for u in options.servers],
            FIRST,
            active=1,  # one pass over the servers per attempt, never an endless loop
            exhaust=options.retry_interval,  # a dead server is skipped for this long
        )
        self._slots = threading.BoundedSemaphore(options.pool_size)
        self._idle: list[Connection] = []
        self._idle_lock = threading.Lock()
        self._known: OrderedDict[str, _Entry] = OrderedDict()
        self._known_lock = threading.Lock()
        self._down_until = float("-inf")
        self._last_error = ""
        self._searches = 0
        self._binds = 0

    # ---------------------------------------------------------------- connections

    def _connection(self, user: str | None, password: str | None, *, bind: bool) -> Connection:
        """Bound now (service account: open, StartTLS if set, bind) or left for the caller."""
        return Connection(
            self._pool,
            user=user,
            password=password,
            read_only=True,
            receive_timeout=self._o.timeout,
            raise_exceptions=False,
            auto_bind=(AUTO_BIND_TLS_BEFORE_BIND if self._o.start_tls else AUTO_BIND_NO_TLS)
            if bind
            else AUTO_BIND_NONE,
        )

    @contextmanager
    def _service(self, *, fresh: bool) -> Iterator[tuple[Connection, bool]]:
        """A pooled service-account connection (and whether it was reused); dropped, not
        returned, after any failure."""
        if not self._slots.acquire(timeout=self._o.timeout):
            self.events.note("pool_busy")
            raise BackendError(f"{self.name}: all {self._o.pool_size} directory connections busy")
        conn: Connection | None = None
        try:
            if not fresh:
                with self._idle_lock:
                    conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = self._connection(self._o.bind_dn or None, self._bind_password(), bind=True)
            yield conn, reused
            with self._idle_lock:
                self._idle.append(conn)
            conn = None
        finally:
            if conn is not None:
                _close(conn)
            self._slots.release()

    def _bind_password(self) -> str | None:
        return self._o.bind_password.get_secret_value() or None

    def _guard(self) -> None:
        if self._clock() < self._down_until:
            self.events.note("breaker_open")
            raise BackendError(f"{self.name}: directory unavailable ({self._last_error})")

    def _failed(self, exc: Exception) -> BackendError:
        self._last_error = type(exc).__name__
        self.events.note(f"directory_{_failure(exc)}")
        self._down_until = self._clock() + self._o.retry_interval
        log.error(
            "ldap %s: directory failed (%s); not asked again for %.0fs",
            self.name,
            self._last_error,
            self._o.retry_interval,
        )
        return BackendError(f"{self.name}: directory unavailable ({self._last_error})")

    def _ok(self) -> None:
        if self._last_error:
            log.warning("ldap %s: directory answers again", self.name)
        self._last_error = ""

    # ---------------------------------------------------------------- search

    def _search_user(self, username: str) -> _Entry | None:
        o = self._o
        attributes = list(o.revision_attributes)
        if o.group_attribute:
            attributes.append(o.group_attribute)
        query = o.user_filter.replace("{username}", escape_filter_chars(username))
        self._guard()
        try:
            try:
                found = self._query(query, attributes, fresh=False)
            except _Stale:
                # the server closed an idle pooled connection (idle timeout, restart): once
                # more on a new one; a timeout is not retried (it would double the wait)
                found = self._query(query, attributes, fresh=True)
        except _Stale as exc:
            raise self._failed(exc.cause) from None
        except (LDAPException, OSError) as exc:
            raise self._failed(exc) from None
        self._ok()
        if found is None:
            return None
        entry, groups = found
        account = Account(
            username.lower() if o.case_insensitive_names else username,
            self._revision(entry["dn"], entry["attributes"]),
            labels_of(
                {o.group_label: sorted(groups)} if groups else {}, o.labels.get(username, {})
            ),
            self.name,
        )
        known = _Entry(account, entry["dn"], self._clock() + o.lookup_ttl)
        with self._known_lock:
            self._known[username] = known
            self._known.move_to_end(username)
            while len(self._known) > _MAX_KNOWN:
                self._known.popitem(last=False)
        return known

    def _query(
        self, query: str, attributes: list[str], *, fresh: bool
    ) -> tuple[dict[str, Any], set[str]] | None:
        """The user's entry and groups, on one pooled service connection."""
        o = self._o
        with self._service(fresh=fresh) as (conn, reused):
            self._searches += 1
            self.events.note("search")
            try:
                done = conn.search(
                    o.base_dn,
                    query,
                    SUBTREE,
                    attributes=attributes,
                    size_limit=2,
                    time_limit=o.timeout,
                )
            except _CLOSED as exc:
                if reused:
                    raise _Stale(exc) from None
                raise
            code = conn.result.get("result") if conn.result else None
            if not done and code not in (0, 4, 32):  # ok, size limit, no such object
                self.events.note("refused")
                raise BackendError(f"{self.name}: search refused (result {code})")
            entries = [r for r in conn.response or [] if r.get("type") == "searchResEntry"]
            if len(entries) != 1:
                if len(entries) > 1:
                    log.warning("ldap %s: user filter matches several entries", self.name)
                return None
            entry: dict[str, Any] = entries[0]
            return entry, self._groups(conn, entry["dn"], entry["attributes"])

    def _revision(self, dn: str, attributes: dict[str, object]) -> bytes:
        mac = hashlib.sha256(dn.encode("utf-8"))
        for name in self._o.revision_attributes:
            mac.update(b"\0" + name.encode() + b"=" + repr(attributes.get(name)).encode("utf-8"))
        return b"ldap:" + mac.hexdigest().encode("ascii")

    def _groups(self, conn: Connection, dn: str, attributes: dict[str, object]) -> set[str]:
        o = self._o
        names: set[str] = set()
        if o.group_attribute:
            values = attributes.get(o.group_attribute) or []
            for value in values if isinstance(values, list) else [values]:
                names.add(_first_rdn_value(str(value)))
        search = o.group_search
        if search is None:
            return names
        seen: set[str] = set()
        frontier = [dn]
        for _ in range(o.nested_depth + 1):
            found: list[str] = []
            for member in frontier:
                query = search.filter.replace("{dn}", escape_filter_chars(member))
                if not conn.search(
                    search.base_dn,
                    query,
                    SUBTREE,
                    attributes=[search.name_attribute],
                    size_limit=_MAX_GROUPS,
                    time_limit=o.timeout,
                ):
                    continue
                for r in conn.response or []:
                    if r.get("type") != "searchResEntry" or r["dn"] in seen:
                        continue
                    seen.add(r["dn"])
                    found.append(r["dn"])
                    value = r["attributes"].get(search.name_attribute)
                    first = value[0] if isinstance(value, list) and value else value
                    names.add(str(first) if first else _first_rdn_value(r["dn"]))
            if not found or len(seen) >= _MAX_GROUPS:
                break
            frontier = found
        return names

    # ---------------------------------------------------------------- the contract

    def _entry(self, username: str) -> _Entry | None:
        with self._known_lock:
            entry = self._known.get(username)
        if entry is not None and entry.expires > self._clock():
            return entry
        return self._search_user(username)

    def lookup(self, username: str) -> Account | None:
        found = self._entry(username)
        return found.account if found is not None else None

    def authenticate(self, username: str, password: str) -> Outcome:
        # the search the lookup just made is reused: the bind below is the live check
        found = self._entry(username)
        if found is None:
            return "no_match"
        if not password:
            return "wrong_password"  # an empty password would be an unauthenticated bind
        self._guard()
        conn = self._connection(found.dn, password, bind=False)
        try:
            self._binds += 1
            self.events.note("bind")
            conn.open()
            if self._o.start_tls and not conn.start_tls():
                raise BackendError(f"{self.name}: StartTLS refused")
            if conn.bind():
                return found.account
            code = conn.result.get("result") if conn.result else None
            if code == _INVALID_CREDENTIALS:
                return "wrong_password"
            self.events.note("refused")
            raise BackendError(f"{self.name}: bind refused (result {code})")
        except (LDAPException, OSError) as exc:
            raise self._failed(exc) from None
        finally:
            _close(conn)

    def health(self) -> tuple[bool, str]:
        if self._last_error:
            return False, f"directory unavailable ({self._last_error}); LDAP logins fail"
        with self._known_lock:
            known = len(self._known)
        return True, f"{len(self._o.servers)} servers; {known} users seen recently"

    def typical_cost(self) -> int | None:
        return None

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)

    @property
    def searches(self) -> int:
        """Searches made (service connection), for tests and metrics."""
        return self._searches

    @property
    def binds(self) -> int:
        return self._binds


def _close(conn: Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()
