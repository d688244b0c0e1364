"""Go's pattern semantics that docker_auth relies on, for Python's ``re``. Pure.

``path.Match`` (src/path/match.go) translated to a regular expression, and
``regexp.QuoteMeta``. Kept apart so that the translation can be read against Go's source.
"""

from __future__ import annotations

import re

__all__ = ["PatternError", "go_path_match_regex", "go_quote_meta"]

_GO_QUOTE_RE = re.compile(r"([\\.+*?()|\[\]{}^$])")


class PatternError(ValueError):
    """The pattern cannot be compiled; the message says why (without the key: callers add it)."""


def _go_escaped(chunk: str, i: int) -> tuple[str, int]:
    """Go path.Match ``getEsc``: one possibly escaped class character, and the next index."""
    if i >= len(chunk) or chunk[i] in "-]":
        raise PatternError("malformed character class")
    if chunk[i] == "\\":
        i += 1
        if i >= len(chunk):
            raise PatternError("trailing backslash in a character class")
    if i + 1 >= len(chunk):
        raise PatternError("unterminated character class")
    return chunk[i], i + 1


def _go_class(pattern: str, i: int) -> tuple[str, int]:
    """A ``[...]`` class starting after its ``[``: (regex, index after ``]``)."""
    negated = i < len(pattern) and pattern[i] == "^"
    i += negated
    ranges: list[str] = []
    count = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and count > 0:
            i += 1
            break
        lo, i = _go_escaped(pattern, i)
        hi = lo
        if pattern[i] == "-":
            hi, i = _go_escaped(pattern, i + 1)
        if lo <= hi:  # Go accepts lo > hi: a range that matches nothing
            ranges.append(re.escape(lo) + ("-" + re.escape(hi) if hi != lo else ""))
        count += 1
    if not ranges:
        return ("(?s:.)" if negated else "(?!)"), i
    return "[" + ("^" if negated else "") + "".join(ranges) + "]", i


def go_path_match_regex(pattern: str) -> str:
    """Go ``path.Match``'s pattern as a Python regex for ``fullmatch`` (DOTALL not needed).

    Go checks the whole pattern even after a mismatch, so a malformed pattern never
    matches anything: raised here as :class:`PatternError`.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise PatternError("trailing backslash")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif char == "[":
            regex, i = _go_class(pattern, i + 1)
            out.append(regex)
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def go_quote_meta(text: str) -> str:
    """Go ``regexp.QuoteMeta``: literal in a Go regex and in ``path.Match`` alike."""
    return _GO_QUOTE_RE.sub(r"\\\1", text)
