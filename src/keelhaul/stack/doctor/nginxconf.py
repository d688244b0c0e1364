"""Just enough of nginx's configuration language to answer the doctor's questions. Pure.

:func:`parse` turns text into a tree of :class:`Directive` (``include`` is resolved
through a callback, so reading files stays outside); :func:`select_location` picks the
``location`` nginx would pick for a URI (exact, then longest prefix, ``^~``, then
regular expressions in order); :func:`effective` reads a directive's value the way nginx
inherits it (location, enclosing locations, server, http), with nginx's defaults.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULTS",
    "Directive",
    "NginxSyntaxError",
    "effective",
    "find",
    "find_all",
    "parse",
    "select_location",
]

DEFAULTS: dict[str, str] = {
    "worker_processes": "1",
    "worker_connections": "512",
    "proxy_buffering": "on",
    "proxy_request_buffering": "on",
    "proxy_http_version": "1.0",
    "client_max_body_size": "1m",
    "proxy_max_temp_file_size": "1024m",
}
"""nginx's built-in values for the directives the doctor reads."""

Loader = Callable[[str], Sequence[tuple[str, str]]]
"""``include`` pattern -> ``[(file name, text), ...]`` (empty when nothing matches)."""


class NginxSyntaxError(ValueError):
    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source = source
        self.line = line


@dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...]
    block: tuple[Directive, ...] | None = None
    source: str = ""
    line: int = 0
    parent: Directive | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return " ".join((self.name, *self.args))


_SPECIAL = "{};"


def _tokens(text: str, source: str) -> Iterator[tuple[str, int, bool]]:
    """``(token, line, quoted)``; comments dropped, quotes removed, escapes kept simple."""
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in _SPECIAL:
            yield ch, line, False
            i += 1
        elif ch in "\"'":
            start_line = line
            i += 1
            out = []
            while i < n and text[i] != ch:
                if text[i] == "\\" and i + 1 < n:
                    out.append(text[i + 1])
                    i += 2
                    continue
                if text[i] == "\n":
                    line += 1
                out.append(text[i])
                i += 1
            if i >= n:
                raise NginxSyntaxError(source, start_line, "unterminated quoted string")
            i += 1
            yield "".join(out), start_line, True
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
                if text[i] == "$" and i + 1 < n and text[i + 1] == "{":
                    while i < n and text[i] != "}":
                        i += 1
                i += 1
            yield text[start:i], line, False


def _no_include(pattern: str) -> Sequence[tuple[str, str]]:
    return ()


def parse(
    text: str, source: str = "nginx.conf", include: Loader = _no_include
) -> tuple[Directive, ...]:
    """The top-level directives of ``text``; ``include`` directives are replaced in place."""
    return _parse(text, source, include, depth=0)


def _parse(text: str, source: str, include: Loader, depth: int) -> tuple[Directive, ...]:
    if depth > 10:
        raise NginxSyntaxError(source, 0, "include nested more than 10 deep")
    stack: list[list[Directive]] = [[]]
    heads: list[tuple[str, tuple[str, ...], int]] = []
    words: list[str] = []
    first_line = 0
    for word, line, quoted in _tokens(text, source):
        if quoted or word not in _SPECIAL:
            if not words:
                first_line = line
            words.append(word)
            continue
        if word == ";":
            if not words:
                continue
            name, args = words[0], tuple(words[1:])
            if name == "include" and args:
                for sub_source, sub_text in include(args[0]):
                    stack[-1].extend(_parse(sub_text, sub_source, include, depth + 1))
            else:
                stack[-1].append(Directive(name, args, None, source, first_line))
            words = []
        elif word == "{":
            if not words:
                raise NginxSyntaxError(source, line, "block without a directive name")
            heads.append((words[0], tuple(words[1:]), first_line))
            stack.append([])
            words = []
        else:  # "}"
            if words or len(stack) == 1:
                raise NginxSyntaxError(source, line, "unexpected }")
            children = tuple(stack.pop())
            name, args, start = heads.pop()
            stack[-1].append(Directive(name, args, children, source, start))
    if words or len(stack) != 1:
        raise NginxSyntaxError(source, first_line, "unexpected end of file (missing ; or })")
    return _link(tuple(stack[0]), None)


def _link(directives: tuple[Directive, ...], parent: Directive | None) -> tuple[Directive, ...]:
    """Rebuild with ``parent`` pointers, so that inheritance can walk upwards."""
    linked = []
    for d in directives:
        node = Directive(d.name, d.args, None, d.source, d.line, parent)
        if d.block is not None:
            object.__setattr__(node, "block", _link(d.block, node))
        linked.append(node)
    return tuple(linked)


def find_all(directives: Sequence[Directive], name: str) -> list[Directive]:
    return [d for d in directives if d.name == name]


def find(directives: Sequence[Directive], name: str) -> Directive | None:
    """The last one wins, as in nginx for the directives the doctor reads."""
    found = find_all(directives, name)
    return found[-1] if found else None


def effective(node: Directive | None, name: str, top: Sequence[Directive] = ()) -> str:
    """The value of ``name`` in effect inside ``node``'s block (``top``: the main context)."""
    while node is not None:
        if node.block is not None:
            hit = find(node.block, name)
            if hit is not None:
                return " ".join(hit.args)
        node = node.parent
    hit = find(top, name)
    if hit is not None:
        return " ".join(hit.args)
    return DEFAULTS.get(name, "")


def _location_kind(loc: Directive) -> tuple[str, str]:
    if len(loc.args) >= 2 and loc.args[0] in ("=", "~", "~*", "^~"):
        return loc.args[0], loc.args[1]
    if loc.args and loc.args[0].startswith("@"):
        return "@", loc.args[0]
    return "", loc.args[0] if loc.args else ""


def select_location(container: Directive, uri: str) -> Directive | None:
    """The ``location`` of ``container`` (a server or a location) nginx uses for ``uri``."""
    locations = [d for d in (container.block or ()) if d.name == "location"]
    best: Directive | None = None
    best_len = -1
    for loc in locations:
        kind, pattern = _location_kind(loc)
        if kind == "=" and uri == pattern:
            return loc
        if kind in ("", "^~") and uri.startswith(pattern) and len(pattern) > best_len:
            best, best_len = loc, len(pattern)
    if best is not None:
        nested = select_location(best, uri)
        if nested is not None:
            return nested
        if _location_kind(best)[0] == "^~":
            return best
    for loc in locations:
        kind, pattern = _location_kind(loc)
        if kind in ("~", "~*"):
            try:
                if re.search(pattern, uri, re.IGNORECASE if kind == "~*" else 0):
                    return loc
            except re.error:
                continue
    return best
