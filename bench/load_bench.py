"""make bench-load: what one ``keelhaul load`` process sustains, against bare Locust.

One small image (manifest, config and one 4 KiB layer), on two targets:

  static     a registry of static files behind one nginx worker
             (``bench/static_registry.py``): it answers in microseconds, so the load
             generator is the bottleneck. This is the row the target is about.
  stack      a fresh reference stack (its nginx entry point, the registry, token auth):
             the realistic target, where the servers on the same 2 cores are the limit.

And two load generators:

  keelhaul   ``keelhaul load --mix pull-reuse``: ONE process, the full registry protocol
             (RegistryClient over LocustTransport: auth state, manifest digest check and
             parse, blobs streamed and counted to the last byte, our HdrHistogram
             statistics next to Locust's). ``pull-reuse`` keeps each user's client, so the
             token is reused across iterations (only the first iteration pings and logs
             in); the pull scenario proper logs in at every flow, which is the realistic
             load but not the generator's ceiling.
  bare       a bare Locust FastHttpUser (``bench/load_bare.py``), ONE process, the same GETs
             per iteration (manifest by tag, config blob, layer blob) with a fixed bearer
             token header.

And the live display's cost (issue #17), two ways, written to bench/results/load_display.json:

  A/B runs   on the static target, ``keelhaul load`` with its progress off
             (``--print-every 0``) against the same run with its stderr on a
             pseudo-terminal, where the live status block is redrawn every second (the
             costlier of the two displays); interleaved (the order flips each pair), median
             of ``--runs`` each. Reported: the generator's CPU-seconds per 1000 requests (its
             own process and any children, psutil) and its requests/s, each as a ratio of
             medians with the range of each side and of the per-pair ratios, and the load
             average around every run. Target: throughput ratio >= 0.98.
  draw cost  what one frame costs, timed directly (``LiveDisplay.frame``: the stats read,
             the block built, rich's redraw to a terminal; and the plain line) over
             ``--frames`` frames on a RunStats holding 60 s of pull-reuse traffic at
             ``--draw-rps`` (3000: the generator's ceiling on the quiet machine, where the
             A/B runs do not reach on a busy one). At one frame a second on a
             generator using one CPU, the throughput it can cost is that share of a CPU:
             an answer that does not hang on a noisy throughput ratio.

Same users, same duration, alternating, median of ``--runs``. Reported: requests/s of each,
the ratio (target >= 0.7 on the static target), and CPU-seconds per 1000 requests of each
load-generator process (psutil, user + system, from the moment its users start until its
summary is out). The machine's cores are shared with the servers, so only ratios measured
in one run mean anything. Writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from keelhaul import atomicfile
from keelhaul.client.httpx_transport import HttpxTransport
from keelhaul.client.images import BuiltImage
from keelhaul.client.registry import RegistryClient
from keelhaul.client.tokens import Credentials, repository_scope
from keelhaul.load.seed import build_seed_images, seed
from keelhaul.stack.stack import Stack
from static_registry import StaticRegistry

RESULTS = Path(__file__).parent / "results" / "load.json"
DISPLAY_RESULTS = Path(__file__).parent / "results" / "load_display.json"
DISPLAY_TARGET = 0.98
BARE = Path(__file__).with_name("load_bare.py")
REPO = "keelhaul/load"
IMAGE = ("--images", "1", "--layers", "1", "--layer-size", "4k")


def _cpu(pid: int) -> float:
    """CPU seconds of the process and its children (live ones, and those it has reaped)."""
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return float(total)


def _drain(fd: int, path: Path) -> None:
    """Copy what a pseudo-terminal shows into ``path`` until its other side closes."""
    with path.open("ab") as sink:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            sink.write(data)
            sink.flush()


def _measure(
    argv: list[str], marker: str, env: dict[str, str], workdir: Path, *, terminal: bool = False
) -> tuple[float, str]:
    """Run ``argv``; CPU seconds from ``marker`` on its stderr to its first stdout line.
    ``terminal``: its stderr is a pseudo-terminal (the live display draws there)."""
    err_path = workdir / "stderr.txt"
    err_path.write_text("")
    with contextlib.ExitStack() as cleanup:
        if terminal:
            master, slave = pty.openpty()
            cleanup.callback(os.close, master)
            err: Any = slave
        else:
            err = cleanup.enter_context(err_path.open("w"))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        if terminal:
            os.close(slave)
            threading.Thread(target=_drain, args=(master, err_path), daemon=True).start()
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while marker not in err_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[1:4]} failed:\n{err_path.read_text()[-2000:]}")
            time.sleep(0.005)
        cpu0 = _cpu(proc.pid)
        first = proc.stdout.readline()
        cpu1 = _cpu(proc.pid)
        rest = proc.stdout.read()
        if proc.wait(timeout=60) != 0:
            raise RuntimeError(f"{argv[1:4]} exited {proc.returncode}:\n{err_path.read_text()}")
    return cpu1 - cpu0, first + rest


def run_keelhaul(
    where: list[str],
    users: int,
    seconds: float,
    workdir: Path,
    env_extra: dict[str, str],
    *,
    display: str = "off",
) -> dict[str, Any]:
    """One run; ``display``: ``off`` (no progress) or ``terminal`` (the live block)."""
    out = workdir / "keelhaul.json"
    argv = [
        sys.executable, "-m", "keelhaul", "load", *where, *IMAGE,
        "--mix", "pull-reuse", "--users", str(users), "--run-time", f"{seconds}s",
        "--json", str(out),
    ]  # fmt: skip
    if display == "off":
        argv += ["--print-every", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    env.update(env_extra)
    if display == "terminal":
        env["TERM"] = "xterm"
    cpu, _ = _measure(argv, "keelhaul load: running:", env, workdir, terminal=display == "terminal")
    doc = json.loads(out.read_text())
    agg = doc["aggregated"]
    return {
        "requests": agg["count"],
        "failures": agg["failures"],
        "seconds": doc["run"]["duration_s"],
        "rps": agg["count"] / doc["run"]["duration_s"],
        "cpu_s": cpu,
        "cpu_s_per_1000": cpu / agg["count"] * 1000,
        "p50_ms": agg["p50_ms"],
        "p99_ms": agg["p99_ms"],
    }


def run_bare(
    base: str, token: str, blobs: list[str], tag: str, users: int, seconds: float, workdir: Path
) -> dict[str, Any]:
    argv = [
        sys.executable, str(BARE), base, REPO, tag, ",".join(blobs), str(users), str(seconds)
    ]  # fmt: skip
    env = {**os.environ, "BENCH_TOKEN": token}
    cpu, out = _measure(argv, "running", env, workdir)
    doc = json.loads(out.strip().splitlines()[-1])
    return {
        **doc,
        "rps": doc["requests"] / doc["seconds"],
        "cpu_s": cpu,
        "cpu_s_per_1000": cpu / doc["requests"] * 1000,
    }


def compare(
    name: str,
    where: list[str],
    env_extra: dict[str, str],
    base: str,
    token: str,
    image: BuiltImage,
    tag: str,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    blobs = [b.digest for b in image.images[0].blobs()]
    results: dict[str, list[dict[str, Any]]] = {"keelhaul": [], "bare": []}
    for run in range(args.runs):
        k = run_keelhaul(where, args.users, args.seconds, workdir, env_extra)
        b = run_bare(base, token, blobs, tag, args.users, args.seconds, workdir)
        results["keelhaul"].append(k)
        results["bare"].append(b)
        print(
            f"{name} run {run + 1}: keelhaul {k['rps']:.0f} req/s "
            f"({k['cpu_s_per_1000']:.3f} CPU-s/1000), bare {b['rps']:.0f} req/s "
            f"({b['cpu_s_per_1000']:.3f} CPU-s/1000)",
            flush=True,
        )

    def median(tool: str, key: str) -> float:
        return float(statistics.median(r[key] for r in results[tool]))

    return {
        "results": results,
        "median": {
            tool: {
                "rps": median(tool, "rps"),
                "cpu_s_per_1000": median(tool, "cpu_s_per_1000"),
                "failures": sum(r["failures"] for r in results[tool]),
            }
            for tool in results
        },
        "ratio": median("keelhaul", "rps") / median("bare", "rps"),
    }


def on_static(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    tag, image = build_seed_images(1, layers=1, layer_size=4096, seed=0)[0]
    registry = StaticRegistry(workdir / "static", REPO, tag, image)
    registry.start()
    try:
        where = ["--target", registry.url]
        env = {"KEELHAUL_REGISTRY_USERNAME": "bench", "KEELHAUL_REGISTRY_PASSWORD": "bench"}
        return compare("static", where, env, registry.url, "static-token", image, tag, args,
                       workdir)  # fmt: skip
    finally:
        registry.stop()


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": float(statistics.median(values)),
        "min": min(values),
        "max": max(values),
    }


def display_overhead(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """keelhaul load without progress and with the live block, interleaved A/B runs."""
    tag, image = build_seed_images(1, layers=1, layer_size=4096, seed=0)[0]
    registry = StaticRegistry(workdir / "static-display", REPO, tag, image)
    registry.start()
    results: dict[str, list[dict[str, Any]]] = {"off": [], "terminal": []}
    try:
        where = ["--target", registry.url]
        env = {"KEELHAUL_REGISTRY_USERNAME": "bench", "KEELHAUL_REGISTRY_PASSWORD": "bench"}
        for run in range(args.runs):
            order = ("off", "terminal") if run % 2 == 0 else ("terminal", "off")
            for display in order:
                load_before = os.getloadavg()[0]
                r = run_keelhaul(where, args.users, args.seconds, workdir, env, display=display)
                r["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                results[display].append(r)
            off, shown = results["off"][-1], results["terminal"][-1]
            print(
                f"display pair {run + 1} ({' then '.join(order)}): off {off['rps']:.0f} req/s "
                f"{off['cpu_s_per_1000']:.4f} CPU-s/1000, live block {shown['rps']:.0f} req/s "
                f"{shown['cpu_s_per_1000']:.4f} CPU-s/1000 (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    finally:
        registry.stop()

    def of(display: str, key: str) -> list[float]:
        return [float(r[key]) for r in results[display]]

    rps = {d: _spread(of(d, "rps")) for d in results}
    cpu = {d: _spread(of(d, "cpu_s_per_1000")) for d in results}
    pairs = list(zip(results["off"], results["terminal"], strict=True))
    ratio = rps["terminal"]["median"] / rps["off"]["median"]
    return {
        "results": results,
        "median_rps": {d: rps[d]["median"] for d in results},
        "rps": rps,
        "cpu_s_per_1000": cpu,
        "ratio": ratio,
        "ratio_pairs": _spread([t["rps"] / o["rps"] for o, t in pairs]),
        "cpu_ratio": cpu["terminal"]["median"] / cpu["off"]["median"],
        "cpu_ratio_pairs": _spread([t["cpu_s_per_1000"] / o["cpu_s_per_1000"] for o, t in pairs]),
        "target_ratio": DISPLAY_TARGET,
        "met": ratio >= DISPLAY_TARGET,
    }


def _pull_reuse_stats(rps: float, seconds: int, start: int) -> Any:
    """A RunStats as a pull-reuse run at ``rps`` leaves it after ``seconds``: three GETs and
    one whole-flow entry per iteration, latencies spread as on the static target."""
    import random

    from keelhaul.load.stats import RunStats

    clock = [float(start)]
    stats = RunStats(clock=lambda: clock[0])
    rng = random.Random(0)
    flows = max(1, int(rps / 3))
    for second in range(seconds):
        for i in range(flows):
            clock[0] = start + second + i / flows
            for name in ("manifest GET", "blob GET", "blob GET"):
                stats.record(name, rng.lognormvariate(1.0, 0.35), 4096, False)
            stats.record("image pull", rng.lognormvariate(2.1, 0.3), 8192, False)
    return stats


def draw_cost(rps: float, frames: int) -> dict[str, Any]:
    """CPU milliseconds per frame of the live display, terminal block and plain line."""
    from keelhaul.load.live import DisplaySpec, LiveDisplay
    from keelhaul.load.status import RunShape, progress_of, window

    seconds, start = 60, 1_700_000_000
    stats = _pull_reuse_stats(rps, seconds, start)
    now = start + seconds + 0.5

    def read() -> Any:
        first, last = window(now, start)
        return progress_of(
            stats.live(first, last), elapsed_s=now - start, seconds=last - first + 1,
            shape=RunShape(120.0, None, None), users=10,
        )  # fmt: skip

    out: dict[str, Any] = {"stats": f"{seconds} s of pull-reuse at {rps:.0f} req/s"}
    with open(os.devnull, "w", encoding="utf-8") as sink:
        for kind, every_s in (("terminal", 1.0), ("plain", 10.0)):
            spec = DisplaySpec(stream=sink, terminal=kind == "terminal", every_s=every_s)
            shown = LiveDisplay(spec, read, lambda line: print(line, file=sink))
            shown.start()  # its greenlet never runs: this loop does not yield to gevent
            for _ in range(frames):
                shown.frame()
            shown.stop()
            per_frame_ms = shown.draw_cpu_s / shown.frames * 1000
            out[kind] = {
                "frames": shown.frames,
                "every_s": every_s,
                "cpu_ms_per_frame": per_frame_ms,
                "cpu_share": per_frame_ms / 1000 / every_s,
            }
    return out


def on_stack(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    stack = Stack(workdir / "stack")
    try:
        state = stack.up()
        entry = state.entry or state.registry
        host = entry.split("://", 1)[1]
        admin = Credentials("admin", state.password("admin"), source="bench")
        reader = Credentials("reader", state.password("reader"), source="bench")
        built = build_seed_images(1, layers=1, layer_size=4096, seed=0)
        with RegistryClient(HttpxTransport(), host, credentials=admin, plain_http=True) as c:
            seeded = seed(c, REPO, built).images[0]
        with RegistryClient(HttpxTransport(), host, credentials=reader, plain_http=True) as c:
            token = c.get_token((repository_scope(REPO, "pull"),))
        assert token is not None
        where = ["--stack-dir", str(workdir / "stack")]
        return compare("stack", where, {}, entry, token, built[0][1], seeded.tag, args, workdir)
    finally:
        stack.down()


def _print_display(doc: dict[str, Any]) -> None:
    rps, cpu, cost = doc["rps"], doc["cpu_s_per_1000"], doc["draw_cost"]

    def side(spread: dict[str, float], fmt: str) -> str:
        return f"{spread['median']:{fmt}} ({spread['min']:{fmt}}-{spread['max']:{fmt}})"

    print(
        f"\nlive display, {doc['runs']} interleaved pairs of {doc['seconds']:g} s; load average "
        f"{doc['load_avg_at_start'][0]:.2f} at start, {doc['load_avg_at_end'][0]:.2f} at end"
    )
    print("| | progress off | live block | ratio of medians | per-pair ratios |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(
        f"| req/s | {side(rps['off'], '.0f')} | {side(rps['terminal'], '.0f')} | "
        f"{doc['ratio']:.3f} | {side(doc['ratio_pairs'], '.3f')} |"
    )
    print(
        f"| CPU-s / 1000 req | {side(cpu['off'], '.4f')} | {side(cpu['terminal'], '.4f')} | "
        f"{doc['cpu_ratio']:.3f} | {side(doc['cpu_ratio_pairs'], '.3f')} |"
    )
    for kind in ("terminal", "plain"):
        c = cost[kind]
        print(
            f"draw cost, {kind}: {c['cpu_ms_per_frame']:.2f} CPU-ms a frame, one every "
            f"{c['every_s']:g} s = {100 * c['cpu_share']:.3f} % of a CPU "
            f"({cost['stats']}, {c['frames']} frames)"
        )
    verdict = "met" if doc["met"] else "NOT met"
    print(
        f"throughput ratio {doc['ratio']:.3f} (target >= {DISPLAY_TARGET}: {verdict}); the "
        f"block's own draw cost bounds what it can take: "
        f"{100 * cost['terminal']['cpu_share']:.2f} % of one CPU; results: {DISPLAY_RESULTS}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--targets", default="static,stack", help="static, stack or both")
    parser.add_argument(
        "--parts", default="compare,display", help="compare (vs bare Locust), display or both"
    )
    parser.add_argument("--frames", type=int, default=300, help="draw cost: frames timed")
    parser.add_argument(
        "--draw-rps",
        type=float,
        default=3000.0,
        help="draw cost: the traffic in the RunStats drawn (default: the generator's "
        "ceiling on the quiet machine; more traffic, more histogram to read)",
    )
    parser.add_argument("--note", default="", help="recorded with the results (conditions)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="keelhaul-bench-load-"))
    parts = args.parts.split(",")
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if "display" in parts:
        load_at_start = os.getloadavg()
        shown = display_overhead(args, workdir)
        cost = draw_cost(args.draw_rps, args.frames)
        doc = {
            "benchmark": "load-display",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine,
            "note": args.note,
            "users": args.users,
            "seconds": args.seconds,
            "runs": args.runs,
            "target": "static",
            "load_avg_at_start": [round(x, 2) for x in load_at_start],
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
            **shown,
            "draw_cost": cost,
        }
        atomicfile.write_text(DISPLAY_RESULTS, json.dumps(doc, indent=2) + "\n")
        _print_display(doc)
    if "compare" not in parts:
        return 0
    targets: dict[str, Any] = {}
    for name in args.targets.split(","):
        targets[name] = (on_static if name == "static" else on_stack)(args, workdir)
    summary = {
        "benchmark": "load",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "users": args.users,
        "seconds": args.seconds,
        "runs": args.runs,
        "image": "1 image: manifest, config, one 4 KiB layer (3 GETs per pull)",
        "targets": targets,
        "target_ratio": 0.7,
        "met": targets.get("static", {}).get("ratio", 0.0) >= 0.7,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print()
    print(f"| target | load generator (1 process, {args.users} users) | req/s | CPU-s / 1000 req |")
    print("| --- | --- | ---: | ---: |")
    for name, result in targets.items():
        for tool, label in (("keelhaul", "keelhaul load --mix pull-reuse"),
                            ("bare", "bare FastHttpUser")):  # fmt: skip
            m = result["median"][tool]
            print(f"| {name} | {label} | {m['rps']:.0f} | {m['cpu_s_per_1000']:.3f} |")
    for name, result in targets.items():
        verdict = "met" if result["ratio"] >= 0.7 else "NOT met"
        print(f"{name}: keelhaul / bare = {result['ratio']:.2f} (target >= 0.7: {verdict})")
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
