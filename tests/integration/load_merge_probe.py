"""A real distributed Locust run in one process: a master and two workers, each worker with
its own RunStats; prints what the master merged and what each worker recorded, as JSON.

Run as a subprocess by ``test_load_merge.py``: importing Locust monkey-patches the whole
process with gevent, which must not happen inside the pytest process.

Usage: ``python load_merge_probe.py http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import gevent
from locust import FastHttpUser, constant, task  # patches the process (before keelhaul's imports)
from locust.env import Environment
from locust.exception import StopUser

from keelhaul.load import histogram as hdr
from keelhaul.load.hooks import attach
from keelhaul.load.stats import AGGREGATED, RunStats

ITERATIONS = 400  # per user: bounds the request count; the run is stopped before the end
USERS = 4  # two per worker
RUN_SECONDS = 2.5  # under Locust's 3 s report interval: most samples travel at the stop
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


class Trivial(FastHttpUser):
    wait_time = constant(0.005)

    def on_start(self) -> None:
        self.done = 0

    @task
    def iteration(self) -> None:
        if self.done >= ITERATIONS:
            raise StopUser()
        self.done += 1
        self.client.get("/", name="ping")
        self.client.get("/", name="blob GET", context={"bytes": 1234})
        if self.done % 10 == 0:
            self.client.get("/missing", name="manifest GET")  # 404: a failure


def _rows(stats: RunStats, duration: float) -> dict[str, dict[str, Any]]:
    return {row.name: row.as_dict() for row in stats.summary(duration)}


def main(target: str) -> int:
    Trivial.host = target
    master_env = Environment(user_classes=[Trivial])
    master = master_env.create_master_runner("127.0.0.1", 0)
    master_stats = RunStats()
    attachment = attach(master_env, master_stats)

    workers: list[tuple[Any, RunStats, list[tuple[str, float]]]] = []
    for _ in range(2):
        env = Environment(user_classes=[Trivial])
        runner = env.create_worker_runner("127.0.0.1", master.server.port)
        stats = RunStats()
        attach(env, stats)
        samples: list[tuple[str, float]] = []

        def keep(name: str, response_time: float, _s: Any = samples, **_kw: Any) -> None:
            _s.append((name, response_time))

        env.events.request.add_listener(keep)
        workers.append((runner, stats, samples))

    deadline = time.monotonic() + 10
    while len(master.clients.ready) < 2 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    master.start(USERS, spawn_rate=100)
    gevent.sleep(RUN_SECONDS)
    running = sum(len(w[2]) for w in workers)
    master.stop()
    final = attachment.wait_for_final_reports(timeout=10)
    before_quit = _rows(master_stats, 3.0)
    master.quit()
    for runner, _, _ in workers:
        runner.quit()
    gevent.sleep(0.2)

    union: dict[str, list[float]] = {}
    for _, _, samples in workers:
        for name, ms in samples:
            union.setdefault(name, []).append(ms)
    union_percentiles: dict[str, list[int]] = {}
    for name, values in [*union.items(), (AGGREGATED, [v for vs in union.values() for v in vs])]:
        h = hdr.new_hdr()
        for v in values:
            h.record_value(hdr.clamp_us(v))
        exact_max = max(hdr.clamp_us(v) for v in values)
        union_percentiles[name] = [
            min(h.get_value_at_percentile(p), exact_max) for p in PERCENTILES
        ]

    combined = RunStats()  # the workers' final snapshots, merged once
    for _, stats, _ in workers:
        combined.merge(stats.snapshot())
    print(
        json.dumps(
            {
                "final_reports": final,
                "samples_at_stop": running,
                "master": _rows(master_stats, 3.0),
                "master_before_quit": before_quit,
                "timeline_equal": master_stats.timeline() == combined.timeline(),
                "timeline_points": len(master_stats.timeline()),
                "errors_equal": master_stats.errors() == combined.errors(),
                "errors": [[e.stage, e.message, e.count] for e in master_stats.errors()],
                "lost_deltas": master_stats.lost_deltas,
                "duplicate_deltas": master_stats.duplicate_deltas,
                "workers": [_rows(stats, 3.0) for _, stats, _ in workers],
                "samples": {name: len(values) for name, values in union.items()},
                "union_percentiles_us": union_percentiles,
                "locust_master_total": master_env.stats.total.num_requests,
                "locust_master_failures": master_env.stats.total.num_failures,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
