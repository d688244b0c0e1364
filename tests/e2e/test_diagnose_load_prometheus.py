"""Issue #11: the acceptance's bottlenecks driven by the load kit, the stack treated as remote.

``test_diagnose_acceptance.py`` builds each bottleneck and drives it with ``hey``; here the
same stacks (``stack up --monitoring``, the same knobs or the same perturbation) are driven
by ``keelhaul load --target <entry> -u admin --password-stdin --diagnose --prometheus <url>``:
the run knows the entry URL, the credentials (on stdin) and the Prometheus, no stack
directory, no pid, no file of the stack. Beside each run the local source (``keelhaul
diagnose --dir``, the load process as the generator) watches LOCAL_S of the same seconds;
both must name the tier the local acceptance names for that bottleneck.

========================================  =====================================  =============
bottleneck (stack knobs / perturbation)   ``keelhaul load``                      tier
========================================  =====================================  =============
one sync worker (as in the acceptance)    ``--mix login=1 -u 32 --processes 2``  token workers
one sync worker, no cache, bcrypt cost 8  ``--mix login=1 -u 16``                token workers
one nginx worker, 16 connections          ``--mix login=1 -u 64``                proxy
Redis kept busy by a 40 ms Lua script     ``--mix pull-reuse=1 -u 16``           Redis
========================================  =====================================  =============

``pull-reuse`` keeps one client and its token across a user's iterations, so its requests
are what ``hey`` sends in the acceptance (manifest GETs with a bearer token) plus the small
blobs of the image the run seeds. Each run lasts RUN_S seconds after a few of start-up and
seeding; the perturbations start before the run (seeding goes through them too) and end
after it. Every process is stopped by pid.

Not here: the registry under a 0.05-CPU quota (``--mix pull-reuse=1 -u 16``). It passed
in 3 of 3 runs at 07:01-07:16 UTC (load average 2-4), then failed on the quiet machine at
07:30: the local source named the registry ("throttled in 100 % of CPU periods (limit 0.05
CPUs)", handlers 1,903 ms on average), Prometheus said "none" (registry demand 0.05 CPUs).
Through ``stack up --monitoring`` the registry's CPU comes from process-exporter, which has
no throttling counters, and the run-queue estimate is off for the multi-threaded registry
(see ``promseries``), so a quota on it is invisible unless its starved ``/metrics`` fails
to answer; cAdvisor's throttling series see it (``test_diagnose_prometheus_scenarios.py``,
with the stand-in). Until the Prometheus path has a signal for it, it is not asserted here.

Also not here, measured on 2026-12-07 07:01-07:09 UTC on this 2-core host while another full
test suite ran beside (load average 3.2-4.3; processes outside the stack 0.5-1.0 CPU):

* One sync worker driven by ONE load process (``--mix login=1 --users 16``, the
  acceptance's ``hey -c 16``): the load process became the limit first. Its users share one
  event loop; it wanted 0.87-0.89 CPU (ran 0.32-0.35, waited for a CPU the rest) for
  308-362 logins/s, and the worker's one slot was taken in only 56 % and 44 % of the
  samples (threshold 50 %). Through Prometheus the verdict was the load generator in both
  runs; the local source said the token service's workers once and the registry once (its
  362 pings/s made it want 1.97 CPUs). ``hey`` sends the same from a fraction of a CPU.
  With two load processes (``--processes 2 --users 32``), neither is pinned (busiest
  thread 0.20 CPU) and both sources name the workers (locally: slots full in 78 % of
  samples or more; through Prometheus: a token request waited 38-62 ms for a worker and
  took 0.4-0.6 ms in the app; 288-403 logins/s) in 3 of 3 runs: that is the case kept,
  beside a variant with hashing work (one sync worker, no cache, bcrypt 8).
* No credential cache and bcrypt cost 12 (``--mix login=1 --users 8``): the load kit
  drives it (the load process used 0.01-0.03 CPU) and the local source names the token
  service's CPU (4 workers wanting 4.0 CPUs, 1.0-1.5 of them run), but through Prometheus
  the verdict was "none" in 2 of 2 runs: with neighbours on 0.45-0.95 CPU the token service
  could use only 1.02-1.51 of the 2 CPUs (the rule wants 1.6), and its wait for a CPU was
  not estimated (``runq_seen`` false: the estimate needs process-exporter to count as many
  threads as processes for the tier). In the ``hey`` run of the acceptance at 07:10 UTC the
  estimate was made (the workers wanting 4.0 CPUs) and the verdict was token CPU. In a probe
  (``--users 8``, 8 s) the token service's 5 processes counted 6 threads in 5 of 16
  one-second samples mid-run; where the extra thread comes from is not yet known. Not
  measured on a quiet host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.diagnosis import (
    busy_redis,
    load_through_prometheus,
    stack_prometheus,
    verdict_text,
)
from support.stacks import StackInfo, running_stack

pytestmark = pytest.mark.e2e

RUN_S = 14
LOCAL_S = 10
"""The local source starts at the run's first progress line: its window ends inside the run."""
PERTURB_S = RUN_S + 30
"""A bound on a perturbation, which ends with its test anyway (start-up, seeding, the run)."""

