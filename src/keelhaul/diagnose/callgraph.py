"""Pure: collapsed stacks (py-spy ``--format raw``) → a call graph → DOT text.

A node is a function (name and file; lines are merged), an edge a caller → callee pair, both
weighted by the samples they appear in (a recursive function counts once per sample). The
*hottest path* follows, from the roots down, the heaviest edge each time: where the workers'
CPU went, as pycallgraph drew it for the field report, but sampled from live workers.

py-spy sees Python frames only. When the leaf frame's source line calls something (say
``bcrypt.checkpw(...)``) and no Python frame is below it, the time was spent in that call,
native code: the graph shows it as a ``[native]`` node under the caller, so a hot path can
end in ``bcrypt.checkpw`` rather than in the line that called it.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePath

__all__ = [
    "CallGraph",
    "Node",
    "build",
    "callee_of",
    "parse_collapsed",
    "parse_frame",
    "render_dot",
    "short_file",
    "summary",
]

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_CALL = re.compile(r"([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)\s*\(")
_NOT_CALLS = frozenset(
    {"if", "elif", "while", "for", "return", "not", "and", "or", "in", "yield", "with", "assert"}
)

Stack = tuple[tuple[str, str, int | None], ...]
"""(function, file, line) from the outermost frame to the leaf."""


def parse_frame(text: str) -> tuple[str, str, int | None] | None:
    """``func (path/file.py:12)`` → (func, file, 12); process/thread markers → None."""
    text = text.strip()
    if not text or text.startswith(("process ", "thread (")):
        return None
    m = _FRAME.match(text)
    if m is None:
        return (text, "", None)
    line = int(m["line"]) if m["line"] else None
    return (m["func"], m["file"], line)


def parse_collapsed(text: str) -> list[tuple[Stack, int]]:
    """``a;b;c 12`` lines → (stack, samples). Lines that do not parse are skipped."""
    out: list[tuple[Stack, int]] = []
    for raw in text.splitlines():
        stack_text, _, count_text = raw.rstrip().rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        frames = tuple(f for part in stack_text.split(";") if (f := parse_frame(part)) is not None)
        if frames:
            out.append((frames, int(count_text)))
    return out


def callee_of(source_line: str) -> str | None:
    """The function a line of Python calls first.

    ``if not bcrypt.checkpw(a, b):`` → ``bcrypt.checkpw``.
    """
    for m in _CALL.finditer(source_line):
        name = m.group(1)
        if name not in _NOT_CALLS:
            return name
    return None


def short_file(path: str, keep: int = 3) -> str:
    """``/x/site-packages/flask/app.py`` → ``flask/app.py``; other paths: the last parts."""
    parts = PurePath(path).parts
    for anchor in ("site-packages", "dist-packages", "src"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) :])
    return "/".join(parts[-keep:])


@dataclass
class Node:
    key: str
    function: str
    file: str
    total: int = 0
    self: int = 0
    native: bool = False


@dataclass
class CallGraph:
    samples: int
    nodes: dict[str, Node]
    edges: Counter[tuple[str, str]]
    roots: Counter[str]
    hottest: list[str] = field(default_factory=list)

    def share(self, key: str) -> float:
        return self.nodes[key].total / self.samples if self.samples else 0.0

    def hotspot(self) -> Node | None:
        """The node with the most self samples (where the CPU actually was)."""
        return max(self.nodes.values(), key=lambda n: n.self, default=None)

    def top(self, n: int = 10) -> list[Node]:
        return sorted(self.nodes.values(), key=lambda x: -x.self)[:n]

    def label(self, key: str) -> str:
        node = self.nodes[key]
        return f"{node.function} [native]" if node.native else node.function


def _key(func: str, file: str) -> str:
    return f"{func} ({short_file(file)})" if file else func


def build(
    stacks: Iterable[tuple[Stack, int]],
    source_line: Callable[[str, int], str | None] = lambda _f, _l: None,
) -> CallGraph:
    """The graph of ``stacks``; ``source_line(file, line)`` reads a line of code (or None)."""
    nodes: dict[str, Node] = {}
    edges: Counter[tuple[str, str]] = Counter()
    roots: Counter[str] = Counter()
    total = 0
    callee_cache: dict[tuple[str, int], str | None] = {}
    for frames, count in stacks:
        total += count
        keys = []
        for func, file, _line in frames:
            key = _key(func, file)
            if key not in nodes:
                nodes[key] = Node(key, func, short_file(file) if file else "")
            keys.append(key)
        func, file, line = frames[-1]
        if file and line is not None:
            if (file, line) not in callee_cache:
                text = source_line(file, line)
                callee_cache[(file, line)] = callee_of(text) if text else None
            callee = callee_cache[(file, line)]
            if callee is not None:
                native = f"{callee} [native]"
                if native not in nodes:
                    nodes[native] = Node(native, callee, "", native=True)
                keys.append(native)
        for key in set(keys):
            nodes[key].total += count
        nodes[keys[-1]].self += count
        roots[keys[0]] += count
        for pair in {(a, b) for a, b in itertools.pairwise(keys) if a != b}:
            edges[pair] += count
    graph = CallGraph(total, nodes, edges, roots)
    graph.hottest = _hottest_path(graph)
    return graph


def _hottest_path(graph: CallGraph) -> list[str]:
    if not graph.roots:
        return []
    children: dict[str, list[tuple[int, str]]] = {}
    for (a, b), weight in graph.edges.items():
        children.setdefault(a, []).append((weight, b))
    current = max(graph.roots.items(), key=lambda kv: (kv[1], kv[0]))[0]
    path = [current]
    while True:
        options = [(w, b) for w, b in children.get(current, ()) if b not in path]
        if not options:
            return path
        current = max(options)[1]
        path.append(current)


def _heat(share: float) -> str:
    """Light yellow (cold) to red (hot)."""
    share = max(0.0, min(1.0, share))
    green = int(240 - 200 * share)
    blue = int(200 - 190 * share)
    return f"#ff{green:02x}{blue:02x}"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _q(*lines: str) -> str:
    """A quoted DOT string; several lines are joined with DOT's own line break."""
    return '"' + "\\n".join(_esc(line) for line in lines) + '"'


