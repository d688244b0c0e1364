from __future__ import annotations

import ipaddress

import pytest

from keelhaul.auth.acl import Acl, Principal
from keelhaul.auth.scopes import Scope, parse_scope
from keelhaul.auth.settings import AclMatch, AclRule
from keelhaul.errors import ConfigError

pytestmark = pytest.mark.unit

ALL = ("delete", "pull", "push")


def rule(actions: list[str], **match: object) -> AclRule:
    return AclRule.model_validate({"match": match, "actions": actions})


def acl(*rules: AclRule) -> Acl:
    return Acl.compile(list(rules))


def who(account: str = "alice", ip: str | None = None, **labels: list[str]) -> Principal:
    return Principal(
        account=account,
        labels={k: tuple(v) for k, v in labels.items()},
        ip=ipaddress.ip_address(ip) if ip else None,
    )


def repo(name: str, actions: tuple[str, ...] = ALL) -> Scope:
    return Scope("repository", name, actions)


ANON = who("")


def test_deny_by_default() -> None:
    assert acl().allowed_actions(who(), repo("a")) == ()
    assert acl().explain(who(), repo("a")) is None
    only_bob = acl(rule(["*"], account="bob"))
    assert only_bob.allowed_actions(who("alice"), repo("a")) == ()
    assert only_bob.explain(who("alice"), repo("a")) is None


def test_first_match_wins() -> None:
    rules = acl(
        rule(["pull"], account="alice", name="secret/*"),
        rule(["*"], account="alice"),
        rule(["pull", "push"]),
    )
    assert rules.allowed_actions(who("alice"), repo("secret/x")) == ("pull",)
    assert rules.explain(who("alice"), repo("secret/x")) == 0
    assert rules.allowed_actions(who("alice"), repo("public/x")) == ALL
    assert rules.explain(who("alice"), repo("public/x")) == 1
    assert rules.allowed_actions(who("bob"), repo("secret/x")) == ("pull", "push")
    assert rules.explain(who("bob"), repo("secret/x")) == 2


def test_empty_actions_is_an_explicit_deny_that_stops_the_search() -> None:
    rules = acl(rule([], name="frozen/**"), rule(["*"]))
    assert rules.allowed_actions(who(), repo("frozen/a/b")) == ()
    assert rules.explain(who(), repo("frozen/a/b")) == 0
    assert rules.allowed_actions(who(), repo("other")) == ALL


def test_partial_grant_and_grant_keeps_denied_scopes_with_no_actions() -> None:
    rules = acl(rule(["pull"], name="pub/*"))
    granted = rules.grant(
        who(), [repo("pub/a"), repo("priv/a"), Scope("repository", "pub/b", ("pull",))]
    )
    assert granted == [
        repo("pub/a", ("pull",)),
        repo("priv/a", ()),
        Scope("repository", "pub/b", ("pull",)),
    ]
    assert granted[1].to_access()["actions"] == []
    assert rules.grant(who(), []) == []


def test_star_semantics() -> None:
    star = acl(rule(["*"]))
    assert star.allowed_actions(who(), repo("a", ("*", "pull"))) == ("*", "pull")
    catalog = parse_scope("registry:catalog:*")
    assert star.allowed_actions(who(), catalog) == ("*",)
    explicit = acl(rule(["pull", "push", "delete"]))
    assert explicit.allowed_actions(who(), catalog) == ()
    assert explicit.allowed_actions(who(), repo("a", ("*", "pull"))) == ("pull",)
    listed = acl(rule(["pull", "*"]))
    assert listed.allowed_actions(who(), repo("a", ("*", "push"))) == ("*", "push")


def test_type_matching_for_the_catalog() -> None:
    rules = acl(
        rule(["*"], account="admin", type="registry", name="catalog"),
        rule(["pull"], type="repository"),
    )
    catalog = parse_scope("registry:catalog:*")
    assert rules.allowed_actions(who("admin"), catalog) == ("*",)
    assert rules.allowed_actions(who("alice"), catalog) == ()
    assert rules.allowed_actions(who("alice"), repo("catalog")) == ("pull",)


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*", "a", True),
        ("*", "a/b", False),
        ("**", "a/b/c", True),
        ("team/*", "team/app", True),
        ("team/*", "team/app/sub", False),
        ("team/**", "team/app/sub", True),
        ("team/**", "team", False),
        ("team/?pp", "team/app", True),
        ("team/?pp", "team/xapp", False),
        ("a?b", "a/b", False),
        ("*/app", "x/app", True),
        ("**/app", "x/y/app", True),
        ("a.b", "a.b", True),
        ("a.b", "axb", False),
        ("a+[b]", "a+[b]", True),
        ("*.b", "a.b", True),
        ("*.b", "axb", False),
        ("v+(x)/*", "v+(x)/y", True),
        ("v+(x)/*", "vvx/y", False),
        ("exact", "exact", True),
        ("exact", "exactly", False),
        ("/team-[0-9]+/.*/", "team-42/x/y", True),
        ("/team-[0-9]+/.*/", "team-x/y", False),
        ("/abc/", "xabcx", False),
        ("/", "/", True),
    ],
)
def test_name_patterns(pattern: str, name: str, matches: bool) -> None:
    rules = acl(rule(["pull"], name=pattern))
    assert rules.allowed_actions(who(), repo(name, ("pull",))) == (("pull",) if matches else ())


