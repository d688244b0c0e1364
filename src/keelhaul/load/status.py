"""What a running load test shows while it runs. Pure: a stats reading in, text out.

The leading process reads its :class:`~keelhaul.load.stats.RunStats` once a second
(:meth:`~keelhaul.load.stats.RunStats.live`, which copies no timeline) and turns it into a
:class:`Progress`; :func:`block_lines` is the status block drawn on a terminal,
:func:`plain_line` the one greppable line printed every ``--print-every`` seconds when
stderr is not a terminal. "Now" figures (requests/s, bytes/s, percentiles of the whole-flow
entries) cover the last :data:`WINDOW_S` complete seconds; counts and failures are so far.
A ``--worker`` shows its own share only, in one line: :class:`WorkerProgress`.
"""

from __future__ import annotations

from dataclasses import dataclass

from keelhaul.load.stats import LiveView, order_stages
from keelhaul.load.summary import format_bytes

__all__ = [
    "WINDOW_S",
    "EntryNow",
    "Progress",
    "RunShape",
    "WorkerProgress",
    "block_lines",
    "plain_line",
    "progress_of",
    "window",
]

WINDOW_S = 5
"""Seconds the "now" figures cover (k6 and Locust smooth over a few seconds too)."""
_CONTROL = {c: " " for c in range(32)} | {127: " "}


@dataclass(frozen=True, slots=True)
class RunShape:
    """What the run was asked to do, for "remaining" and "target" figures."""

    run_time_s: float | None
    iterations: int | None
    rate: float | None
    """Open model: iterations per second wanted; ``None``: closed model."""


@dataclass(frozen=True, slots=True)
class EntryNow:
    """One whole-flow entry (``image pull``...): so far, and its latency over the window."""

    name: str
    count: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class Progress:
    elapsed_s: float
    shape: RunShape
    users: int | None
    workers: tuple[int, int] | None
    """(reporting, expected) with ``--processes`` / ``--master``."""
    iterations: int
    """Flows ended so far."""
    requests: int
    failures: int
    rps: float
    flows_per_s: float
    bytes_per_s: float
    late: int
    dropped: int
    last_error: str | None
    entries: tuple[EntryNow, ...]
    diagnosis_s: float | None = None
    """Seconds the diagnosis (``--diagnose``) has watched."""
    diagnosis_top: tuple[str, float] | None = None
    """Its tier with the highest CPU demand so far: (name, CPUs)."""

    @property
    def fail_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def remaining_s(self) -> float | None:
        if self.shape.run_time_s is None:
            return None
        return max(0.0, self.shape.run_time_s - self.elapsed_s)

    def block(self) -> list[str]:
        return block_lines(self)

    def line(self) -> str:
        return plain_line(self)

    def stopped_line(self) -> str:
        """Said when a test started from the web UI stops: what it did, what comes next."""
        return (
            f"test stopped after {duration(self.elapsed_s)}: {self.iterations} iterations, "
            f"{self.requests} requests, {self.failures} failures "
            f"({100 * self.fail_ratio:.2f}%); start another from the web UI, or Ctrl-C "
            "to write the reports"
        )


