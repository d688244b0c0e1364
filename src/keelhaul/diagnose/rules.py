"""Pure: one rule per tier, each turning the signals into a :class:`Finding` (or None).

Thresholds are relative wherever the host allows: CPU as a share of the CPUs a tier can
use, queues as the share of samples in which they were non-empty. The table of rules and
scores is in :mod:`keelhaul.diagnose.verdict`.
"""

from __future__ import annotations

from dataclasses import replace

from keelhaul.diagnose.findings import LABELS, Finding, HotSpot
from keelhaul.diagnose.findings import pct as _pct
from keelhaul.diagnose.quota import quota_finding, throttled
from keelhaul.diagnose.signals import Signals, TierCpu

__all__ = [
    "CPU_BOUND",
    "LABELS",
    "Finding",
    "HotSpot",
    "generator_rule",
    "proxy_rule",
    "redis_rule",
    "registry_rules",
    "token_rules",
]

SATURATED = 0.5
"""A finding at or above this score names a saturated tier."""
STRONG = 0.8
"""At or above: two or more signals agree (strong findings win over moderate ones)."""
CPU_BOUND = 0.8
"""CPU demand (used + waiting for a CPU) at this share of the CPUs a tier can use."""
QUEUE_SHARE = 0.5
"""An accept queue non-empty in this share of the samples is a queue, not a blip."""
SLOTS_SHARE = 0.5
"""Every token-service slot taken in this share of the samples."""
WORKER_BUSY = 0.85
"""nginx: CPU demand per worker process (nginx workers are single-threaded)."""
PROXY_SHARE = 0.5
"""nginx's own time (request - upstream response) as a share of the request time."""
REDIS_BUSY = 0.5
"""Share of each second Redis' one thread spent executing commands (commandstats)."""
REDIS_PING_MS = 10.0
"""Median PING round trip; loopback Redis answers in well under a millisecond."""
STORAGE_SHARE = 0.5
"""Storage-driver time as a share of the registry handlers' time."""
STARVED = 0.6
"""Share of a CPU-bound tier's demand spent waiting: starved by others, not busy itself."""
SAMPLED = 0.55
"""A tier's score when only the sampled run-queue floor puts it over a CPU threshold: above
SATURATED, so it is named when nothing else is, below a finding measured directly."""
SILENT_SHARE = 0.5
"""Share of the samples in which a tier's metrics endpoint did not answer: stopped, not late."""
REGISTRY_SLOW_S = 0.05
"""Registry handlers' mean; metadata requests on loopback take a few milliseconds."""
GENERATOR_THREAD = 0.85
"""A load-generator thread using this much of a CPU is pinned (Locust is single-threaded)."""
WORKER_WAIT_S = 0.010
"""A token request waiting this long (and longer than the app takes) queued for a worker."""
OTHER_CORES = 0.5
"""CPUs used by processes outside the stack that are worth a caveat."""


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def sampled_only(t: TierCpu, threshold: float) -> bool:
    """True when the tier is over ``threshold`` CPUs only through the run-queue floor sampled
    at each scrape (process-exporter, threaded processes): a sample at the scrape's instant
    that can coincide with the tier answering Prometheus itself (a registry using 0.04 CPU
    read as 0.5), so weaker evidence than CPU used or a measured wait."""
    return t.runq_floor and t.cpu < threshold <= t.demand


def _cpu_score(t: TierCpu, threshold: float, score: float) -> float:
    """A CPU-demand finding's score: SAMPLED when only the sampled floor crosses ``threshold``."""
    return min(score, SAMPLED) if sampled_only(t, threshold) else score


