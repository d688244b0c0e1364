"""ACL patterns: the match kinds, their placeholders, and what they compile to. Pure.

A pattern is a string (a keelhaul glob, or a ``/regular expression/``) or a mapping with
one key naming its kind. Each kind is one record in :data:`MATCH_KINDS`:

* ``glob``: ``*`` and ``?`` stop at ``/``, ``**`` crosses it; the whole value must match.
* ``regex``: a Python regular expression; the whole value must match (``/.../`` strings).
* ``search``: docker_auth's ``/regex/``: an *unanchored* search (Go ``regexp.Match``).
* ``path_match``: docker_auth's glob, Go ``path.Match``: ``*`` and ``?`` stop at ``/``,
  ``[a-z]`` / ``[^a]`` classes, ``\\`` escapes; a malformed pattern never matches.

Placeholders: ``${account}``, ``${service}``, ``${labels:KEY}`` and ``${account:N}`` /
``${service:N}`` (group N of the rule's ``account`` / ``service`` regular expression on the
principal's value). keelhaul's kinds insert values literally, and a pattern whose value is
missing (anonymous ``${account}``, a label the user lacks, a capture that did not match)
does not match. The two docker_auth kinds substitute as docker_auth does
(``auth_server/authz/acl.go``, ``MatchConditions.Matches``): ``${account}`` and
``${service}`` quoted (``regexp.QuoteMeta``; anonymous is ""), captures and label values
inserted *raw* (a label value ``a*`` is a wildcard there), a missing label left as literal
text, the pattern first tried without label values, then with each combination.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from keelhaul.auth.gomatch import PatternError, go_path_match_regex, go_quote_meta

__all__ = [
    "MATCH_KINDS",
    "Captures",
    "MatchKind",
    "Pattern",
    "PatternError",
    "PrincipalView",
    "compile_pattern",
    "pattern_kind",
]

_PLACEHOLDER_RE = re.compile(r"\$\{([^}]*)\}")
_CAPTURE_RE = re.compile(r"(account|service):(\d+)")
_GLOB_TOKEN_RE = re.compile(r"\*\*|\*|\?|[^*?]+")
_TEMPLATE_CACHE_SIZE = 256
_MAX_COMBINATIONS = 1024


# --- the principal as patterns see it ------------------------------------------------


class PrincipalView(Protocol):
    """What placeholders read: account ("" anonymous), service, labels."""

    @property
    def account(self) -> str: ...

    @property
    def service(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, tuple[str, ...]]: ...


Captures = Mapping[tuple[str, int], Callable[[PrincipalView], "str | None"]]
"""(field, N) -> group N of the rule's field pattern on the principal's value, or None."""


# --- translations ----------------------------------------------------------------------


def _glob_regex(glob: str) -> str:
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


def _same(text: str) -> str:
    return text


# --- the kinds -------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchKind:
    """One way to match a value. ``docker``: docker_auth's placeholder substitution."""

    name: str
    translate: Callable[[str], str]
    search: bool
    docker: bool
    summary: str


MATCH_KINDS: dict[str, MatchKind] = {
    kind.name: kind
    for kind in (
        MatchKind("glob", _glob_regex, False, False, "* ? stop at /, ** crosses; whole value"),
        MatchKind("regex", _same, False, False, "regular expression; whole value"),
        MatchKind("search", _same, True, True, "docker_auth /regex/: unanchored search"),
        MatchKind(
            "path_match", go_path_match_regex, False, True, "docker_auth glob: Go path.Match"
        ),
    )
}


def pattern_kind(spec: str | Mapping[str, str]) -> tuple[MatchKind, str]:
    """A pattern as written in the config -> (kind, body)."""
    if isinstance(spec, str):
        if len(spec) >= 2 and spec.startswith("/") and spec.endswith("/"):
            return MATCH_KINDS["regex"], spec[1:-1]
        return MATCH_KINDS["glob"], spec
    if len(spec) != 1:
        raise PatternError(f"give exactly one of {', '.join(MATCH_KINDS)}")
    ((name, body),) = spec.items()
    try:
        return MATCH_KINDS[name], body
    except KeyError:
        raise PatternError(
            f"unknown match kind {name!r}; one of {', '.join(MATCH_KINDS)}"
        ) from None


# --- compiled patterns -----------------------------------------------------------------


class Pattern:
    """Matches one value; ``any_of`` answers "does any of these values match"."""

    __slots__ = ()

    def __call__(self, value: str, principal: PrincipalView) -> bool:
        raise NotImplementedError

    def any_of(self, values: Iterable[str], principal: PrincipalView) -> bool:
        return any(self(value, principal) for value in values)