@dataclass(frozen=True, slots=True)
class WorkerProgress:
    """A ``--worker``'s own share of the run: whom it works for, and what it sent. The
    merged view (flows, percentiles, the time left) is the master's to show."""

    master: str
    """``host:port`` of the master."""
    connected: bool
    state: str
    """Locust's worker state: ``running``, ``spawning``, ``stopped``..."""
    progress: Progress

    def block(self) -> list[str]:
        p = self.progress
        lines = [
            f"worker of {self.master} ({'connected' if self.connected else 'NOT connected'}): "
            f"{self.state}, users {p.users if p.users is not None else '-'}, "
            f"requests {p.requests} ({p.rps:.1f}/s now), "
            f"failures {p.failures} ({100 * p.fail_ratio:.2f}%)"
        ]
        if p.last_error:
            lines.append(f"last: {clean(p.last_error, 100)}")
        return lines

    def line(self) -> str:
        p = self.progress
        parts = [
            f"master={clean(self.master, 80)}",
            f"connected={'yes' if self.connected else 'no'}",
            f"state={_key(self.state)}",
            f"users={p.users if p.users is not None else '-'}",
            f"requests={p.requests}",
            f"rps={p.rps:.1f}",
            f"failures={p.failures}",
            f"fail={100 * p.fail_ratio:.2f}%",
        ]
        if p.last_error:
            parts.append(f"last_error={clean(p.last_error, 120)!r}")
        return "worker progress " + " ".join(parts)

    def stopped_line(self) -> str:
        p = self.progress
        return (
            f"worker: test stopped: {p.requests} requests sent, {p.failures} failures; "
            f"waiting for the master at {clean(self.master, 80)}"
        )


def window(now: float, started: float | None, lag_s: int = 0) -> tuple[int, int]:
    """The "now" window read at ``now``: the last :data:`WINDOW_S` complete seconds, ending
    ``lag_s`` further back (a master's workers report every few seconds), none before the
    test ``started``; ``(first, last)`` epoch seconds, inclusive (empty when last < first)."""
    last = int(now) - 1 - lag_s
    first = last - WINDOW_S + 1
    if started is not None:
        first = max(first, int(started))
    return first, last


def progress_of(
    view: LiveView,
    *,
    elapsed_s: float,
    seconds: int,
    shape: RunShape,
    users: int | None = None,
    workers: tuple[int, int] | None = None,
    diagnosis_s: float | None = None,
    diagnosis_top: tuple[str, float] | None = None,
) -> Progress:
    """``view`` read with a window of ``seconds`` seconds (fewer at the start of a run)."""
    per_s = 1.0 / max(1, seconds)
    requests = failures = flows = 0
    for name, (count, failed, _bytes) in view.stages.items():
        if name in view.composite:
            flows += count
        else:
            requests += count
            failures += failed
    recent = recent_flows = recent_bytes = 0
    for name, bucket in view.window.items():
        if name in view.composite:
            recent_flows += bucket.count
        else:
            recent += bucket.count
            recent_bytes += bucket.bytes
    entries = []
    for name in order_stages((n for n in view.stages if n in view.composite), view.composite):
        count, failed, _bytes = view.stages[name]
        recent_bucket = view.window.get(name)
        p50 = p95 = None
        if recent_bucket is not None and recent_bucket.count:
            p50_us, p95_us = recent_bucket.percentiles((50.0, 95.0))
            p50, p95 = p50_us / 1000, p95_us / 1000
        entries.append(EntryNow(name, count, failed, p50, p95))
    error = None
    if view.last_error is not None:
        stage, message = view.last_error
        error = f"{stage}: {message}"
    return Progress(
        elapsed_s=elapsed_s,
        shape=shape,
        users=users,
        workers=workers,
        iterations=flows,
        requests=requests,
        failures=failures,
        rps=recent * per_s,
        flows_per_s=recent_flows * per_s,
        bytes_per_s=recent_bytes * per_s,
        late=view.late,
        dropped=view.dropped,
        last_error=error,
        entries=tuple(entries),
        diagnosis_s=diagnosis_s,
        diagnosis_top=diagnosis_top,
    )


# --- formatting -----------------------------------------------------------------------------


