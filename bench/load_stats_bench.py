"""The cost of keelhaul's load statistics on the load generator's hot path.

  record        RunStats.record, per call: a realistic mix (9 stages, lognormal latencies,
                1 % failures with 5 messages), the clock advancing 1 s per 2 000 requests
  hdrh          hdrh's HdrHistogram.record_value alone, for reference (one histogram)
  take_delta    what a worker spends every 3 s at 2 000 req/s (6 000 samples), and the size
                of the message it sends
  merge         what the master spends per such delta
  summary       RunStats.summary and a 60-s timeline of a 120 000-request run

Writes bench/results/load_stats.json and prints a table. Single-threaded CPU time; run it
on an idle machine.
"""

from __future__ import annotations

import json
import platform
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from keelhaul.load import histogram as hdr
from keelhaul.load.stats import RunStats

RESULTS = Path(__file__).parent / "results" / "load_stats.json"
STAGES = ["token", "manifest HEAD", "manifest GET", "blob HEAD", "blob GET", "upload start",
          "upload PATCH", "upload PUT", "manifest PUT"]  # fmt: skip


def _samples(n: int, seed: int = 1) -> list[tuple[str, float, int, bool, str | None]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        failed = rnd.random() < 0.01
        error = f"HTTP {rnd.choice([500, 502, 503, 504, 429])}" if failed else None
        out.append((rnd.choice(STAGES), rnd.lognormvariate(2.5, 1.0), rnd.randint(0, 10**6),
                    failed, error))  # fmt: skip
    return out


def bench_record(n: int = 300_000, repeat: int = 5) -> float:
    samples = _samples(n)
    best = []
    for _ in range(repeat):
        clock = [1_700_000_000.0]
        stats = RunStats(clock=lambda c=clock: c[0])  # type: ignore[misc]
        record = stats.record
        started = time.perf_counter()
        for i, (name, ms, length, failed, error) in enumerate(samples):
            if i % 2000 == 0:
                clock[0] += 1.0
            record(name, ms, length, failed, None, error)
        best.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(best)


def bench_hdrh(n: int = 300_000) -> float:
    values = [hdr.clamp_us(s[1]) for s in _samples(n)]
    h = hdr.new_hdr()
    started = time.perf_counter()
    for v in values:
        h.record_value(v)
    return (time.perf_counter() - started) / n * 1e6


def bench_delta(rounds: int = 20) -> dict[str, float]:
    samples = _samples(6000 * rounds, seed=2)
    worker = RunStats(clock=lambda: 1_700_000_000.0)
    master = RunStats()
    take, merge, size = [], [], []
    for r in range(rounds):
        for i, (name, ms, length, failed, error) in enumerate(samples[r * 6000 : (r + 1) * 6000]):
            worker.record(name, ms, length, failed, 1_700_000_000 + r * 3 + i // 2000, error)
        t0 = time.perf_counter()
        delta = worker.take_delta()
        t1 = time.perf_counter()
        master.merge(delta, source="w")
        t2 = time.perf_counter()
        take.append((t1 - t0) * 1e3)
        merge.append((t2 - t1) * 1e3)
        size.append(len(json.dumps(delta)))
    return {
        "take_delta_ms": statistics.median(take),
        "merge_ms": statistics.median(merge),
        "delta_json_kib": statistics.median(size) / 1024,
    }


def bench_reads() -> dict[str, float]:
    stats = RunStats(clock=lambda: 1_700_000_000.0)
    tracemalloc.start()
    for i, (name, ms, length, failed, error) in enumerate(_samples(120_000, seed=3)):
        stats.record(name, ms, length, failed, 1_700_000_000 + i // 2000, error)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    t0 = time.perf_counter()
    stats.summary(60.0)
    t1 = time.perf_counter()
    stats.timeline()
    t2 = time.perf_counter()
    return {
        "summary_ms": (t1 - t0) * 1e3,
        "timeline_ms": (t2 - t1) * 1e3,
        "memory_per_stage_second_kib": memory / (60 * len(STAGES)) / 1024,
    }


def main() -> int:
    results: dict[str, object] = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "record_us": bench_record(),
        "hdrh_record_value_us": bench_hdrh(),
        **bench_delta(),
        **bench_reads(),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        shown = f"{value:10.3f}" if isinstance(value, float) else f"{value!s:>10}"
        print(f"{key:32} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