Perturbation = Callable[[StackInfo], contextlib.AbstractContextManager[object]]


def nothing(info: StackInfo) -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext()


def redis_busy(info: StackInfo) -> contextlib.AbstractContextManager[object]:
    return busy_redis(info.raw["redis_url"], PERTURB_S)


@dataclass(frozen=True)
class Case:
    id: str
    tier: str
    """What the local acceptance names for this bottleneck."""
    load: tuple[str, ...]
    knobs: tuple[str, ...] = ()
    """``stack up`` options of a stack of its own; none: the shared healthy stack."""
    perturb: Perturbation = nothing


CASES = (
    Case(
        "one-sync-worker-2-processes",
        "token_workers",
        ("--mix", "login=1", "--users", "32", "--processes", "2"),
        knobs=("--auth-workers", "1", "--auth-worker-class", "sync"),
    ),
    Case(
        "one-sync-worker-bcrypt-8-without-cache",
        "token_workers",
        ("--mix", "login=1", "--users", "16"),
        knobs=(
            "--auth-workers",
            "1",
            "--auth-worker-class",
            "sync",
            "--no-credential-cache",
            "--bcrypt-cost",
            "8",
        ),
    ),
    Case(
        "one-nginx-worker-16-connections",
        "proxy",
        ("--mix", "login=1", "--users", "64"),
        knobs=("--proxy-workers", "1", "--proxy-connections", "16"),
    ),
    Case("redis-busy", "redis", ("--mix", "pull-reuse=1", "--users", "16"), perturb=redis_busy),
)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """One monitored stack for the perturbed cases (each leaves it as it found it)."""
    with running_stack(tmp_path_factory.mktemp("healthy") / "s", "--monitoring") as info:
        yield info


@pytest.fixture
def scenario_stack(
    case: Case, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[StackInfo]:
    if not case.knobs:
        yield request.getfixturevalue("healthy")
        return
    with running_stack(tmp_path / "s", *case.knobs, "--monitoring") as info:
        yield info


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_load_kit_through_prometheus_names_the_acceptance_bottleneck(
    case: Case, scenario_stack: StackInfo, tmp_path: Path
) -> None:
    stack = scenario_stack
    prometheus = stack_prometheus(stack)
    with case.perturb(stack):
        run = load_through_prometheus(
            stack, prometheus, tmp_path / "diagnosis", *case.load, run_s=RUN_S, local_s=LOCAL_S
        )
    assert run.local is not None
    tiers = (run.local["verdict"]["tier"], run.doc["verdict"]["tier"])
    assert tiers == (case.tier, case.tier), (
        f"local: {verdict_text(run.local)}\n--- through Prometheus: {verdict_text(run.doc)}"
    )
