"""An independent transcription of docker_auth's ACL matching, for the property tests.

Written from cesanta/docker_auth ``auth_server/authz/acl.go`` (``aclAuthorizer.Authorize``,
``MatchConditions.Matches``, ``matchString``, ``matchStringWithLabelPermutations``,
``matchIP``, ``matchLabels``, ``captureGroupRegex``) and Go's ``path.Match``
(``src/path/match.go``: ``Match``, ``scanChunk``, ``matchChunk``, ``getEsc``), ported
statement by statement; it shares no code with ``keelhaul.auth``. Go's ``regexp.Match`` is
stood in for by Python's ``re.search`` (the generated patterns use the common subset).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any


class BadPattern(Exception):
    """Go's path.ErrBadPattern."""


# --------------------------------------------------------------------- Go path.Match


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern and pattern[0] == "*":
        pattern = pattern[1:]
        star = True
    inrange = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif c == "[":
            inrange = True
        elif c == "]":
            inrange = False
        elif c == "*" and not inrange:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise BadPattern
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern
    r, nchunk = chunk[0], chunk[1:]
    if not nchunk:
        raise BadPattern
    return r, nchunk


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    """(rest of s, ok); raises BadPattern. Go keeps checking the chunk after a failure."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        c = chunk[0]
        if c == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = False
            if chunk and chunk[0] == "^":
                negated = True
                chunk = chunk[1:]
            match = False
            nrange = 0
            while True:
                if chunk and chunk[0] == "]" and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= r <= hi:
                    match = True
                nrange += 1
            if match == negated:
                failed = True
        elif c == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        elif c == "\\":
            chunk = chunk[1:]
            if not chunk:
                raise BadPattern
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def path_match(pattern: str, name: str) -> bool:
    """Go ``path.Match``; raises BadPattern like Go returns ErrBadPattern."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name
        t, ok = _match_chunk(chunk, name)
        if ok and (not t or pattern):
            name = t
            continue
        if star:
            i = 0
            found = False
            while i < len(name) and name[i] != "/":
                t, ok = _match_chunk(chunk, name[i + 1 :])
                if ok:
                    if not pattern and t:
                        i += 1
                        continue
                    name = t
                    found = True
                    break
                i += 1
            if found:
                continue
        # Before returning false with no error, check that the remainder is valid.
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


# --------------------------------------------------------------------- acl.go


def quote_meta(s: str) -> str:
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", s)


def replacer(pairs: list[str], text: str) -> str:
    """strings.NewReplacer(pairs...).Replace: leftmost, first pair wins, no re-scan."""
    olds = list(zip(pairs[::2], pairs[1::2], strict=True))
    out: list[str] = []
    i = 0
    while i < len(text):
        for old, new in olds:
            if old and text.startswith(old, i):
                out.append(new)
                i += len(old)
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def match_string(pp: str | None, s: str, vars_: list[str]) -> bool:
    if pp is None:
        return True
    p = replacer(vars_, pp)
    try:
        if len(p) > 2 and p[0] == "/" and p[-1] == "/":
            return re.search(p[1:-1], s) is not None
        return path_match(p, s)
    except (re.error, BadPattern):
        return False


def match_with_label_permutations(
    pp: str | None, s: str, vars_: list[str], label_map: dict[str, list[str]]
) -> bool:
    matched = match_string(pp, s, vars_)
    if not matched and pp is not None:
        label_sets = [
            [(placeholder, label) for label in labels]
            for placeholder, labels in label_map.items()
            if placeholder in pp
        ]
        if label_sets:
            for permutation in _product(label_sets):
                label_vars = [x for pair in permutation for x in pair]
                if match_string(pp, s, vars_ + label_vars):
                    return True
    return matched


def _product(sets: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = [[]]
    for options in sets:
        result = [[*r, o] for r in result for o in options]
    return result


def parse_ip_pattern(ipp: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        ip = ipaddress.ip_address(ipp)
    except ValueError:
        return ipaddress.ip_network(ipp, strict=False)
    return ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}")


def match_ip(ipp: str | None, ip: str | None) -> bool:
    if ipp is None:
        return True
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # Go's net.IP.To4 in IPNet.Contains
    network = parse_ip_pattern(ipp)
    return address.version == network.version and address in network


def match_labels(ml: dict[str, str], rl: dict[str, list[str]], vars_: list[str]) -> bool:
    for label, pattern in ml.items():
        if not any(match_string(pattern, lv, vars_) for lv in rl.get(label, [])):
            return False
    return True


CAPTURE_GROUP = re.compile(r"\$\{(.+?):(\d+)\}")
FIELDS = ("Account", "Type", "Name", "Service")


@dataclass
class Request:
    account: str
    type: str
    name: str
    service: str
    ip: str | None = None
    labels: dict[str, list[str]] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)


def matches(mc: dict[str, Any], ai: Request) -> bool:
    """``MatchConditions.Matches``."""
    vars_ = [
        "${account}", quote_meta(ai.account),
        "${type}", quote_meta(ai.type),
        "${name}", quote_meta(ai.name),
        "${service}", quote_meta(ai.service),
    ]  # fmt: skip
    for x in FIELDS:
        text = mc.get(x.lower()) or ""
        for found in CAPTURE_GROUP.finditer(text):
            key = found.group(1)[:1].upper() + found.group(1)[1:]  # strings.Title
            index = int(found.group(2))
            if key not in FIELDS:
                continue
            source = mc.get(key.lower())
            if source is None or len(source) < 2 or source[0] != "/" or source[-1] != "/":
                continue
            try:
                regex = re.compile(source[1:-1])
            except re.error:
                continue
            info = getattr(ai, key.lower())
            hit = regex.search(info)
            groups = [hit.group(0), *hit.groups()] if hit else []
            if index < 1 or index > len(groups) - 1:
                continue
            vars_ += [found.group(0), groups[index] or ""]
    label_map = {f"${{labels:{k}}}": list(v) for k, v in ai.labels.items()}
    return (
        match_with_label_permutations(mc.get("account"), ai.account, vars_, label_map)
        and match_with_label_permutations(mc.get("type"), ai.type, vars_, label_map)
        and match_with_label_permutations(mc.get("name"), ai.name, vars_, label_map)
        and match_with_label_permutations(mc.get("service"), ai.service, vars_, label_map)
        and match_ip(mc.get("ip"), ai.ip)
        and match_labels(mc.get("labels") or {}, ai.labels, vars_)
    )


def authorize(acl: list[dict[str, Any]], ai: Request) -> list[str]:
    """``aclAuthorizer.Authorize``: first match; ``["*"]`` all; else the intersection."""
    for entry in acl:
        if matches(entry["match"], ai):
            actions = entry["actions"]
            if len(actions) == 1 and actions[0] == "*":
                return list(ai.actions)
            return [a for a in ai.actions if a in actions]  # StringSetIntersection
    return []