def clean(text: str, limit: int = 160) -> str:
    """One line of printable text: control characters (an error from the network may hold
    any) become spaces, and long text is cut."""
    flat = text.translate(_CONTROL)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def millis(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _time_part(p: Progress) -> str:
    text = duration(p.elapsed_s)
    remaining = p.remaining_s
    if remaining is not None:
        text += f" of {duration(p.shape.run_time_s or 0)}, {duration(remaining)} left"
    return text


def _iterations_part(p: Progress) -> str:
    if p.shape.iterations is not None:
        return f"iterations {p.iterations}/{p.shape.iterations}"
    return f"iterations {p.iterations}"


def _model_part(p: Progress) -> str:
    if p.shape.rate is None:
        return f"users {p.users if p.users is not None else '-'}"
    return (
        f"rate {p.flows_per_s:.1f}/s of {p.shape.rate:g}/s, late {p.late}, dropped {p.dropped}"
        + (f", users {p.users}" if p.users is not None else "")
    )


def block_lines(p: Progress) -> list[str]:
    """The status block on a terminal, a few lines wide enough for 80 columns."""
    head = f"running {_time_part(p)}   {_model_part(p)}"
    if p.workers is not None:
        head += f"   workers {p.workers[0]}/{p.workers[1]}"
    lines = [
        head,
        f"{_iterations_part(p)}   requests {p.requests} ({p.rps:.1f}/s now)   "
        f"{format_bytes(p.bytes_per_s)}",
        f"failures {p.failures} ({100 * p.fail_ratio:.2f}%)"
        + (f"   last: {clean(p.last_error, 100)}" if p.last_error else ""),
    ]
    if p.entries:
        width = max(14, *(len(e.name) for e in p.entries))
        lines.append(
            f"{'flow':<{width}} {'count':>8} {'failed':>7} "
            f"{f'p50 {WINDOW_S}s':>10} {f'p95 {WINDOW_S}s':>10}"
        )
        for e in p.entries:
            lines.append(
                f"{clean(e.name, width):<{width}} {e.count:>8} {e.failures:>7} "
                f"{millis(e.p50_ms):>10} {millis(e.p95_ms):>10}"
            )
    if p.diagnosis_s is not None:
        line = f"diagnosis: watching the stack, {duration(p.diagnosis_s)}"
        if p.diagnosis_top is not None:
            name, cpus = p.diagnosis_top
            line += f"; highest CPU demand so far: {clean(name, 40)} ({cpus:.2f} CPUs)"
        lines.append(line)
    return lines


def _key(name: str) -> str:
    return clean(name).replace(" ", "_")


def plain_line(p: Progress) -> str:
    """One ``key=value`` line, no control characters: for CI logs and grep."""
    parts = [f"elapsed={duration(p.elapsed_s)}"]
    if p.remaining_s is not None:
        parts.append(f"left={duration(p.remaining_s)}")
    parts.append(
        f"iterations={p.iterations}"
        + (f"/{p.shape.iterations}" if p.shape.iterations is not None else "")
    )
    if p.shape.rate is not None:
        parts += [
            f"rate={p.flows_per_s:.1f}/{p.shape.rate:g}/s",
            f"late={p.late}",
            f"dropped={p.dropped}",
        ]
    if p.users is not None:
        parts.append(f"users={p.users}")
    if p.workers is not None:
        parts.append(f"workers={p.workers[0]}/{p.workers[1]}")
    parts += [
        f"requests={p.requests}",
        f"rps={p.rps:.1f}",
        f"failures={p.failures}",
        f"fail={100 * p.fail_ratio:.2f}%",
        f"bytes/s={format_bytes(p.bytes_per_s).replace(' ', '')}",
    ]
    for e in p.entries:
        key = _key(e.name)
        parts.append(f"{key}.p50={millis(e.p50_ms).replace(' ', '')}")
        parts.append(f"{key}.p95={millis(e.p95_ms).replace(' ', '')}")
    if p.diagnosis_s is not None:
        parts.append(f"diagnosis={duration(p.diagnosis_s)}")
    if p.diagnosis_top is not None:
        parts.append(f"diagnosis_top={_key(p.diagnosis_top[0])}:{p.diagnosis_top[1]:.2f}")
    if p.last_error:
        parts.append(f"last_error={clean(p.last_error, 120)!r}")
    return "progress " + " ".join(parts)