def render_dot(graph: CallGraph, *, threshold: float = 0.01, title: str = "") -> str:
    """DOT text: nodes above ``threshold`` of the samples; the hottest path in bold red."""
    keep = {
        k for k, n in graph.nodes.items() if graph.samples and n.total / graph.samples >= threshold
    }
    keep.update(graph.hottest)
    ids = {key: f"n{i}" for i, key in enumerate(sorted(keep))}
    hot_nodes = set(graph.hottest)
    hot_edges = set(zip(graph.hottest, graph.hottest[1:], strict=False))
    lines = [
        "digraph callgraph {",
        f"  graph [rankdir=TB, fontname=Helvetica, fontsize=12, label={_q(title)}, labelloc=t];",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=10];',
        '  edge [fontname=Helvetica, fontsize=9, color="#777777"];',
    ]
    for key in sorted(keep):
        node = graph.nodes[key]
        share = node.total / graph.samples if graph.samples else 0.0
        own = node.self / graph.samples if graph.samples else 0.0
        where = node.file or ("native code" if node.native else "")
        label = _q(graph.label(key), where, f"{100 * share:.1f}% ({100 * own:.1f}% self)")
        extra = ', color="#c00000", penwidth=3' if key in hot_nodes else ""
        lines.append(f'  {ids[key]} [label={label}, fillcolor="{_heat(share)}"{extra}];')
    for (a, b), weight in sorted(graph.edges.items()):
        if a not in keep or b not in keep:
            continue
        share = weight / graph.samples if graph.samples else 0.0
        width = 1 + 5 * share
        style = (
            f'color="#c00000", penwidth={max(width, 3):.1f}'
            if (a, b) in hot_edges
            else f"penwidth={width:.1f}"
        )
        lines.append(f'  {ids[a]} -> {ids[b]} [label="{100 * share:.1f}%", {style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def summary(graph: CallGraph, limit: int = 10) -> dict[str, object]:
    """The graph as JSON-ready data: hottest path, top functions by self samples."""
    return {
        "samples": graph.samples,
        "hottest_path": [
            {"function": graph.label(k), "file": graph.nodes[k].file, "share": graph.share(k)}
            for k in graph.hottest
        ],
        "top_self": [
            {
                "function": graph.label(n.key),
                "file": n.file,
                "self_share": n.self / graph.samples if graph.samples else 0.0,
                "total_share": n.total / graph.samples if graph.samples else 0.0,
            }
            for n in graph.top(limit)
        ],
    }
