"""Authorization: ordered ACL rules, first match wins, deny by default.

A rule matches a (principal, scope) pair when every field its ``match`` gives matches:

* ``account`` - the principal's account name; ``""`` is the anonymous user, so
  ``account: ""`` matches only anonymous, and an omitted account matches anyone. A glob
  ``*`` also matches the empty name (anonymous); write ``/.+/`` for "any signed-in user".
* ``name`` / ``type`` - the scope's resource name and type (the resource class is not
  matched).
* ``ip`` - a CIDR that must contain the client address (an IPv4-mapped IPv6 address is
  also tried as IPv4). A principal without an address never matches an ``ip`` rule.
* ``labels`` - for each key, at least one of the principal's values for that label
  matches the pattern (no values: no match).

Patterns are globs (``*`` and ``?`` stop at ``/``, ``**`` crosses it, all else literal) or
regular expressions written ``/like this/``; both must match the whole value.
``name`` and ``labels`` patterns may hold ``${account}`` and ``${labels:KEY}``; the
principal's values are inserted *literally* (escaped), and a pattern matches if it
matches for any value. Anonymous has no ``${account}`` and a missing label has no values,
so such a pattern does not match. Any other ``${...}`` is a configuration error. Each
distinct substitution is compiled once and kept in a small per-pattern LRU cache; at most
1024 combinations of label values are tried per pattern.

The first matching rule decides: granted = rule actions & requested; ``["*"]`` (or any list
containing ``*``) grants every requested action, including ``*``; ``[]`` denies. No
matching rule denies. :meth:`Acl.grant` keeps a scope with nothing granted, with empty
actions, as cesanta/docker_auth does; the registry reads that as no access.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from keelhaul.auth.scopes import Scope
from keelhaul.auth.settings import AclRule
from keelhaul.errors import ConfigError

__all__ = ["Acl", "Principal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_PLACEHOLDER_RE = re.compile(r"\$\{([^}]*)\}")
_GLOB_TOKEN_RE = re.compile(r"\*\*|\*|\?|[^*?]+")
_TEMPLATE_CACHE_SIZE = 256
_MAX_COMBINATIONS = 1024
_MAX_DECISIONS = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asks: an account ("" for anonymous), its labels, and the client address."""

    account: str
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ip: IPAddress | None = None

    @property
    def anonymous(self) -> bool:
        return self.account == ""


# --- patterns --------------------------------------------------------------------------


class _Pattern:
    """Matches one value; ``any_of`` answers "does any of these values match"."""

    __slots__ = ()

    def __call__(self, value: str, principal: Principal) -> bool:
        raise NotImplementedError

    def any_of(self, values: Iterable[str], principal: Principal) -> bool:
        return any(self(value, principal) for value in values)


class _Anything(_Pattern):
    """A glob ``**``."""

    __slots__ = ()

    def __call__(self, value: str, principal: Principal) -> bool:
        return True

    def any_of(self, values: Iterable[str], principal: Principal) -> bool:
        return any(True for _ in values)