def _cpu_text(name: str, t: TierCpu, cores: int) -> str:
    if not t.runq_seen:
        limit = f", limit {t.cpu_limit:.2f}" if t.cpu_limit is not None else ""
        return f"{name} used {t.cpu:.2f} CPUs on a host of {cores}{limit} (run-queue wait not seen)"
    if t.runq_floor:
        return (
            f"{name} wanted ~{t.demand:.2f} CPUs (ran {t.cpu:.2f}, waited ~{t.runq:.2f} for a "
            f"CPU, from the threads found runnable at each scrape) on a host of {cores}"
        )
    return (
        f"{name} wanted {t.demand:.2f} CPUs (ran {t.cpu:.2f}, waited {t.runq:.2f} for a CPU) "
        f"on a host of {cores}"
    )


def proxy_rule(s: Signals) -> Finding | None:
    p = s.proxy
    if p is None:
        return None
    score, ev = 0.0, []
    if p.conn_exhausted > 0:
        score = 1.0
        ev.append(f"nginx logged 'worker_connections are not enough' {p.conn_exhausted:.0f} times")
    if p.dropped > 0:
        score = 1.0
        ev.append(
            f"nginx dropped {p.dropped:.0f} accepted connections (stub_status accepts - handled)"
        )
    if p.queue_share is not None and p.queue_share >= QUEUE_SHARE:
        score = max(score, 0.8)
        ev.append(
            f"connections waited in nginx's accept queue in {_pct(p.queue_share)} of samples "
            f"(mean {p.queue_mean or 0:.0f})"
        )
    t = s.tier("nginx")
    workers = max(p.workers or 1.0, 1.0)
    if t is not None and t.demand / workers >= WORKER_BUSY:
        score = max(score, 0.7)
        ev.append(_cpu_text(f"nginx's {workers:.0f} worker(s)", t, s.cores))
    main = p.stages[0] if p.stages else None
    if (
        main is not None
        and main.request_mean
        and main.overhead_mean is not None
        and main.request_mean >= 0.005
        and main.overhead_mean / main.request_mean >= PROXY_SHARE
    ):
        score = max(score, 0.6)
        ev.append(
            f"{main.name}: nginx's own time is {_ms(main.overhead_mean)} of "
            f"{_ms(main.request_mean)} per request"
        )
    if p.status_error_share and p.status_error_share >= 0.2 and score > 0:
        ev.append(f"nginx's status page did not answer in {_pct(p.status_error_share)} of samples")
    if score == 0:
        return None
    return Finding(
        "proxy",
        score,
        "nginx cannot take more connections" if score >= 1 else "nginx is saturated",
        tuple(ev),
        (
            "raise worker_connections (every proxied request holds two) and keep "
            "worker_processes at auto (one per CPU)",
            "raise the open-files limit with them (worker_rlimit_nofile, ulimit -n)",
        ),
    )


def _hot_stage(s: Signals) -> str | None:
    a = s.auth
    if a is None or not a.stages or not a.app_mean:
        return None
    stage, seconds = max(a.stages.items(), key=lambda kv: kv[1])
    share = seconds / a.app_mean
    text = (
        f"the {stage} stage takes {_pct(min(share, 1.0))} of the app's time "
        f"({_ms(seconds)} per request)"
    )
    if stage == "authn" and a.authn_cache:
        caches = ", ".join(
            f"{k} {v[0]:.0f}" for k, v in sorted(a.authn_cache.items(), key=lambda kv: -kv[1][0])
        )
        text += f"; credential cache: {caches}"
    return text


def _hashing(s: Signals) -> bool:
    """The app's time goes to authn, and authn mostly ran bcrypt (cache miss or off)."""
    a = s.auth
    if a is None or not a.stages or max(a.stages, key=a.stages.__getitem__) != "authn":
        return False
    if not a.authn_cache:
        return False
    top = max(a.authn_cache.items(), key=lambda kv: kv[1][0])[0]
    return top in ("miss", "off")


