"""Properties of scope parsing and granting, checked against a slow reference implementation.

The oracle below shares no code with :mod:`keelhaul.auth.acl`: globs are matched by a
memoised recursive matcher over tokens (a substituted value becomes literal tokens), not by
translation to a regular expression.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import re
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from keelhaul.auth.acl import Acl, Principal
from keelhaul.auth.scopes import Scope, parse_scope
from keelhaul.auth.settings import AclRule
from keelhaul.errors import ScopeError

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the oracle ---------------------------------------------------------------------------

Token = tuple[str, str]  # ("lit", char) | ("star", "") | ("dstar", "") | ("any1", "")


def _placeholders(text: str) -> list[str]:
    found, start = [], 0
    while (begin := text.find("${", start)) >= 0:
        end = text.find("}", begin)
        if end < 0:
            break
        found.append(text[begin + 2 : end])
        start = end + 1
    return found


def _glob_tokens(text: str, values: Mapping[str, str]) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        if (
            text.startswith("${", i)
            and (end := text.find("}", i)) >= 0
            and text[i + 2 : end] in values
        ):
            tokens.extend(("lit", c) for c in values[text[i + 2 : end]])
            i = end + 1
        elif text.startswith("**", i):
            tokens.append(("dstar", ""))
            i += 2
        elif text[i] == "*":
            tokens.append(("star", ""))
            i += 1
        elif text[i] == "?":
            tokens.append(("any1", ""))
            i += 1
        else:
            tokens.append(("lit", text[i]))
            i += 1
    return tokens


def _glob_match(tokens: Sequence[Token], subject: str) -> bool:
    @functools.cache
    def at(i: int, j: int) -> bool:
        if i == len(tokens):
            return j == len(subject)
        kind, char = tokens[i]
        if kind == "dstar":
            return any(at(i + 1, k) for k in range(j, len(subject) + 1))
        if kind == "star":
            k = j
            while True:
                if at(i + 1, k):
                    return True
                if k == len(subject) or subject[k] == "/":
                    return False
                k += 1
        if j == len(subject):
            return False
        if kind == "any1":
            return subject[j] != "/" and at(i + 1, j + 1)
        return subject[j] == char and at(i + 1, j + 1)

    return at(0, 0)


def _oracle_match(
    pattern: str | None, subject: str, principal: Principal, *, placeholders: bool
) -> bool:
    if pattern is None:
        return True
    names = sorted(set(_placeholders(pattern))) if placeholders else []
    choices: list[list[str]] = []
    for name in names:
        if name == "account":
            choices.append([principal.account] if principal.account else [])
        else:
            choices.append(list(principal.labels.get(name.removeprefix("labels:"), ())))
    for combo in itertools.product(*choices):
        values = dict(zip(names, combo, strict=True))
        if len(pattern) >= 2 and pattern[0] == "/" and pattern[-1] == "/":
            body = pattern[1:-1]
            for name, value in values.items():
                body = body.replace("${" + name + "}", re.escape(value))
            if re.fullmatch(body, subject) is not None:
                return True
        elif _glob_match(_glob_tokens(pattern, values), subject):
            return True
    return False


def _oracle_decide(rules: Sequence[AclRule], principal: Principal, scope: Scope) -> int | None:
    for index, rule in enumerate(rules):
        m = rule.match
        if not _oracle_match(m.account, principal.account, principal, placeholders=False):
            continue
        if not _oracle_match(m.type, scope.type, principal, placeholders=False):
            continue
        if not _oracle_match(m.name, scope.name, principal, placeholders=True):
            continue
        if m.ip is not None:
            net = ipaddress.ip_network(m.ip, strict=False)
            ip = principal.ip
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            if ip is None or not (ip in net or (mapped is not None and mapped in net)):
                continue
        if all(
            any(
                _oracle_match(pattern, value, principal, placeholders=True)
                for value in principal.labels.get(key, ())
            )
            for key, pattern in m.labels.items()
        ):
            return index
    return None


def _oracle_allowed(rule: AclRule | None, requested: tuple[str, ...]) -> set[str]:
    if rule is None:
        return set()
    if "*" in rule.actions:
        return set(requested)
    return set(requested) & set(rule.actions)


# --- strategies -------------------------------------------------------------------------

_glob_pieces = ["a", "b", "/", "*", "**", "?", "."]
_placeholder_pieces = ["${account}", "${labels:team}"]


def _globs(*, placeholders: bool) -> st.SearchStrategy[str]:
    pieces = _glob_pieces + (_placeholder_pieces if placeholders else [])
    return (
        st.lists(st.sampled_from(pieces), max_size=5)
        .map("".join)
        .filter(lambda s: not (len(s) >= 2 and s[0] == "/" and s[-1] == "/"))
    )


_regexes = st.sampled_from(["/a.*/", "/(a|b)/b/", "/[ab]+/", "/.+/", "/a?/", "/a.b/"])
# None is listed more than once so that rules often leave a field out, and so match
_name_patterns = st.one_of(
    st.none(),
    st.none(),
    _globs(placeholders=True),
    _globs(placeholders=True),
    _regexes,
    st.sampled_from(["/${account}/.*/", "/(${labels:team}|b)/", "${account}/*", "${account}"]),
)
_account_patterns = st.one_of(
    st.none(),
    st.none(),
    st.sampled_from(["", "alice", "a*", "*", "/.+/", "?lice"]),
    _globs(placeholders=False),
)
_type_patterns = st.sampled_from([None, None, None, "repository", "registry", "re*", "/reg.*/"])
_ips = st.sampled_from([None, None, "10.0.0.0/8", "fd00::/8", "0.0.0.0/0", "::/0"])
_label_patterns: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.just({}),
    st.dictionaries(
        st.sampled_from(["team", "role"]),
        st.one_of(_globs(placeholders=True), _regexes),
        max_size=2,
    ),
)
_actions = st.lists(st.sampled_from(["pull", "push", "delete", "*"]), unique=True, max_size=3)


@st.composite
def _rules(draw: st.DrawFn) -> AclRule:
    match = {
        "account": draw(_account_patterns),
        "name": draw(_name_patterns),
        "type": draw(_type_patterns),
        "ip": draw(_ips),
        "labels": draw(_label_patterns),
    }
    return AclRule.model_validate({"match": match, "actions": draw(_actions)})


# values that collide with glob and regex syntax, so literal insertion is put to the test
_words = ["a", "b", "a*", "a.b", "alice", "x/y", "?"]
_label_values = st.lists(st.sampled_from(_words), max_size=3)


@st.composite
def _principals(draw: st.DrawFn) -> Principal:
    labels = draw(st.dictionaries(st.sampled_from(["team", "role"]), _label_values, max_size=2))
    ip = draw(st.sampled_from([None, "10.1.2.3", "::ffff:10.0.0.1", "fd00::1", "192.168.0.1"]))
    # anonymous twice: the placeholder rules must never match it
    return Principal(
        account=draw(st.sampled_from(["", "", *_words])),
        labels={k: tuple(v) for k, v in labels.items()},
        ip=ipaddress.ip_address(ip) if ip else None,
    )


_requested_scopes = st.builds(
    Scope,
    type=st.sampled_from(["repository", "registry"]),
    name=st.lists(st.sampled_from([*_words, "/", ".", "ab"]), max_size=4).map("".join),
    actions=st.lists(st.sampled_from(["*", "delete", "pull", "push"]), unique=True).map(
        lambda a: tuple(sorted(a))
    ),
)


@PROPERTY
@given(
    rules=st.lists(_rules(), max_size=6),
    principal=_principals(),
    requested=st.lists(_requested_scopes, min_size=1, max_size=8),
)
def test_grant_agrees_with_the_oracle(
    rules: list[AclRule], principal: Principal, requested: list[Scope]
) -> None:
    acl = Acl.compile(rules)
    granted = acl.grant(principal, requested)
    assert len(granted) == len(requested)
    for asked, got in zip(requested, granted, strict=True):
        assert got.key == asked.key
        assert set(got.actions) <= set(asked.actions)
        assert list(got.actions) == sorted(got.actions)
        decider = _oracle_decide(rules, principal, asked)
        event("decided by a rule" if decider is not None else "default deny")
        event("something granted" if got.actions else "nothing granted")
        assert acl.explain(principal, asked) == decider
        rule = None if decider is None else rules[decider]
        if rule is not None and "*" not in rule.actions:
            assert set(got.actions) <= set(rule.actions)
        assert set(got.actions) == _oracle_allowed(rule, asked.actions)
        assert acl.allowed_actions(principal, asked) == got.actions


_FILLS = {
    "**": ["", "a", "/", "a/b", "b/"],
    "*": ["", "a", "ab", "/", "a/b"],
    "?": ["a", "/", ".", ""],
}


@st.composite
def _near_names(draw: st.DrawFn, pattern: str, principal: Principal) -> str:
    """A name made from ``pattern``, each wildcard and placeholder filled in at random."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("${", i):
            end = pattern.index("}", i)
            key = pattern[i + 2 : end]
            own = (
                [principal.account]
                if key == "account"
                else list(principal.labels.get(key.removeprefix("labels:"), ()))
            )
            out.append(draw(st.sampled_from([*own, "a*", "a", ""])))
            i = end + 1
        elif (wild := pattern[i : i + 2] if pattern.startswith("**", i) else pattern[i]) in _FILLS:
            out.append(draw(st.sampled_from(_FILLS[wild])))
            i += len(wild)
        else:
            out.append(draw(st.sampled_from([pattern[i], pattern[i], "a", "x", "/"])))
            i += 1
    return "".join(out)


@PROPERTY
@given(
    pattern=st.one_of(_globs(placeholders=True), _regexes),
    principal=_principals(),
    data=st.data(),
)
def test_name_patterns_agree_with_the_oracle(
    pattern: str, principal: Principal, data: st.DataObject
) -> None:
    """One rule, only a name pattern, and names built to almost match it."""
    acl = Acl.compile([AclRule.model_validate({"match": {"name": pattern}, "actions": ["*"]})])
    random_names = st.lists(st.sampled_from([*_words, "/", "."]), max_size=4).map("".join)
    names = data.draw(
        st.lists(st.one_of(_near_names(pattern, principal), random_names), min_size=4, max_size=16)
    )
    for name in names:
        scope = Scope("repository", name, ("pull",))
        expected = _oracle_match(pattern, name, principal, placeholders=True)
        event("matched" if expected else "not matched")
        assert acl.allowed_actions(principal, scope) == (("pull",) if expected else ())


# --- scope grammar ------------------------------------------------------------------------

_grammar_chars = "abzAZ09:/.,_-()* \x00\u00e9"


@PROPERTY
@given(st.one_of(st.text(), st.text(alphabet=_grammar_chars)))
def test_parse_scope_raises_only_scope_error(text: str) -> None:
    try:
        scope = parse_scope(text)
    except ScopeError as exc:
        assert str(exc).startswith("invalid scope ")
        return
    assert parse_scope(str(scope)) == scope


_alnum = st.text(alphabet="abz09", min_size=1, max_size=4)
_separator = st.sampled_from([".", "_", "__", "-", "---", ""])


@st.composite
def _components(draw: st.DrawFn) -> str:
    parts = [draw(_alnum)]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(_separator), draw(_alnum)]
    return "".join(parts)


