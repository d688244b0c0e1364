"""Authorization: ordered ACL rules, first match wins, deny by default.

A rule matches a (principal, scope) pair when every field its ``match`` gives matches:

* ``account`` - the principal's account name; ``""`` is the anonymous user, so
  ``account: ""`` matches only anonymous, and an omitted account matches anyone. A glob
  ``*`` also matches the empty name (anonymous); write ``/.+/`` for "any signed-in user".
* ``name`` / ``type`` - the scope's resource name and type (the resource class is not
  matched).
* ``service`` - the ``service`` the token is asked for.
* ``ip`` - a CIDR that must contain the client address (an IPv4-mapped IPv6 address is
  also tried as IPv4). A principal without an address never matches an ``ip`` rule.
* ``labels`` - for each key, at least one of the principal's values for that label
  matches the pattern (no values: no match).

Patterns, their kinds (keelhaul's glob and full-match regex; docker_auth's unanchored
search and Go ``path.Match``) and placeholders (``${account}``, ``${service}``,
``${labels:KEY}``, ``${account:N}``, ``${service:N}``) are :mod:`keelhaul.auth.aclpatterns`.
A pattern with placeholders matches if it matches for any combination of values; each
distinct substitution is compiled once and kept in a small per-pattern LRU cache; at most
1024 combinations are tried per pattern.

The first matching rule decides: granted = rule actions & requested; ``["*"]`` (or any list
containing ``*``) grants every requested action, including ``*``; ``[]`` denies. No
matching rule denies. :meth:`Acl.grant` keeps a scope with nothing granted, with empty
actions, as cesanta/docker_auth does; the registry reads that as no access.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from keelhaul.auth.aclpatterns import CaptureSources, Pattern, PatternError, compile_pattern
from keelhaul.auth.scopes import Scope
from keelhaul.auth.settings import AclRule
from keelhaul.errors import ConfigError

__all__ = ["Acl", "Principal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAX_DECISIONS = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asks, for which service: account ("" anonymous), labels, client address."""

    account: str
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ip: IPAddress | None = None
    service: str = ""

    @property
    def anonymous(self) -> bool:
        return self.account == ""