def token_rules(s: Signals, hot: HotSpot | None) -> Finding | None:
    a, t = s.auth, s.tier("auth")
    if a is None or t is None:
        return None
    workers = a.workers or max(t.procs - 1, 1.0)
    usable = min(workers, float(s.cores))
    cpu_bound = t.demand >= CPU_BOUND * usable
    if a.rps <= 0 and not cpu_bound:  # idle; or so busy that it answered no scrape
        return None
    slots = (a.slots_full_share or 0.0) >= SLOTS_SHARE
    queued = (a.queue_share or 0.0) >= QUEUE_SHARE
    ev: list[str] = []
    if slots:
        ev.append(
            f"every worker slot was taken in {_pct(a.slots_full_share or 0)} of samples "
            f"({workers:.0f} worker(s), capacity {a.capacity or 0:.0f})"
        )
    if queued:
        ev.append(
            f"connections waited in the token service's accept queue in "
            f"{_pct(a.queue_share or 0)} of samples (mean {a.queue_mean or 0:.0f})"
        )
    # a tier starved of CPU by others makes its requests wait too: not a worker shortage;
    # and a saturated generator's own delays are in its timings: they say nothing of a queue
    client_skewed = a.wait_observer == "client" and generator_rule(s) is not None
    waiting = (
        not client_skewed
        and a.wait_mean is not None
        and a.app_mean is not None
        and a.wait_mean >= max(a.app_mean, WORKER_WAIT_S)
        and (cpu_bound or t.waiting_share < STARVED)
    )
    if waiting:
        ev.append(
            f"a token request waited {_ms(a.wait_mean)} for a worker, "
            f"then took {_ms(a.app_mean)} in the app ({a.wait_basis})"
        )
    queued = queued or waiting
    scraped = s.source.kind == "prometheus"
    if scraped and a.scrape_error_share and a.scrape_error_share >= QUEUE_SHARE:
        ev.append(
            f"it left {_pct(a.scrape_error_share)} of Prometheus' scrapes of its /metrics "
            "unanswered: no worker was free to answer"
        )
    cpu_ev = _cpu_text(f"the token service's {workers:.0f} worker(s)", t, s.cores)
    if a.worker_timeouts:
        ev.append(f"gunicorn logged WORKER TIMEOUT {a.worker_timeouts:.0f} times")
    if (slots or (queued and cpu_bound)) and workers < s.cores:
        return Finding(
            "token_workers",
            0.9 if slots and queued else 0.7,
            f"all {workers:.0f} token-service worker(s) busy; requests queue for a free one",
            (*ev[:2], cpu_ev, *ev[2:]),
            (
                "run more workers (keelhaul auth serve --workers; default 2 x CPU)",
                "use the gevent worker class, so one worker serves many requests that wait",
            ),
        )
    if cpu_bound:
        detail = [cpu_ev]
        title = "the token service's workers are CPU-bound"
        if hot is not None:
            detail.append(
                f"call graph: {_pct(hot.share)} of the workers' CPU samples in {hot.function}"
                + (f" (via {' → '.join(hot.path[-3:])})" if hot.path else "")
            )
            title = f"the token service's workers are CPU-bound in {hot.function}"
        stage = _hot_stage(s)
        if stage:
            detail.append(stage)
        steps = ["profile it (keelhaul profile) and make the hot function cheaper"]
        if (hot is not None and "bcrypt" in hot.function) or _hashing(s):
            steps = [
                "keep the credential cache on: a verified password is then checked once per TTL",
                "add CPUs or replicas: password hashing is CPU by design (never weaken the hash)",
            ]
        score = 0.9 if queued or slots else _cpu_score(t, CPU_BOUND * usable, 0.8)
        return Finding("token_cpu", score, title, (*detail, *ev), tuple(steps))
    if slots or queued:
        return Finding(
            "token_workers",
            0.6,
            "token-service workers are all busy while the CPU is not: they wait on something",
            (*ev, cpu_ev),
            (
                "run more workers, or the gevent worker class",
                "check what the workers wait for (Redis, the user store)",
            ),
        )
    return None