@st.composite
def _hostnames(draw: st.DrawFn) -> str:
    def part() -> str:
        edge = st.sampled_from("aZ9")
        if draw(st.booleans()):
            return draw(edge)
        return draw(edge) + draw(st.text(alphabet="aZ9-", max_size=3)) + draw(edge)

    host = ".".join(part() for _ in range(draw(st.integers(1, 3))))
    if draw(st.booleans()):
        host += ":" + draw(st.text(alphabet="0123456789", min_size=1, max_size=5))
    return host


@st.composite
def _grammar_scopes(draw: st.DrawFn) -> tuple[str, str, str, str, list[str]]:
    kind = draw(st.text(alphabet="abz09", min_size=1, max_size=6))
    cls = draw(st.one_of(st.just(""), st.text(alphabet="abz09", min_size=1, max_size=6)))
    name = "/".join(draw(st.lists(_components(), min_size=1, max_size=3)))
    if draw(st.booleans()):
        name = draw(_hostnames()) + "/" + name
    actions = draw(st.lists(st.sampled_from(["pull", "push", "delete", "*", "", "x"]), min_size=1))
    text = f"{kind}({cls})" if cls else kind
    return f"{text}:{name}:{','.join(actions)}", kind, cls, name, actions


@PROPERTY
@given(_grammar_scopes())
def test_grammar_scopes_parse_and_round_trip(
    generated: tuple[str, str, str, str, list[str]],
) -> None:
    text, kind, cls, name, actions = generated
    scope = parse_scope(text, max_length=10_000)
    assert scope == Scope(kind, name, tuple(sorted(set(actions) - {""})), cls)
    assert parse_scope(str(scope), max_length=10_000) == scope
