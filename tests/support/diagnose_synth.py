"""Synthetic collections for the diagnosis' unit tests: a few seconds of a stack, per tier.

``Synth.second(...)`` adds one tick: counters are given as per-second increments and
accumulated here, histograms as lists of observations, gauges as they are. Each scenario
below is the shape a real run of that bottleneck produced on the 2-CPU test machine
(rounded), so the rules are tested against realistic numbers without starting anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from keelhaul.diagnose.model import Collection, HistBuilder, Reading, Tick

T0 = 1_800_000_000.0
BOUNDS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Synth:
    def __init__(self, cores: int = 2) -> None:
        self.cores = cores
        self.t = T0
        self.counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.hists: dict[str, dict[str, HistBuilder]] = defaultdict(dict)
        self.ticks: list[Tick] = []
        self.second()  # the baseline

    def second(
        self,
        *,
        add: Mapping[str, Mapping[str, float]] | None = None,
        gauges: Mapping[str, Mapping[str, float]] | None = None,
        observe: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
        notes: Mapping[str, Sequence[str]] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> Synth:
        for coll, values in (add or {}).items():
            for key, v in values.items():
                self.counters[coll][key] += v
        for coll, values in (observe or {}).items():
            for key, obs in values.items():
                h = self.hists[coll].setdefault(key, HistBuilder(BOUNDS))
                for v in obs:
                    h.observe(v)
        names = set(self.counters) | set(self.hists) | set(gauges or {}) | set(errors or {})
        names |= set(notes or {})
        names.add("procs")
        readings: dict[str, Reading] = {}
        for coll in names:
            if errors and coll in errors:
                readings[coll] = Reading(error=errors[coll])
                continue
            g = dict((gauges or {}).get(coll, {}))
            if coll == "procs":
                g.setdefault("host.cores", float(self.cores))
            readings[coll] = Reading(
                gauges=g,
                counters=dict(self.counters[coll]),
                hists={k: h.freeze() for k, h in self.hists[coll].items()},
                notes=tuple((notes or {}).get(coll, ())),
            )
        self.ticks.append(Tick(self.t, readings))
        self.t += 1.0
        return self

    def collection(self) -> Collection:
        return Collection(tuple(self.ticks), {"cores": self.cores, "stack_dir": "/synthetic"})


def cpu(
    tiers: Mapping[str, tuple[float, float]], host_busy: float, cores: int = 2
) -> dict[str, float]:
    """procs increments for one second: tier -> (cpu, runq) cores, plus the host's."""
    out: dict[str, float] = {"host.busy": host_busy, "host.total": float(cores)}
    for tier, (used, waited) in tiers.items():
        out[f"cpu.{tier}"] = used
        out[f"runq.{tier}"] = waited
    return out


def procs_gauges(
    counts: Mapping[str, float], busiest: Mapping[str, float] | None = None
) -> dict[str, float]:
    out = {f"procs.{t}": n for t, n in counts.items()}
    out.update({f"busiest.{t}": b for t, b in (busiest or {}).items()})
    return out


STACK_PROCS = {"nginx": 3, "auth": 5, "registry": 1, "redis": 1, "generator": 1, "diagnosis": 1}