def redis_rule(s: Signals) -> Finding | None:
    r = s.redis
    uses = (s.registry is not None and s.registry.rps > 0) or (
        s.auth is not None and s.auth.rps > 0
    )
    if r is None or not uses:
        return None
    score, ev = 0.0, []
    if r.busy_share is not None and r.busy_share >= REDIS_BUSY:
        score = min(1.0, 0.5 + r.busy_share / 2)
        text = f"Redis was busy executing commands {_pct(min(r.busy_share, 1.0))} of the time"
        if r.top_commands:
            name, busy, usec, rate = r.top_commands[0]
            text += (
                f"; {name.upper()} took {usec / 1000:.1f} ms per call "
                f"({rate:.0f}/s, {_pct(busy)} of it)"
            )
        ev.append(text)
    if r.ping_p50_ms is not None and r.ping_p50_ms >= REDIS_PING_MS:
        score = max(score, 0.7)
        ev.append(f"a PING waited {r.ping_p50_ms:.1f} ms (median; max {r.ping_max_ms or 0:.0f} ms)")
    if score == 0:
        return None
    if r.slowlog:
        ev.append(f"{r.slowlog:.0f} new slow-log entries")
    if s.registry is not None and s.registry.inflight_mean:
        ev.append(f"the registry held {s.registry.inflight_mean:.0f} requests in flight on average")
    return Finding(
        "redis",
        score,
        "Redis answers slowly: every request that touches it waits",
        tuple(ev),
        (
            "find the slow command (SLOWLOG GET) and keep O(N) commands and long scripts off "
            "the instance the registry and the token service use",
            "give the registry's blob-descriptor cache and the credential cache "
            "their own instances",
        ),
    )


def _silent_registry(s: Signals, t: TierCpu) -> list[Finding]:
    """Traffic, and the registry's own metrics counting no request: a registry too starved
    to answer its metrics endpoint in time (a Prometheus scrape of it times out; the local
    collector's read does too). Named when its quota throttled it or it wanted more CPU
    than the host has (when the quota is seen, :func:`quota_finding` names the cause and
    takes this evidence), or when its endpoint failed in SILENT_SHARE of the samples: a
    source that cannot see throttling (process-exporter) still sees a registry that stopped
    answering while it used little CPU."""
    if not s.active:
        return []
    unread = s.errors.get("registry", 0)
    share = unread / s.steps if s.steps else 0.0
    busy = throttled(t) or t.demand >= CPU_BOUND * s.cores
    if not busy and share < SILENT_SHARE:
        return []
    ev = [_cpu_text("the registry", t, s.cores), "its own metrics counted no request"]
    if unread:
        ev.append(f"its metrics endpoint did not answer in {unread} of {s.steps} samples")
    if busy:
        return [
            Finding(
                "registry",
                0.7 if throttled(t) else _cpu_score(t, CPU_BOUND * s.cores, 0.7),
                "the registry is starved of CPU: too busy even to answer its metrics",
                tuple(ev),
                ("give the registry more CPUs or replicas", "move other work off its host"),
            )
        ]
    return [
        Finding(
            "registry",
            0.6,
            "the registry stopped answering, even its metrics, without being busy: "
            "it is held back or paused",
            tuple(ev),
            (
                "look for a CPU limit that throttles it (its cgroup's cpu.stat "
                "nr_throttled; cAdvisor's container_cpu_cfs_throttled_periods_total), "
                "a stopped process or long pauses",
                "read its log for errors and timeouts",
            ),
        )
    ]