class _Literal(_Pattern):
    """A glob without wildcards: plain string comparison."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __call__(self, value: str, principal: Principal) -> bool:
        return value == self._text

    def any_of(self, values: Iterable[str], principal: Principal) -> bool:
        return self._text in values


class _Regex(_Pattern):
    __slots__ = ("_fullmatch",)

    def __init__(self, regex: re.Pattern[str]) -> None:
        self._fullmatch = regex.fullmatch

    def __call__(self, value: str, principal: Principal) -> bool:
        return self._fullmatch(value) is not None

    def any_of(self, values: Iterable[str], principal: Principal) -> bool:
        fullmatch = self._fullmatch
        return any(fullmatch(value) is not None for value in values)


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    for part in _GLOB_TOKEN_RE.findall(glob):
        if part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^/]*")
        elif part == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(part))
    return "".join(out)


def _is_regex(text: str) -> bool:
    # same test as keelhaul.auth.settings._check_pattern
    return len(text) >= 2 and text.startswith("/") and text.endswith("/")


class _Template(_Pattern):
    """A pattern with placeholders: compiled per distinct substitution, bounded LRU cache."""

    __slots__ = ("_build", "_keys", "_pieces")

    def __init__(self, pieces: list[str | tuple[str, ...]], flags: int) -> None:
        self._pieces = pieces
        keys: list[tuple[str, ...]] = []
        for piece in pieces:
            if isinstance(piece, tuple) and piece not in keys:
                keys.append(piece)
        self._keys = tuple(keys)
        slots = [p if isinstance(p, str) else self._keys.index(p) for p in pieces]

        def build(values: tuple[str, ...]) -> re.Pattern[str] | None:
            text = "".join(p if isinstance(p, str) else re.escape(values[p]) for p in slots)
            try:
                return re.compile(text, flags)
            except re.error:  # a value landed where a literal is not valid: no match
                return None

        self._build = functools.lru_cache(maxsize=_TEMPLATE_CACHE_SIZE)(build)

    def _candidates(self, principal: Principal) -> list[tuple[str, ...]]:
        choices: list[tuple[str, ...]] = []
        for key in self._keys:
            if key[0] == "account":
                values: tuple[str, ...] = (principal.account,) if principal.account else ()
            else:
                values = tuple(principal.labels.get(key[1], ()))
            if not values:
                return []
            choices.append(values)
        return choices

    def __call__(self, value: str, principal: Principal) -> bool:
        choices = self._candidates(principal)
        if not choices:
            return False
        combos: Iterator[tuple[str, ...]] = itertools.product(*choices)
        for values in itertools.islice(combos, _MAX_COMBINATIONS):
            regex = self._build(values)
            if regex is not None and regex.fullmatch(value) is not None:
                return True
        return False


def _compile_pattern(text: str, where: str, *, placeholders: bool) -> _Pattern:
    """Compile an ACL pattern; raise ConfigError naming ``where`` when it cannot be."""
    regex = _is_regex(text)
    body = text[1:-1] if regex else text
    flags = 0 if regex else re.DOTALL
    pieces: list[str | tuple[str, ...]] = []
    if placeholders:
        position = 0
        for found in _PLACEHOLDER_RE.finditer(body):
            inner = found.group(1)
            if inner == "account":
                key: tuple[str, ...] = ("account",)
            elif inner.startswith("labels:") and len(inner) > len("labels:"):
                key = ("labels", inner[len("labels:") :])
            else:
                raise ConfigError(
                    "auth",
                    [
                        f"{where}: unknown placeholder ${{{inner}}}; use ${{account}} or "
                        "${labels:KEY}"
                    ],
                )
            pieces.append(body[position : found.start()])
            pieces.append(key)
            position = found.end()
        pieces.append(body[position:])
    else:
        pieces.append(body)
    translated: list[str | tuple[str, ...]] = [
        p if isinstance(p, tuple) else (p if regex else _glob_to_regex(p)) for p in pieces
    ]
    sample = "".join("x" if isinstance(p, tuple) else p for p in translated)
    try:
        compiled = re.compile(sample, flags)
    except re.error as exc:
        raise ConfigError("auth", [f"{where}: invalid regular expression: {exc}"]) from None
    if any(isinstance(p, tuple) for p in translated):
        return _Template(translated, flags)
    if not regex:
        if body == "**":
            return _Anything()
        if "*" not in body and "?" not in body:
            return _Literal(body)
    return _Regex(compiled)


# --- rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    index: int
    type: _Pattern | None
    name: _Pattern | None
    account: _Pattern | None
    network: IPNetwork | None
    labels: tuple[tuple[str, _Pattern], ...]
    actions: frozenset[str]
    grants_all: bool

    def matches_principal(self, principal: Principal) -> bool:
        if self.account is not None and not self.account(principal.account, principal):
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
        return self.account is not None or self.network is not None or bool(self.labels)

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

    def pattern(text: str | None, key: str, *, placeholders: bool = False) -> _Pattern | None:
        if text is None:
            return None
        return _compile_pattern(text, f"{where}.{key}", placeholders=placeholders)

    network: IPNetwork | None = None
    if match.ip is not None:
        try:
            network = ipaddress.ip_network(match.ip, strict=False)
        except ValueError:
            raise ConfigError(
                "auth", [f"{where}.ip: not an IP network in CIDR form: {match.ip!r}"]
            ) from None
    labels = tuple(
        (key, _compile_pattern(value, f"{where}.labels.{key}", placeholders=True))
        for key, value in match.labels.items()
    )
    return _Rule(
        index=index,
        type=pattern(match.type, "type"),
        name=pattern(match.name, "name", placeholders=True),
        account=pattern(match.account, "account"),
        network=network,
        labels=labels,
        actions=frozenset(rule.actions),
        grants_all="*" in rule.actions,
    )


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
        account, the labels, the address when a rule tests one, the scopes), so a memoised
        answer is the answer; at most :data:`_MAX_DECISIONS` are kept."""
        labels = tuple(sorted(principal.labels.items())) if principal.labels else ()
        ip = principal.ip if self._uses_ip else None
        key = (self.version, principal.account, labels, ip, tuple(requested))
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