def token_second(
    s: Synth,
    *,
    rps: int,
    app: float,
    upstream: float,
    authn: float,
    cache: str,
    inflight: float,
    capacity: float,
    workers: float,
    queue: float,
    tiers: Mapping[str, tuple[float, float]],
    host: float,
    procs: Mapping[str, float] = STACK_PROCS,
    nginx_extra: Mapping[str, float] | None = None,
    stub: Mapping[str, float] | None = None,
    listen_nginx: float = 0.0,
    notes: Mapping[str, Sequence[str]] | None = None,
    log_counts: Mapping[str, float] | None = None,
    busiest: Mapping[str, float] | None = None,
    throttle: Mapping[str, tuple[float, float]] | None = None,
    cpu_limit: Mapping[str, float] | None = None,
) -> None:
    """One second of token traffic through the proxy; ``throttle``: tier -> (CFS periods,
    throttled periods) this second, ``cpu_limit``: tier -> its quota in CPUs."""
    n = float(rps)
    throttled: dict[str, float] = {}
    for tier, (periods, hit) in (throttle or {}).items():
        throttled[f"periods.{tier}"], throttled[f"throttled_periods.{tier}"] = periods, hit
    s.second(
        add={
            "procs": {**cpu(tiers, host, s.cores), **throttled},
            "nginx_log": {
                "n.token": n,
                "up.token": n,
                "rt.token": n * upstream,
                "uc.token": 0.0,
                "uh.token": n * upstream,
                "ur.token": n * upstream,
                **(nginx_extra or {}),
            },
            "auth": {"requests": n, "requests.issued": n, f"cache.{cache}": n},
            "stub_status": dict(stub or {}),
            "logs": dict(log_counts or {}),
            "redis": {"busy_usec": 200.0, "commands": 10.0},
        },
        gauges={
            "procs": {
                **procs_gauges(procs, busiest),
                **{f"cpu_limit.{t}": c for t, c in (cpu_limit or {}).items()},
            },
            "auth": {"inflight": inflight, "capacity": capacity, "workers": workers},
            "listen": {"queue.auth": queue, "queue.nginx": listen_nginx},
            "stub_status": {"active": 10.0},
            "redis": {"ping_ms": 0.3, "clients": 5.0, "blocked": 0.0},
        },
        observe={
            "auth": {
                "request": [app] * rps,
                "stage.parse": [0.00005] * rps,
                "stage.authn": [authn] * rps,
                f"stage.authn.{cache}": [authn] * rps,
                "stage.authz": [0.00003] * rps,
                "stage.sign": [0.0001] * rps,
            },
            "nginx_log": {"rt.token": [upstream] * rps, "uh.token": [upstream] * rps},
        },
        notes=notes,
    )


def registry_second(
    s: Synth,
    *,
    rps: int,
    upstream: float,
    handler: float,
    storage: float,
    inflight: float,
    tiers: Mapping[str, tuple[float, float]],
    host: float,
    redis_busy_usec: float = 1000.0,
    redis_ping_ms: float = 0.3,
    top_command: tuple[str, float] = ("hmget", 2.7),
    throttle: tuple[float, float] | None = None,
    cpu_limit: float | None = None,
    busiest: Mapping[str, float] | None = None,
) -> None:
    """One second of manifest GETs through the proxy (token fetched beforehand)."""
    n = float(rps)
    name, usec_per_call = top_command
    procs = cpu(tiers, host, s.cores)
    if throttle is not None:
        procs["periods.registry"], procs["throttled_periods.registry"] = throttle
    g = procs_gauges(STACK_PROCS, busiest)
    if cpu_limit is not None:
        g["cpu_limit.registry"] = cpu_limit
    s.second(
        add={
            "procs": procs,
            "nginx_log": {
                "n.manifest GET": n,
                "up.manifest GET": n,
                "rt.manifest GET": n * upstream,
                "uc.manifest GET": 0.0,
                "uh.manifest GET": n * upstream,
                "ur.manifest GET": n * upstream,
            },
            "registry": {"requests": n},
            "redis": {
                "busy_usec": redis_busy_usec,
                "commands": n * 2,
                f"cmd.{name}.usec": redis_busy_usec,
                f"cmd.{name}.calls": redis_busy_usec / usec_per_call,
            },
            "auth": {},
        },
        gauges={
            "procs": g,
            "registry": {"inflight": inflight},
            "listen": {"queue.auth": 0.0, "queue.nginx": 0.0},
            "redis": {"ping_ms": redis_ping_ms, "clients": 5.0, "blocked": 0.0},
            "auth": {"inflight": 0.0, "capacity": 4000.0, "workers": 4.0},
        },
        observe={
            "registry": {"req.manifest GET": [handler] * rps, "storage": [storage] * rps},
            "nginx_log": {"rt.manifest GET": [upstream] * rps},
        },
    )