def test_account_patterns_and_anonymous() -> None:
    rules = acl(
        rule(["pull"], account=""),
        rule(["*"], account="/adm-.+/"),
        rule(["push", "pull"], account="dev-*"),
    )
    assert rules.allowed_actions(ANON, repo("x")) == ("pull",)
    assert rules.allowed_actions(who("adm-root"), repo("x")) == ALL
    assert rules.allowed_actions(who("dev-1"), repo("x")) == ("pull", "push")
    assert rules.allowed_actions(who("alice"), repo("x")) == ()


def test_omitted_account_matches_anonymous_and_glob_star_does_too() -> None:
    assert acl(rule(["pull"])).allowed_actions(ANON, repo("x")) == ("pull",)
    assert acl(rule(["pull"], account="*")).allowed_actions(ANON, repo("x")) == ("pull",)
    signed_in = acl(rule(["pull"], account="/.+/"))
    assert signed_in.allowed_actions(ANON, repo("x")) == ()
    assert signed_in.allowed_actions(who(), repo("x")) == ("pull",)


def test_account_placeholder() -> None:
    rules = acl(rule(["*"], name="${account}/**"), rule(["pull"]))
    assert rules.allowed_actions(who("alice"), repo("alice/app")) == ALL
    assert rules.allowed_actions(who("alice"), repo("alice/a/b")) == ALL
    assert rules.allowed_actions(who("alice"), repo("bob/app")) == ("pull",)
    assert rules.allowed_actions(who("bob"), repo("bob/app")) == ALL
    # anonymous has no ${account}: the rule never matches
    assert rules.allowed_actions(ANON, repo("alice/app")) == ("pull",)
    assert rules.explain(ANON, repo("/app")) == 1


@pytest.mark.parametrize("account", ["a*", "a?", "a.*", "a**", "(a|b)", "a[bc]", "a\\", "a+"])
def test_account_placeholder_is_inserted_literally(account: str) -> None:
    glob = acl(rule(["push"], name="${account}/*"))
    regex = acl(rule(["push"], name="/${account}-x/"))
    assert glob.allowed_actions(who(account), repo(f"{account}/app", ("push",))) == ("push",)
    assert regex.allowed_actions(who(account), repo(f"{account}-x", ("push",))) == ("push",)
    for other in ["abc/app", "ab/app", "a/app", "b/app", "aa/app", "a.b/app", "ac/app"]:
        assert glob.allowed_actions(who(account), repo(other, ("push",))) == ()
    for other in ["abc-x", "ab-x", "a-x", "b-x", "aaa-x", "ac-x", "a.b-x"]:
        assert regex.allowed_actions(who(account), repo(other, ("push",))) == ()


def test_label_placeholder_matches_any_value() -> None:
    rules = acl(rule(["pull", "push"], name="${labels:group}/*"))
    dev = who("alice", group=["web", "db*"])
    assert rules.allowed_actions(dev, repo("web/app")) == ("pull", "push")
    assert rules.allowed_actions(dev, repo("db*/app")) == ("pull", "push")
    assert rules.allowed_actions(dev, repo("dbx/app")) == ()
    assert rules.allowed_actions(who("alice"), repo("web/app")) == ()
    assert rules.allowed_actions(who("alice", group=[]), repo("web/app")) == ()


def test_several_placeholders_try_every_combination() -> None:
    rules = acl(rule(["pull"], name="${labels:org}/${account}-${labels:env}"))
    p = who("al", org=["o1", "o2"], env=["dev", "prod"])
    assert rules.allowed_actions(p, repo("o2/al-prod", ("pull",))) == ("pull",)
    assert rules.allowed_actions(p, repo("o1/al-dev", ("pull",))) == ("pull",)
    assert rules.allowed_actions(p, repo("o3/al-dev", ("pull",))) == ()


def test_label_match() -> None:
    rules = acl(
        rule(["*"], labels={"role": "admin"}),
        rule(["pull"], labels={"team": "/(web|api)/", "role": "dev*"}),
        rule(["pull"], labels={"team": "${account}"}),
    )
    assert rules.allowed_actions(who(role=["user", "admin"]), repo("x")) == ALL
    assert rules.allowed_actions(who(role=["developer"], team=["api"]), repo("x")) == ("pull",)
    assert rules.allowed_actions(who(role=["developer"], team=["ops"]), repo("x")) == ()
    assert rules.allowed_actions(who(role=["developer"]), repo("x")) == ()
    assert rules.allowed_actions(who("ops", team=["ops"]), repo("x")) == ("pull",)
    assert rules.allowed_actions(who("ops", team=["o*"]), repo("x")) == ()
    assert rules.allowed_actions(ANON, repo("x")) == ()


