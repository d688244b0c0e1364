"""``WWW-Authenticate`` challenges (RFC 7235), as registries send them. Pure.

One header may hold several challenges (``Bearer realm="a",service="b", Basic realm="c"``),
a response may carry several headers, quoted values may contain commas and ``\\"`` escapes,
and a scheme may be followed by a token68 instead of parameters. Schemes and parameter
names are case-insensitive and come back lowercased. Parsing is lenient, like Docker's:
junk is skipped, never raised about, because a client that cannot parse a challenge
still reports the 401 it got.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Challenge", "parse_challenges"]

_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TCHARS_RE = re.compile(_TCHARS)
_SEPARATORS_RE = re.compile(r"[\s,]*")
_EQUALS_RE = re.compile(r"\s*=\s*")
_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"?', re.DOTALL)
_T68_RE = re.compile(r"([A-Za-z0-9\-._~+/]+=*)\s*(?=,|$)")
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    def get(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def error(self) -> str:
        """``invalid_token``, ``insufficient_scope``, ... or ``''``."""
        return self.params.get("error", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The ``scope`` parameter split on spaces (a registry may ask for several)."""
        return tuple(s for s in self.params.get("scope", "").split(" ") if s)


def _parse_one(header: str, out: list[Challenge]) -> None:
    pos, end = 0, len(header)
    scheme: str | None = None
    params: dict[str, str] = {}
    token68: str | None = None
    fresh = False  # right after a scheme: a token68 may follow

    def flush() -> None:
        if scheme is not None:
            out.append(Challenge(scheme, params, token68))

    while True:
        pos = _SEPARATORS_RE.match(header, pos).end()  # type: ignore[union-attr]
        if pos >= end:
            break
        if fresh:
            fresh = False
            # "abc==" alone before a comma or the end is a token68; "realm=x" is a parameter
            m68 = _T68_RE.match(header, pos)
            if m68 is not None:
                token68 = m68.group(1)
                pos = m68.end()
                continue
        tok = _TCHARS_RE.match(header, pos)
        if tok is None:
            pos += 1  # junk: skip it
            continue
        name = tok.group(0)
        pos = tok.end()
        eq = _EQUALS_RE.match(header, pos)
        if eq is None or scheme is None:
            flush()
            scheme, params, token68, fresh = name.lower(), {}, None, True
            continue
        pos = eq.end()
        if pos < end and header[pos] == '"':
            quoted = _QUOTED_RE.match(header, pos)
            assert quoted is not None  # the pattern always matches at a quote
            value = _UNESCAPE_RE.sub(r"\1", quoted.group(1))
            pos = quoted.end()
        else:
            bare = _TCHARS_RE.match(header, pos)
            value = bare.group(0) if bare is not None else ""
            pos = bare.end() if bare is not None else pos
        params[name.lower()] = value
    flush()


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge in every ``WWW-Authenticate`` header value, in order."""
    out: list[Challenge] = []
    for header in headers:
        _parse_one(header, out)
    return out