class _Anything(Pattern):
    """A glob ``**``."""

    __slots__ = ()

    def __call__(self, value: str, principal: PrincipalView) -> bool:
        return True

    def any_of(self, values: Iterable[str], principal: PrincipalView) -> bool:
        return any(True for _ in values)


class _Literal(Pattern):
    """A glob without wildcards: plain string comparison."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __call__(self, value: str, principal: PrincipalView) -> bool:
        return value == self._text

    def any_of(self, values: Iterable[str], principal: PrincipalView) -> bool:
        return self._text in values


class _Regex(Pattern):
    __slots__ = ("_match",)

    def __init__(self, regex: re.Pattern[str], search: bool) -> None:
        self._match = regex.search if search else regex.fullmatch

    def __call__(self, value: str, principal: PrincipalView) -> bool:
        return self._match(value) is not None


class _Never(Pattern):
    """docker_auth: a pattern Go cannot compile matches nothing."""

    __slots__ = ()

    def __call__(self, value: str, principal: PrincipalView) -> bool:
        return False


Key = tuple[str, ...]
"""("account",), ("service",), ("labels", KEY), ("capture", FIELD, N)."""


def _docker_compile(kind: MatchKind, text: str) -> tuple[re.Pattern[str], bool]:
    """docker_auth decides regex or glob on the pattern *after* substitution (``matchString``):
    ``/${account}/`` for anonymous is the glob ``//``, a glob can become ``/a/``."""
    written = f"/{text}/" if kind.search else text
    if len(written) > 2 and written.startswith("/") and written.endswith("/"):
        return re.compile(written[1:-1]), True
    return re.compile(go_path_match_regex(written)), False


def _parse_key(inner: str) -> Key | None:
    if inner in ("account", "service"):
        return (inner,)
    if inner.startswith("labels:") and len(inner) > len("labels:"):
        return ("labels", inner[len("labels:") :])
    capture = _CAPTURE_RE.fullmatch(inner)
    if capture:
        return ("capture", capture.group(1), capture.group(2))
    return None


class _Template(Pattern):
    """A pattern with placeholders: compiled per distinct substitution, bounded LRU cache."""

    __slots__ = ("_build", "_captures", "_docker", "_keys")

    def __init__(self, kind: MatchKind, pieces: Sequence[str | Key], captures: Captures) -> None:
        keys: list[Key] = []
        for piece in pieces:
            if isinstance(piece, tuple) and piece not in keys:
                keys.append(piece)
        self._keys = tuple(keys)
        self._captures = captures
        self._docker = kind.docker
        slots = [p if isinstance(p, str) else self._keys.index(p) for p in pieces]
        translated = [kind.translate(p) if isinstance(p, str) else p for p in slots]

        def build(values: tuple[str, ...]) -> tuple[re.Pattern[str], bool] | None:
            try:
                if kind.docker:
                    text = "".join(p if isinstance(p, str) else values[p] for p in slots)
                    return _docker_compile(kind, text)
                source = "".join(
                    p if isinstance(p, str) else re.escape(values[p]) for p in translated
                )
                flags = re.DOTALL if kind.name == "glob" else 0
                return re.compile(source, flags), kind.search
            except (re.error, PatternError):  # a value made it invalid: no match
                return None

        self._build = functools.lru_cache(maxsize=_TEMPLATE_CACHE_SIZE)(build)

    def _value(self, key: Key, principal: PrincipalView) -> str | None:
        if key[0] == "account":
            if self._docker:
                return go_quote_meta(principal.account)
            return principal.account or None
        if key[0] == "service":
            if self._docker:
                return go_quote_meta(principal.service)
            return principal.service or None
        return self._captures[(key[1], int(key[2]))](principal)

    def _choices(self, principal: PrincipalView) -> Iterator[tuple[str, ...]]:
        fixed: list[tuple[str, ...]] = []
        for key in self._keys:
            if key[0] == "labels":
                values = tuple(principal.labels.get(key[1], ()))
                if self._docker:
                    fixed.append(values)
                    continue
                if not values:
                    return
                fixed.append(values)
                continue
            single = self._value(key, principal)
            if single is None:
                return
            fixed.append((single,))
        if not self._docker:
            yield from itertools.product(*fixed)
            return
        # docker_auth: first without label values, then each combination of the labels the
        # user has (a label the user lacks stays literal text; an empty one: no combination)
        literal = [
            (f"${{labels:{key[1]}}}",) if key[0] == "labels" else fixed[i]
            for i, key in enumerate(self._keys)
        ]
        yield from itertools.product(*literal)
        had = [
            fixed[i] if key[0] == "labels" and key[1] in principal.labels else literal[i]
            for i, key in enumerate(self._keys)
        ]
        if any(key[0] == "labels" and key[1] in principal.labels for key in self._keys):
            yield from itertools.product(*had)

    def __call__(self, value: str, principal: PrincipalView) -> bool:
        for values in itertools.islice(self._choices(principal), _MAX_COMBINATIONS):
            built = self._build(values)
            if built is None:
                continue
            regex, search = built
            found = regex.search(value) if search else regex.fullmatch(value)
            if found is not None:
                return True
        return False