# --- rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    index: int
    type: Pattern | None
    name: Pattern | None
    account: Pattern | None
    service: Pattern | None
    network: IPNetwork | None
    labels: tuple[tuple[str, Pattern], ...]
    actions: frozenset[str]
    grants_all: bool

    def matches_principal(self, principal: Principal) -> bool:
        if self.account is not None and not self.account(principal.account, principal):
            return False
        if self.service is not None and not self.service(principal.service, principal):
            return False
        if self.network is not None and not _in_network(principal.ip, self.network):
            return False
        for key, pattern in self.labels:
            if not pattern.any_of(principal.labels.get(key, ()), principal):
                return False
        return True

    @property
    def about_principal(self) -> bool:
        """Whether :meth:`matches_principal` can ever say no."""
        return (
            self.account is not None
            or self.service is not None
            or self.network is not None
            or bool(self.labels)
        )

    def matches_scope(self, principal: Principal, scope: Scope) -> bool:
        if self.type is not None and not self.type(scope.type, principal):
            return False
        return self.name is None or self.name(scope.name, principal)

    def allow(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        if self.grants_all:
            return requested
        actions = self.actions
        return tuple(a for a in requested if a in actions)


def _in_network(ip: IPAddress | None, network: IPNetwork) -> bool:
    if ip is None:
        return False
    if ip in network:
        return True
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped is not None and mapped in network


def _compile_rule(index: int, rule: AclRule) -> _Rule:
    where = f"acl.{index}.match"
    match = rule.match
    sources = CaptureSources()
    sources.add("account", match.account)
    sources.add("service", match.service)
    captures = sources.captures()

    def pattern(
        spec: str | Mapping[str, str] | None,
        key: str,
        *,
        placeholders: bool = True,
        labels: bool = True,
    ) -> Pattern | None:
        if spec is None:
            return None
        try:
            return compile_pattern(
                spec, captures=captures, placeholders=placeholders, label_placeholders=labels
            )
        except PatternError as exc:
            raise ConfigError("auth", [f"{where}.{key}: {exc}"]) from None

    network: IPNetwork | None = None
    if match.ip is not None:
        try:
            network = ipaddress.ip_network(match.ip, strict=False)
        except ValueError:
            raise ConfigError(
                "auth", [f"{where}.ip: not an IP network in CIDR form: {match.ip!r}"]
            ) from None
    labels = tuple(
        (key, _required(pattern(value, f"labels.{key}", labels=False)))
        for key, value in match.labels.items()
    )
    return _Rule(
        index=index,
        type=pattern(match.type, "type", placeholders=False),
        name=pattern(match.name, "name"),
        account=pattern(match.account, "account", placeholders=False),
        service=pattern(match.service, "service", placeholders=False),
        network=network,
        labels=labels,
        actions=frozenset(rule.actions),
        grants_all="*" in rule.actions,
    )


def _required(pattern: Pattern | None) -> Pattern:
    assert pattern is not None  # a label's pattern is never None
    return pattern


class Acl:
    """Compiled rules. Build with :meth:`compile`; thread-safe and reusable.

    Per request, each rule's account/ip/labels test runs at most once, however many scopes
    are asked for, and only up to the rule that decides.
    """

    __slots__ = ("_decisions", "_fresh_memo", "_rules", "_uses_ip", "version")

    def __init__(self, rules: Sequence[_Rule], version: str = "") -> None:
        self._rules = tuple(rules)
        self.version = version
        """Which rules these are (a digest of their settings): part of every memo key."""
        self._uses_ip = any(rule.network is not None for rule in self._rules)
        self._decisions: dict[tuple[object, ...], tuple[Scope, ...]] = {}
        # rules that say nothing about the principal fit every principal: no need to test
        self._fresh_memo: list[bool | None] = [
            None if rule.about_principal else True for rule in self._rules
        ]

    @classmethod
    def compile(cls, rules: Sequence[AclRule]) -> Acl:
        """Precompile every pattern; raises ConfigError naming ``acl.<i>.match.<key>``."""
        source = repr([rule.model_dump(mode="json") for rule in rules]).encode()
        version = hashlib.sha256(source).hexdigest()[:16]
        return cls([_compile_rule(i, rule) for i, rule in enumerate(rules)], version)

    def __len__(self) -> int:
        return len(self._rules)

    def _decide(self, principal: Principal, scope: Scope, memo: list[bool | None]) -> _Rule | None:
        for rule in self._rules:
            fits = memo[rule.index]
            if fits is None:
                fits = memo[rule.index] = rule.matches_principal(principal)
            if fits and rule.matches_scope(principal, scope):
                return rule
        return None

    def allowed_actions(self, principal: Principal, scope: Scope) -> tuple[str, ...]:
        """What the deciding rule grants of ``scope.actions``; sorted like the request."""
        rule = self._decide(principal, scope, self._fresh_memo.copy())
        return () if rule is None else rule.allow(scope.actions)

    def grant(self, principal: Principal, requested: Sequence[Scope]) -> list[Scope]:
        """Every requested scope, in order, with its actions cut to what is allowed.

        Decisions are memoised: a registry's clients ask the same few questions over and
        over. The key holds everything a decision reads (the rules' :attr:`version`, the
        account, the service, the labels, the address when a rule tests one, the scopes),
        so a memoised
        answer is the answer; at most :data:`_MAX_DECISIONS` are kept."""
        labels = tuple(sorted(principal.labels.items())) if principal.labels else ()
        ip = principal.ip if self._uses_ip else None
        key = (self.version, principal.account, principal.service, labels, ip, tuple(requested))
        known = self._decisions.get(key)
        if known is not None:
            return list(known)
        granted = self._grant(principal, requested)
        if len(self._decisions) >= _MAX_DECISIONS:
            self._decisions.clear()  # simple and thread-safe; refills in a few requests
        self._decisions[key] = tuple(granted)
        return granted

    def _grant(self, principal: Principal, requested: Sequence[Scope]) -> list[Scope]:
        memo = self._fresh_memo.copy()
        granted: list[Scope] = []
        for scope in requested:
            rule = self._decide(principal, scope, memo)
            actions = () if rule is None else rule.allow(scope.actions)
            granted.append(scope if actions == scope.actions else scope.with_actions(actions))
        return granted

    def explain(self, principal: Principal, scope: Scope) -> int | None:
        """Index of the rule that decides ``scope`` for ``principal``; None is default deny."""
        rule = self._decide(principal, scope, self._fresh_memo.copy())
        return None if rule is None else rule.index
