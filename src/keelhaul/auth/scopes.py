"""The Docker registry token spec's scope grammar, parsed into frozen :class:`Scope` values.

::

    scope             := resourcescope [ ' ' resourcescope ]*
    resourcescope     := resourcetype ":" resourcename ":" action [ ',' action ]*
    resourcetype      := resourcetypevalue [ '(' resourcetypevalue ')' ]
    resourcename      := [ hostname '/' ] component [ '/' component ]*
    hostname          := hostcomponent ['.' hostcomponent]* [':' port-number]
    component         := alpha-numeric [ separator alpha-numeric ]*
    separator         := /[_.]|__|[-]*/
    action            := /[a-z]*/

Choices where the spec is loose, all deliberate:

* The type runs up to the first ``:`` and the actions follow the last one, so a name may
  carry ``hostname:port/``.
* ``*`` is accepted as an action (``registry:catalog:*`` is what the registry asks for).
* ``action`` may be empty, and an empty action asks for nothing: empty pieces are dropped,
  so ``repository:foo:`` is a valid scope with no actions and ``pull,,push`` means
  ``pull,push``. Actions are de-duplicated and sorted.
* Only :class:`~keelhaul.errors.ScopeError` ever escapes, for any input string; its message
  quotes at most the first 64 characters of the input, with control characters escaped.

Parsing is one precompiled regular expression on the success path; the slower diagnosis
that names the problem only runs for input that failed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from keelhaul.errors import ScopeError
from keelhaul.names import COMPONENT_RE, HOSTNAME_RE, NAME

__all__ = ["Scope", "parse_scope", "parse_scopes"]

_QUOTE_LIMIT = 64

_TYPE_VALUE = r"[a-z0-9]+"
_ACTION = r"(?:[a-z]*|\*)"

_SCOPE_RE = re.compile(
    rf"(?P<type>{_TYPE_VALUE})(?:\((?P<cls>{_TYPE_VALUE})\))?"
    rf":(?P<name>{NAME})"
    rf":(?P<actions>{_ACTION}(?:,{_ACTION})*)"
)
_TYPE_RE = re.compile(rf"{_TYPE_VALUE}(?:\({_TYPE_VALUE}\))?")
_ACTION_RE = re.compile(_ACTION)
_COMPONENT_CHARS_RE = re.compile(r"[a-z0-9._-]+")
_SEPARATOR_CHARS = "._-"


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource scope. Build it with :func:`parse_scope`; the constructor does not validate.

    ``actions`` is kept sorted and free of duplicates by every function in this package.
    """

    type: str
    name: str
    actions: tuple[str, ...]
    resource_class: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the resource: scopes with equal keys are merged."""
        return (self.type, self.resource_class, self.name)

    def with_actions(self, actions: tuple[str, ...]) -> Scope:
        """The same resource with other actions (the caller keeps them sorted)."""
        return Scope(self.type, self.name, actions, self.resource_class)

    def to_access(self) -> dict[str, object]:
        """The JWT ``access`` entry; ``class`` only when there is one."""
        if self.resource_class:
            return {
                "type": self.type,
                "class": self.resource_class,
                "name": self.name,
                "actions": list(self.actions),
            }
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    def __str__(self) -> str:
        kind = f"{self.type}({self.resource_class})" if self.resource_class else self.type
        return f"{kind}:{self.name}:{','.join(self.actions)}"


def parse_scope(text: str, *, max_length: int = 512) -> Scope:
    """Parse one resource scope such as ``repository:library/ubuntu:pull,push``."""
    if len(text) > max_length:
        raise _error(text, f"scope is too long: {len(text)} characters (limit {max_length})")
    match = _SCOPE_RE.fullmatch(text)
    if match is None:
        raise _error(text, _diagnose(text))
    type_, cls, name, actions = match.group("type", "cls", "name", "actions")
    return Scope(type_, name, _canonical_actions(actions), cls or "")


@functools.lru_cache(maxsize=256)
def _canonical_actions(actions: str) -> tuple[str, ...]:
    """``push,pull,,pull`` -> ``("pull", "push")``; clients send few distinct lists."""
    return tuple(sorted({a for a in actions.split(",") if a}))


def parse_scopes(
    values: Iterable[str], *, max_scopes: int = 32, max_length: int = 512
) -> list[Scope]:
    """Parse every ``scope`` query parameter: split on spaces, merge repeats of a resource.

    Scopes naming the same (type, class, name) merge into one with the union of their
    actions, at the position where the resource was first seen. The limit applies to the
    number of distinct resources after merging.
    """
    merged: dict[tuple[str, str, str], Scope] = {}
    seen: set[str] = set()
    for value in values:
        for piece in value.split(" "):
            if not piece or piece in seen:
                continue
            seen.add(piece)
            scope = parse_scope(piece, max_length=max_length)
            key = scope.key
            earlier = merged.get(key)
            if earlier is None:
                merged[key] = scope
            elif not set(scope.actions) <= set(earlier.actions):
                union = tuple(sorted(set(earlier.actions).union(scope.actions)))
                merged[key] = earlier.with_actions(union)
    if len(merged) > max_scopes:
        raise ScopeError(f"too many scopes: {len(merged)} (limit {max_scopes})")
    return list(merged.values())


# --- diagnosis: only for input that failed the grammar ---------------------------------


def _quote(text: str) -> str:
    shown = repr(text[:_QUOTE_LIMIT])
    return shown + "..." if len(text) > _QUOTE_LIMIT else shown


def _error(text: str, problem: str) -> ScopeError:
    return ScopeError(f"invalid scope {_quote(text)}: {problem}")


def _diagnose(text: str) -> str:
    """Say what is wrong with a scope that failed the grammar, in words a client can act on."""
    if not text:
        return "scope is empty; expected <type>:<name>:<actions>"
    clean = text.isascii() and text.isprintable() and " " not in text
    for position, char in enumerate("" if clean else text, start=1):
        if char == " ":
            return (
                f"contains a space at position {position} "
                "(only a scope list separates scopes with spaces)"
            )
        if not char.isascii():
            return f"contains a non-ASCII character (U+{ord(char):04X}) at position {position}"
        if not char.isprintable():
            return f"contains a control character (U+{ord(char):04X}) at position {position}"
    if text.count(":") < 2:
        return "expected <type>:<name>:<actions>, separated by ':'"
    first, last = text.index(":"), text.rindex(":")
    type_, name, actions = text[:first], text[first + 1 : last], text[last + 1 :]
    if not type_:
        return "resource type is empty"
    if _TYPE_RE.fullmatch(type_) is None:
        return (
            "resource type must be lowercase letters and digits, with an optional class "
            "in parentheses, e.g. repository or repository(plugin)"
        )
    for index, action in enumerate(actions.split(","), start=1):
        if _ACTION_RE.fullmatch(action) is None:
            return f"action {index} must be lowercase letters or '*'"
    return _diagnose_name(name)


def _diagnose_name(name: str) -> str:
    if not name:
        return "resource name is empty"
    if name.startswith("/"):
        return "resource name starts with '/'"
    if name.endswith("/"):
        return "resource name ends with '/'"
    if "//" in name:
        return "resource name has an empty path component ('//')"
    parts = name.split("/")
    head, offset = parts[0], 1
    if len(parts) > 1 and COMPONENT_RE.fullmatch(head) is None:
        if HOSTNAME_RE.fullmatch(head) is not None:
            parts, offset = parts[1:], 2
        elif ":" in head:
            _, _, port = head.partition(":")
            if not (port.isascii() and port.isdigit()):
                return "hostname port must be digits"
            return (
                "hostname must be letters, digits and inner '-', in dot-separated parts, "
                "with an optional :port"
            )
    if any(":" in part for part in parts):
        return (
            "resource name may contain ':' only as hostname:port before the first '/' "
            "(a tag or digest does not belong in a scope)"
        )
    for index, component in enumerate(parts, start=offset):
        problem = _diagnose_component(component)
        if problem:
            return f"path component {index} {problem}"
    return "resource name does not follow the registry's name grammar"


def _diagnose_component(component: str) -> str:
    if COMPONENT_RE.fullmatch(component) is not None:
        return ""
    if any(c.isupper() for c in component):
        return "has uppercase letters (repository names are lowercase)"
    if _COMPONENT_CHARS_RE.fullmatch(component) is None:
        return "has a character outside a-z, 0-9, '.', '_' and '-'"
    if component[0] in _SEPARATOR_CHARS:
        return "starts with a separator"
    if component[-1] in _SEPARATOR_CHARS:
        return "ends with a separator"
    return "has an invalid separator (use '.', '_', '__' or dashes between letters/digits)"
