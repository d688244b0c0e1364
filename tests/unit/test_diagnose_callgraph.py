"""Collapsed stacks → call graph → hottest path → DOT."""

from __future__ import annotations

import pytest

from keelhaul.diagnose.callgraph import (
    build,
    callee_of,
    parse_collapsed,
    parse_frame,
    render_dot,
    short_file,
    summary,
)

pytestmark = pytest.mark.unit

P = 'process 10:"python -m keelhaul auth serve";process 11:"python -m keelhaul auth serve"'
RAW = f"""\
{P};handle (/v/site-packages/gunicorn/ggevent.py:120);token (/w/src/keelhaul/auth/app.py:167);authenticate (/w/src/keelhaul/auth/authn/authenticator.py:87) 80
{P};handle (/v/site-packages/gunicorn/ggevent.py:120);token (/w/src/keelhaul/auth/app.py:167);sign (/w/src/keelhaul/auth/signing.py:50) 15
{P};handle (/v/site-packages/gunicorn/ggevent.py:120);write (/v/site-packages/gunicorn/util.py:348) 5
garbage line without count
"""  # noqa: E501

SOURCE = {
    (
        "/w/src/keelhaul/auth/authn/authenticator.py",
        87,
    ): "        if not bcrypt.checkpw(secret, user.password_hash):\n",
    ("/w/src/keelhaul/auth/signing.py", 50): "        return self._key.sign(data)\n",
}


def _source(file: str, line: int) -> str | None:
    return SOURCE.get((file, line))


def test_parse_frames() -> None:
    assert parse_frame("token (/w/app.py:167)") == ("token", "/w/app.py", 167)
    assert parse_frame("<module> (x.py)") == ("<module>", "x.py", None)
    assert parse_frame('process 10:"python"') is None
    assert parse_frame("thread (0x7f)") is None
    stacks = parse_collapsed(RAW)
    assert len(stacks) == 3
    assert stacks[0][1] == 80 and stacks[0][0][0][0] == "handle"


@pytest.mark.parametrize(
    ("line", "callee"),
    [
        ("if not bcrypt.checkpw(secret, user.password_hash):", "bcrypt.checkpw"),
        ("return json.dumps(doc, separators=(',', ':'))", "json.dumps"),
        ("x = 1", None),
        ("if (a and b):", None),
    ],
)
def test_callee_of(line: str, callee: str | None) -> None:
    assert callee_of(line) == callee


def test_short_file() -> None:
    assert short_file("/v/lib/python3.11/site-packages/flask/app.py") == "flask/app.py"
    assert short_file("/w/src/keelhaul/auth/app.py") == "keelhaul/auth/app.py"
    assert short_file("/a/b/c/d/e.py") == "c/d/e.py"


def test_graph_hottest_path_ends_in_the_native_call() -> None:
    g = build(parse_collapsed(RAW), _source)
    assert g.samples == 100
    labels = [g.label(k) for k in g.hottest]
    assert labels == ["handle", "token", "authenticate", "bcrypt.checkpw [native]"]
    hot = g.hotspot()
    assert hot is not None and g.label(hot.key) == "bcrypt.checkpw [native]" and hot.self == 80
    root = g.hottest[0]
    assert g.share(root) == 1.0
    doc = summary(g)
    assert doc["samples"] == 100
    assert doc["top_self"][0]["function"] == "bcrypt.checkpw [native]"  # type: ignore[index]


def test_recursion_counts_once_per_sample() -> None:
    g = build(parse_collapsed("a (x.py:1);b (x.py:2);a (x.py:1);b (x.py:2) 10\n"))
    assert g.nodes["a (x.py)"].total == 10
    assert g.samples == 10
    assert [g.label(k) for k in g.hottest] == ["a", "b"]


def test_dot_keeps_hot_nodes_and_escapes() -> None:
    raw = 'main (m.py:1);we"ird\\name (m.py:2) 99\nmain (m.py:1);cold (m.py:3) 1\n'
    g = build(parse_collapsed(raw))
    dot = render_dot(g, threshold=0.05, title='t "q"')
    assert "cold" not in dot  # 1% < 5%
    assert 'we\\"ird\\\\name' in dot
    assert 'label="t \\"q\\""' in dot
    assert 'color="#c00000"' in dot  # the hottest path
    assert dot.startswith("digraph callgraph {") and dot.rstrip().endswith("}")


def test_empty_profile() -> None:
    g = build([])
    assert g.samples == 0 and g.hottest == [] and g.hotspot() is None