def registry_rules(s: Signals) -> list[Finding]:
    r, t = s.registry, s.tier("registry")
    if t is None:
        return []
    if r is None or r.rps <= 0:
        return _silent_registry(s, t)
    out: list[Finding] = []
    ev: list[str] = []
    if r.handler_mean is not None:
        ev.append(
            f"registry handlers took {_ms(r.handler_mean)} on average "
            f"({r.inflight_mean or 0:.0f} in flight)"
        )
    if r.scrape_error_share and r.scrape_error_share >= 0.2:
        share = _pct(r.scrape_error_share)
        ev.append(
            f"Prometheus' scrapes of its metrics failed in {share} of samples"
            if s.source.kind == "prometheus"
            else f"its debug endpoint did not answer within 0.5 s in {share} of samples"
        )
    cpu = _cpu_text("the registry", t, s.cores)
    if throttled(t):  # the quota limits it (quota_finding takes this as its evidence)
        if ev:
            out.append(Finding("registry", 0.5, "the registry is held back", tuple(ev)))
    elif t.demand >= CPU_BOUND * s.cores:
        starved = t.waiting_share >= STARVED
        out.append(
            Finding(
                "registry",
                _cpu_score(t, CPU_BOUND * s.cores, 0.8),
                "the registry is starved of CPU" if starved else "the registry is CPU-bound",
                (cpu, *ev),
                ("give the registry more CPUs or replicas", "move other work off its host")
                if starved
                else ("add registry replicas or CPUs",),
            )
        )
    elif r.handler_mean is not None and r.handler_mean >= REGISTRY_SLOW_S:
        if generator_rule(s) is not None:
            # blobs stream unbuffered through nginx: a client too busy to read holds the
            # registry's handlers open, so their time alone does not name the registry
            out.append(
                Finding(
                    "registry",
                    0.4,
                    "the registry's handlers were slow while the load generator was saturated",
                    (*ev, cpu, "a client that reads slowly keeps a streamed answer's handler open"),
                    ("make the load generator keep up first, then look again",),
                )
            )
        else:
            out.append(
                Finding(
                    "registry",
                    0.6,
                    "the registry answers slowly without being busy: it waits or pauses",
                    (*ev, cpu),
                    (
                        "find what it waits on: storage latency, its Redis, pauses (garbage "
                        "collection, a stopped or CPU-limited process)",
                        "read its log for errors and timeouts",
                    ),
                )
            )
    if (
        r.storage_per_request is not None
        and r.handler_mean
        and r.handler_mean >= 0.02
        and r.storage_per_request / r.handler_mean >= STORAGE_SHARE
        and not throttled(t)
    ):
        actions = sorted(r.storage_actions.items(), key=lambda kv: -(kv[1][0] * (kv[1][1] or 0)))
        top = ", ".join(f"{a} {_ms(m)}" for a, (_, m) in actions[:2])
        out.append(
            Finding(
                "storage",
                0.8,
                "the registry waits on its storage driver",
                (
                    f"storage took {_ms(r.storage_per_request)} of the "
                    f"{_ms(r.handler_mean)} a request spends in the registry ({top})",
                    *ev,
                ),
                (
                    "check the storage backend's latency and throughput",
                    "enable the registry's redis blob-descriptor cache",
                ),
            )
        )
    return out


def generator_rule(s: Signals) -> Finding | None:
    g = s.tier("generator")
    if g is None or g.procs <= 0:
        return None
    ev = []
    if g.busiest is not None and g.busiest >= GENERATOR_THREAD:
        ev.append(f"the busiest load-generator thread used {g.busiest:.2f} of a CPU (it is pinned)")
    if g.demand >= CPU_BOUND * s.cores:
        ev.append(_cpu_text("the load generator", g, s.cores))
    elif g.runq_seen and g.procs >= 1 and g.demand / g.procs >= GENERATOR_THREAD:
        # one event loop per process: wanting a whole CPU each is pinned, even when
        # neighbours leave it less (its busiest thread then uses less than a CPU)
        ev.append(_cpu_text(f"the load generator's {g.procs:.0f} process(es)", g, s.cores))
    quota = quota_finding(s, "generator")
    if quota is not None:
        return replace(quota, evidence=(*quota.evidence, *ev))
    if not ev:
        return None
    return Finding(
        "load_generator",
        0.9,
        "the load generator is saturated: it cannot offer more load",
        tuple(ev),
        (
            "run more load-generator processes (keelhaul load --processes N)",
            "or generate the load from another machine",
        ),
    )