@pytest.mark.parametrize(
    ("cidr", "ip", "matches"),
    [
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.1.2.3", False),
        ("10.0.0.0/8", "::ffff:10.1.2.3", True),
        ("10.0.0.0/8", "fd00::1", False),
        ("192.168.1.7/32", "192.168.1.7", True),
        ("192.168.1.7", "192.168.1.8", False),
        ("fd00::/8", "fd12::1", True),
        ("fd00::/8", "fe80::1", False),
        ("fd00::/8", "10.0.0.1", False),
        ("::1/128", "::1", True),
        ("10.0.0.0/8", None, False),
    ],
)
def test_ip_cidr(cidr: str, ip: str | None, matches: bool) -> None:
    rules = acl(rule(["pull"], ip=cidr))
    assert rules.allowed_actions(who(ip=ip), repo("x")) == (("pull",) if matches else ())


def test_every_given_field_must_match() -> None:
    rules = acl(
        rule(
            ["push"],
            account="ci",
            name="builds/*",
            type="repository",
            ip="10.0.0.0/8",
            labels={"kind": "robot"},
        )
    )
    good = who("ci", ip="10.0.0.1", kind=["robot"])
    assert rules.allowed_actions(good, repo("builds/x")) == ("push",)
    assert rules.allowed_actions(who("ci", ip="10.0.0.1"), repo("builds/x")) == ()
    assert rules.allowed_actions(who("ci", kind=["robot"]), repo("builds/x")) == ()
    assert rules.allowed_actions(who("cd", ip="10.0.0.1", kind=["robot"]), repo("builds/x")) == ()
    assert rules.allowed_actions(good, repo("other/x")) == ()
    assert rules.allowed_actions(good, Scope("registry", "builds/x", ("push",))) == ()


def test_grant_is_per_scope_and_in_order() -> None:
    rules = acl(
        rule(["*"], name="${account}/*"),
        rule(["pull"], name="library/*"),
        rule([], name="**"),
    )
    requested = [
        repo("library/ubuntu"),
        repo("alice/app", ("pull", "push")),
        parse_scope("registry:catalog:*"),
        repo("bob/app", ("pull",)),
    ]
    assert rules.grant(who("alice"), requested) == [
        repo("library/ubuntu", ("pull",)),
        repo("alice/app", ("pull", "push")),
        Scope("registry", "catalog", ()),
        repo("bob/app", ()),
    ]


def test_labels_given_as_lists_work_too() -> None:
    # settings hold labels as dict[str, list[str]]; matching only iterates
    p = Principal("alice", labels={"group": ["web"]})  # type: ignore[dict-item]
    assert acl(rule(["pull"], name="${labels:group}/*")).allowed_actions(p, repo("web/x")) == (
        "pull",
    )


def test_principal_anonymous() -> None:
    assert ANON.anonymous
    assert not who("x").anonymous


@pytest.mark.parametrize(
    ("match", "key"),
    [
        ({"name": "${acount}/*"}, "acl.0.match.name: unknown placeholder ${acount}"),
        ({"name": "${labels:}/*"}, "acl.0.match.name: unknown placeholder"),
        ({"labels": {"g": "${user}"}}, "acl.0.match.labels.g: unknown placeholder"),
        ({"name": "/(${account}/"}, "acl.0.match.name: invalid regular expression"),
    ],
)
def test_compile_errors_name_the_key(match: dict[str, object], key: str) -> None:
    # model_construct: what settings validation would refuse must still fail here, not later
    unchecked = AclRule(match=AclMatch.model_construct(**match), actions=["pull"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as caught:
        Acl.compile([unchecked])
    assert key in str(caught.value)


def test_compile_error_index_counts_from_zero_over_all_rules() -> None:
    with pytest.raises(ConfigError, match=r"acl\.1\.match\.name"):
        Acl.compile([rule(["pull"]), rule(["pull"], name="${nope}")])


def test_placeholders_are_literal_outside_name_and_labels() -> None:
    rules = acl(rule(["pull"], account="${account}"))
    assert rules.allowed_actions(who("${account}"), repo("x")) == ("pull",)
    assert rules.allowed_actions(who("alice"), repo("x")) == ()


def test_many_accounts_beyond_the_template_cache_stay_correct() -> None:
    rules = acl(rule(["push"], name="${account}/*"))
    for i in range(600):
        assert rules.allowed_actions(who(f"u{i}"), repo(f"u{i}/x", ("push",))) == ("push",)
        assert rules.allowed_actions(who(f"u{i}"), repo(f"u{i + 1}/x", ("push",))) == ()