def compile_pattern(
    spec: str | Mapping[str, str],
    *,
    captures: Captures,
    placeholders: bool = True,
    label_placeholders: bool = True,
) -> Pattern:
    """Compile an ACL pattern; :class:`PatternError` says why it cannot be.

    ``placeholders`` False: keelhaul's kinds take ``${...}`` literally (its ``account``,
    ``type`` and ``service`` fields); the docker_auth kinds substitute in every field, but
    with ``label_placeholders`` False ``${labels:KEY}`` is literal text there (docker_auth
    does not substitute labels into the patterns of ``labels`` itself).
    """
    kind, body = pattern_kind(spec)
    pieces: list[str | Key] = []
    position = 0
    found_all = _PLACEHOLDER_RE.finditer(body) if placeholders or kind.docker else ()
    for found in found_all:
        key = _parse_key(found.group(1))
        if key is not None and key[0] == "labels" and not label_placeholders and kind.docker:
            key = None
        if key is None:
            if kind.docker:  # docker_auth leaves what it does not know as text
                continue
            raise PatternError(
                f"unknown placeholder {found.group(0)}; use ${{account}}, ${{service}}, "
                "${labels:KEY}, ${account:N} or ${service:N}"
            )
        if key[0] == "capture" and (key[1], int(key[2])) not in captures:
            raise PatternError(
                f"{found.group(0)} needs the rule's {key[1]} to be a regular expression "
                f"with at least {key[2]} groups"
            )
        pieces.append(body[position : found.start()])
        pieces.append(key)
        position = found.end()
    pieces.append(body[position:])
    if any(isinstance(p, tuple) for p in pieces):
        sample = "".join("x" if isinstance(p, tuple) else p for p in pieces)
        try:
            re.compile(kind.translate(sample))
        except re.error as exc:
            if not kind.docker:
                raise PatternError(f"invalid regular expression: {exc}") from None
        except PatternError:
            if not kind.docker:
                raise
        return _Template(kind, pieces, captures)
    try:
        regex = re.compile(kind.translate(body), re.DOTALL if kind.name == "glob" else 0)
    except re.error as exc:
        if kind.docker:
            return _Never()
        raise PatternError(f"invalid regular expression: {exc}") from None
    except PatternError:
        if kind.docker:
            return _Never()
        raise
    if kind.name == "glob":
        if body == "**":
            return _Anything()
        if "*" not in body and "?" not in body:
            return _Literal(body)
    return _Regex(regex, kind.search)


@dataclass(frozen=True)
class _Capture:
    search: Callable[[str], re.Match[str] | None]
    field: str
    group: int

    def __call__(self, principal: PrincipalView) -> str | None:
        found = self.search(getattr(principal, self.field))
        if found is None:
            return None
        return found.group(self.group) or ""


@dataclass
class CaptureSources:
    """The rule's ``account`` / ``service`` regular expressions, for ``${FIELD:N}``."""

    sources: dict[str, tuple[re.Pattern[str], bool]] = field(default_factory=dict)

    def add(self, field_name: str, spec: str | Mapping[str, str] | None) -> None:
        if spec is None:
            return
        kind, body = pattern_kind(spec)
        if kind.name not in ("regex", "search"):
            return
        try:
            self.sources[field_name] = (re.compile(body), kind.search)
        except re.error:
            return

    def captures(self) -> dict[tuple[str, int], Callable[[PrincipalView], str | None]]:
        out: dict[tuple[str, int], Callable[[PrincipalView], str | None]] = {}
        for name, (regex, search) in self.sources.items():
            finder = regex.search if search else regex.fullmatch
            for group in range(1, regex.groups + 1):
                out[(name, group)] = _Capture(finder, name, group)
        return out
