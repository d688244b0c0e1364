"""make bench-diagnose: does the diagnosis distort what it measures?

The same ``keelhaul load`` run against the same local stack, with and without
``--diagnose`` (and with ``--profile``, for information). Each round runs every variant
back to back, in a rotating order, and the figure is the median over rounds of the
round's ratio (the load kit's own aggregated requests per second with ``--diagnose`` /
without): the host drifts between rounds (this one is shared), far less within one. The
target is >= 0.95. Beside it, the diagnosis' own CPU (its agent, and py-spy with
``--profile``) as a share of the host's CPUs: what it can take away at most.

A second, finer figure cancels the host's drift better: ONE long ``keelhaul load`` run,
during which ``keelhaul diagnose`` (the same collectors, in-process) runs in every other
10-second window (off, on, on, off, ...); the load kit's per-second throughput in the
"on" windows over the "off" ones.

Through Prometheus (issue #11, :func:`to_verdict_through_prometheus`): on a stack started
with ``--monitoring``, the seconds from the end of a ``keelhaul load --target <entry>
--diagnose --prometheus <url>`` run to its verdict (the run's last scrape must be stored
first: 1.5 scrape intervals), and the seconds ``keelhaul diagnose --prometheus --window``
takes over that same past window (queries and analysis only).

A third figure prices ``stack up --monitoring`` (Prometheus scraping every tier each
second, and the node, process, nginx and Redis exporters): ONE long ``keelhaul load`` run
against a monitored stack whose monitoring processes are frozen (SIGSTOP, by pid) in every
other 10-second window and running (SIGCONT) in the others; the throughput in the running
windows over the frozen ones (target >= 0.95), and the CPU-seconds per request of the
stack's tiers and of the monitoring, from /proc, per window kind. ``--only monitoring``
runs just this figure and keeps the others in the results file.

Compare ratios, not absolute figures, across runs.
Writes bench/results/diagnose.json (or ``--out``) with the host's load average at the start
and the end, and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "diagnose.json"
VARIANTS = {
    "plain": [],
    "diagnose": ["--diagnose"],
    "profile": ["--profile"],
}
TARGET = 0.95


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}


def keelhaul(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        capture_output=True, text=True, env=_env(), timeout=timeout, check=False,
    )  # fmt: skip


def one_run(
    stack: Path, work: Path, variant: str, args: argparse.Namespace, n: int
) -> dict[str, Any]:
    report = work / f"load-{variant}-{n}.json"
    out = work / f"diagnosis-{variant}-{n}"
    argv = [
        "load", "--stack-dir", str(stack), "--mix", args.mix, "--users", str(args.users),
        "--run-time", f"{args.seconds}s", "--images", "2", "--layer-size", args.layer_size,
        "--json", str(report), *VARIANTS[variant],
    ]  # fmt: skip
    if variant != "plain":
        argv += ["--diagnose-dir", str(out)]
    done = keelhaul(*argv)
    if done.returncode != 0:
        raise SystemExit(f"keelhaul load ({variant}) failed:\n{done.stderr[-2000:]}")
    doc = json.loads(report.read_text())
    row: dict[str, Any] = {
        "variant": variant,
        "round": n,
        "rps": doc["aggregated"]["rps"],
        "requests": doc["aggregated"]["count"],
        "failures": doc["aggregated"]["failures"],
        "p99_ms": doc["aggregated"]["p99_ms"],
    }
    if variant != "plain":
        diag = json.loads((out / "diagnosis.json").read_text())
        tiers = diag["signals"]["tiers"]
        row["verdict"] = diag["verdict"]["tier"]
        row["diagnosis_cpu"] = tiers.get("diagnosis", {}).get("cpu")
    return row


def per_second(doc: dict[str, Any]) -> dict[int, int]:
    """Requests per wall-clock second, every request stage (not the whole-image entries)."""
    skip = {*doc.get("composite_stages", []), "Aggregated"}
    out: dict[int, int] = {}
    for point in doc["timeline"]["points"]:
        if point["stage"] not in skip:
            out[point["t"]] = out.get(point["t"], 0) + point["count"]
    return out


def _start_load(
    stack: Path, report: Path, windows: int, args: argparse.Namespace
) -> subprocess.Popen[str]:
    """One ``keelhaul load`` long enough for ``windows`` windows; its stderr to follow."""
    run_time = windows * (args.window + 1) + 10
    argv = [
        sys.executable, "-m", "keelhaul", "load", "--stack-dir", str(stack), "--mix", args.mix,
        "--users", str(args.users), "--run-time", f"{run_time}s", "--images", "2",
        "--layer-size", args.layer_size, "--json", str(report),
    ]  # fmt: skip
    return subprocess.Popen(
        argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=_env()
    )


def windowed(stack: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One load run; the diagnosis on in every other window (off, on, on, off, ...)."""
    pattern = ([False, True, True, False] * (args.windows // 4 + 1))[: args.windows]
    report = work / "load-windowed.json"
    proc = _start_load(stack, report, len(pattern), args)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "running:" in line:
                break
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        time.sleep(3)  # the users' ramp
        windows: list[tuple[bool, float, float]] = []
        for on in pattern:
            start = time.time()
            if on:
                done = keelhaul(
                    "diagnose", "--dir", str(stack), "--duration", str(args.window),
                    "--load-pid", str(proc.pid),
                )  # fmt: skip
                if done.returncode != 0:
                    raise SystemExit(f"keelhaul diagnose failed:\n{done.stderr[-2000:]}")
            else:
                time.sleep(args.window)
            windows.append((on, start, time.time()))
        proc.wait(timeout=len(pattern) * (args.window + 1) + 130)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
    counts = per_second(json.loads(report.read_text()))
    rates: dict[bool, list[float]] = {True: [], False: []}
    for on, start, end in windows:
        inside = [counts.get(t, 0) for t in range(int(start) + 1, int(end) - 1)]
        if inside:
            rates[on].append(statistics.mean(inside))
    on_rps, off_rps = statistics.mean(rates[True]), statistics.mean(rates[False])
    return {
        "window_s": args.window,
        "windows": len(pattern),
        "on_rps": on_rps,
        "off_rps": off_rps,
        "ratio": on_rps / off_rps,
        "on_windows": rates[True],
        "off_windows": rates[False],
    }


# ------------------------------------------------------------------ --monitoring

MONITORS = ("node_exporter", "process_exporter", "nginx_exporter", "redis_exporter", "prometheus")
TICKS = os.sysconf("SC_CLK_TCK")


def _families(pids: dict[str, int]) -> dict[str, set[int]]:
    """Each component's leader and every process below it (nginx's, gunicorn's workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    families = {}
    for name, pid in pids.items():
        family = {pid}
        while more := {c for c, p in parents.items() if p in family} - family:
            family |= more
        families[name] = family
    return families


def _cpu_seconds(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def _freeze(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def monitoring_windowed(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One load run against a ``--monitoring`` stack; its monitoring frozen in every other
    window (on, off, off, on, ...). Throughput and CPU-seconds per request per window kind."""
    stack = work / "stack-monitored"
    up = keelhaul("stack", "up", "--dir", str(stack), "--monitoring")
    if up.returncode != 0:
        raise SystemExit(f"keelhaul stack up --monitoring failed:\n{up.stderr}")
    state = json.loads((stack / "stack.json").read_text())
    monitoring = {name: pid for name, pid in state["pids"].items() if name in MONITORS}
    monitors = list(monitoring.values())
    tiers = {name: pid for name, pid in state["pids"].items() if name not in MONITORS}
    pattern = ([True, False, False, True] * (args.windows // 4 + 1))[: args.windows]
    report = work / "load-monitoring.json"
    proc = _start_load(stack, report, len(pattern), args)
    assert proc.stderr is not None
    windows: list[dict[str, Any]] = []
    try:
        for line in proc.stderr:
            if "running:" in line:
                break
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        time.sleep(3)  # the users' ramp
        families = _families(tiers)
        watched = _families(monitoring)
        for on in pattern:
            _freeze(monitors, signal.SIGCONT if on else signal.SIGSTOP)
            tiers_cpu = _cpu_seconds(set().union(*families.values()))
            monitor_cpu = _cpu_seconds(set().union(*watched.values()))
            start = time.time()
            time.sleep(args.window)
            end = time.time()
            windows.append(
                {
                    "on": on,
                    "start": start,
                    "end": end,
                    "tiers_cpu_s": _cpu_seconds(set().union(*families.values())) - tiers_cpu,
                    "monitoring_cpu_s": _cpu_seconds(set().union(*watched.values())) - monitor_cpu,
                }
            )
        _freeze(monitors, signal.SIGCONT)
        proc.wait(timeout=len(pattern) * (args.window + 1) + 130)
    finally:
        _freeze(monitors, signal.SIGCONT)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
        keelhaul("stack", "down", "--dir", str(stack))
    return _monitoring_figures(windows, per_second(json.loads(report.read_text())), args)


def _monitoring_figures(
    windows: list[dict[str, Any]], counts: dict[int, int], args: argparse.Namespace
) -> dict[str, Any]:
    kinds: dict[bool, dict[str, list[float]]] = {
        on: {"rps": [], "tiers_cpu_per_req": [], "monitoring_cpu_per_req": []}
        for on in (True, False)
    }
    ordered: list[tuple[bool, float] | None] = []
    for w in windows:
        inside = [counts.get(t, 0) for t in range(int(w["start"]) + 1, int(w["end"]) - 1)]
        requests = sum(counts.get(t, 0) for t in range(int(w["start"]), int(w["end"]) + 1))
        if not inside or not requests:
            ordered.append(None)
            continue
        ordered.append((w["on"], statistics.mean(inside)))
        kind = kinds[w["on"]]
        kind["rps"].append(statistics.mean(inside))
        kind["tiers_cpu_per_req"].append(w["tiers_cpu_s"] / requests)
        kind["monitoring_cpu_per_req"].append(w["monitoring_cpu_s"] / requests)
    on_rps, off_rps = statistics.mean(kinds[True]["rps"]), statistics.mean(kinds[False]["rps"])
    mean = statistics.mean
    # neighbours (on, off, off, on, ...): each pair has one window of each kind, seconds
    # apart, so a drift of the host's load over the run cancels within the pair
    pairs = [
        (a[1] / b[1]) if a[0] else (b[1] / a[1])
        for a, b in zip(ordered[::2], ordered[1::2], strict=False)
        if a is not None and b is not None and a[0] != b[0]
    ]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "note": args.note,
        "load": {"mix": args.mix, "users": args.users, "layer_size": args.layer_size},
        "window_s": args.window,
        "windows": len(windows),
        "on_rps": on_rps,
        "off_rps": off_rps,
        "ratio": on_rps / off_rps,
        "pair_ratios": pairs,
        "median_pair_ratio": statistics.median(pairs) if pairs else None,
        "target": TARGET,
        "met": on_rps / off_rps >= TARGET,
        "cpu_s_per_request": {
            "tiers_on": mean(kinds[True]["tiers_cpu_per_req"]),
            "tiers_off": mean(kinds[False]["tiers_cpu_per_req"]),
            "monitoring_on": mean(kinds[True]["monitoring_cpu_per_req"]),
        },
        "monitoring_cpu_share": sum(w["monitoring_cpu_s"] for w in windows if w["on"])
        / sum(w["end"] - w["start"] for w in windows if w["on"])
        / (os.cpu_count() or 1),
        "on_windows": kinds[True]["rps"],
        "off_windows": kinds[False]["rps"],
    }


def show_monitoring(mon: dict[str, Any]) -> None:
    verdict = "met" if mon["met"] else "NOT met"
    cpu = mon["cpu_s_per_request"]
    print(
        f"\n--monitoring, one run, monitoring running / frozen: {mon['ratio']:.3f} "
        f"({mon['on_rps']:.1f} / {mon['off_rps']:.1f} req/s, {mon['windows']} windows of "
        f"{mon['window_s']} s; target >= {TARGET}: {verdict})"
    )
    if mon.get("median_pair_ratio") is not None:
        pairs = ", ".join(f"{r:.2f}" for r in mon["pair_ratios"])
        median = mon["median_pair_ratio"]
        print(f"neighbouring windows, running / frozen: median {median:.3f} ({pairs})")
    print(
        f"CPU ms per request: tiers {1000 * cpu['tiers_on']:.2f} (running) / "
        f"{1000 * cpu['tiers_off']:.2f} (frozen); the monitoring itself "
        f"{1000 * cpu['monitoring_on']:.2f}; its CPU: "
        f"{100 * mon['monitoring_cpu_share']:.1f}% of the host's CPUs"
    )


def paired(rows: list[dict[str, Any]], variant: str) -> list[float]:
    """Each round's throughput of ``variant`` over the same round's plain run."""
    base = {r["round"]: r["rps"] for r in rows if r["variant"] == "plain"}
    return [r["rps"] / base[r["round"]] for r in rows if r["variant"] == variant]


def cpu_share(rows: list[dict[str, Any]], variant: str) -> float:
    used = [r.get("diagnosis_cpu") or 0.0 for r in rows if r["variant"] == variant]
    return statistics.median(used) / (os.cpu_count() or 1) if used else 0.0


def summarize(
    rows: list[dict[str, Any]], variants: list[str], win: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    medians = {v: statistics.median(r["rps"] for r in rows if r["variant"] == v) for v in variants}
    ratio = statistics.median(paired(rows, "diagnose"))
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load": {"mix": args.mix, "users": args.users, "seconds": args.seconds,
                 "layer_size": args.layer_size},
        "rounds": args.rounds,
        "median_rps": medians,
        "round_ratios_diagnose": paired(rows, "diagnose"),
        "ratio_diagnose": ratio,
        "diagnosis_cpu_share": cpu_share(rows, "diagnose"),
        "windowed": win,
        "target": TARGET,
        "met": ratio >= TARGET,
        "note": args.note,
        "runs": rows,
    }  # fmt: skip
    if "profile" in variants:
        result["round_ratios_profile"] = paired(rows, "profile")
        result["ratio_profile"] = statistics.median(paired(rows, "profile"))
        result["profile_cpu_share"] = cpu_share(rows, "profile")
    return result


def show(result: dict[str, Any], variants: list[str]) -> None:
    rows, win, ratio = result["runs"], result["windowed"], result["ratio_diagnose"]
    print()
    print(f"{'variant':10} {'median req/s':>13} {'round ratios':>30} {'median':>7} {'own CPU':>8}")
    for v in variants:
        ratios = paired(rows, v)
        shown = " ".join(f"{x:.2f}" for x in ratios)
        own = "-" if v == "plain" else f"{100 * cpu_share(rows, v):.1f}%"
        median = statistics.median(ratios)
        print(f"{v:10} {result['median_rps'][v]:13.1f} {shown:>30} {median:7.3f} {own:>8}")
    verdict = "met" if result["met"] else "NOT met"
    print(f"\nthroughput with --diagnose / without: {ratio:.3f} (target >= {TARGET}: {verdict})")
    print(
        f"windowed, one run, diagnosis on / off: {win['ratio']:.3f} "
        f"({win['windows']} windows of {win['window_s']} s)"
    )
    print(f"the diagnosis' own CPU: {100 * result['diagnosis_cpu_share']:.1f}% of the host's CPUs")


def _load_report_end(path: Path) -> float:
    run = json.loads(path.read_text())["run"]
    return float(run["started_at_epoch"]) + float(run["duration_s"])


def to_verdict_through_prometheus(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """End of a load run → verdict, through the stack's own Prometheus (its own stack)."""
    stack = work / "stack-monitored"
    up = keelhaul("stack", "up", "--dir", str(stack), "--monitoring")
    if up.returncode != 0:
        return {"skipped": f"keelhaul stack up --monitoring failed: {up.stderr.strip()[-300:]}"}
    rows: list[dict[str, Any]] = []
    try:
        state = json.loads((stack / "stack.json").read_text())
        url, entry = state.get("prometheus"), state["entry"]
        if not url:
            return {"skipped": "stack.json records no prometheus"}
        time.sleep(5)  # a few scrapes before the first run
        for n in range(args.prometheus_rounds):
            report, out = work / f"load-prom-{n}.json", work / f"diagnosis-prom-{n}"
            done = subprocess.run(
                [sys.executable, "-m", "keelhaul", "load", "--target", entry, "-u", "admin",
                 "--password-stdin", "--mix", args.mix, "--users", str(args.users),
                 "--run-time", f"{args.seconds}s", "--images", "2",
                 "--layer-size", args.layer_size, "--json", str(report),
                 "--diagnose", "--prometheus", url, "--diagnose-dir", str(out)],
                input=state["users"]["admin"] + "\n", capture_output=True, text=True,
                env=_env(), timeout=600, check=False,
            )  # fmt: skip
            exited = time.time()
            if done.returncode != 0:
                raise SystemExit(f"keelhaul load --prometheus failed:\n{done.stderr[-2000:]}")
            end = _load_report_end(report)
            diag = json.loads((out / "diagnosis.json").read_text())
            began = time.monotonic()
            again = keelhaul(
                "diagnose", "--prometheus", url, "--window", f"{end - args.seconds}..{end}",
                "--json", str(work / f"window-{n}.json"),
            )  # fmt: skip
            window_s = time.monotonic() - began
            if again.returncode != 0:
                raise SystemExit(f"keelhaul diagnose --window failed:\n{again.stderr[-2000:]}")
            rows.append(
                {
                    "round": n,
                    "end_to_verdict_s": exited - end,
                    "window_query_s": window_s,
                    "resolution_s": diag["source"]["resolution_s"],
                    "verdict": diag["verdict"]["tier"],
                }
            )
            print(f"prometheus round {n + 1}: {exited - end:.1f} s to the verdict", flush=True)
    finally:
        keelhaul("stack", "down", "--dir", str(stack))
    return {
        "rounds": rows,
        "median_end_to_verdict_s": statistics.median(r["end_to_verdict_s"] for r in rows),
        "median_window_query_s": statistics.median(r["window_query_s"] for r in rows),
    }


def show_prometheus(prometheus: dict[str, Any]) -> dict[str, Any]:
    if prometheus.get("rounds"):
        print(
            "through Prometheus: end of run → verdict "
            f"{prometheus['median_end_to_verdict_s']:.1f} s (median), a past window "
            f"{prometheus['median_window_query_s']:.1f} s"
        )
    return prometheus


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--mix", default="pull=1")
    p.add_argument("--layer-size", default="256k")
    p.add_argument("--no-profile", action="store_true", help="skip the --profile variant")
    p.add_argument("--windows", type=int, default=12, help="windows of the windowed figure")
    p.add_argument("--window", type=int, default=10, help="seconds per window")
    p.add_argument("--prometheus-rounds", type=int, default=3,
                   help="runs timed from their end to the verdict via Prometheus")  # fmt: skip
    p.add_argument("--note", default="", help="conditions, recorded with the figure")
    p.add_argument("--out", type=Path, default=RESULTS, help="results file [default: %(default)s]")
    p.add_argument(
        "--only",
        choices=["monitoring"],
        help="run only this figure; the others stay as the results file has them",
    )
    return p


def main() -> None:
    args = _parser().parse_args()
    loadavg_start = os.getloadavg()
    if args.only == "monitoring":
        with tempfile.TemporaryDirectory(prefix="keelhaul-bench-monitoring-") as tmp:
            mon = monitoring_windowed(Path(tmp), args)
        show_monitoring(mon)
        previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
        args.out.write_text(json.dumps({**previous, "monitoring": mon}, indent=2) + "\n")
        print(f"wrote {args.out}")
        return
    variants = ["plain", "diagnose"] + ([] if args.no_profile else ["profile"])
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="keelhaul-bench-diagnose-") as tmp:
        work = Path(tmp)
        stack = work / "stack"
        up = keelhaul("stack", "up", "--dir", str(stack))
        if up.returncode != 0:
            raise SystemExit(f"keelhaul stack up failed:\n{up.stderr}")
        try:
            print("windowed: one load run, the diagnosis on in every other window", flush=True)
            win = windowed(stack, work, args)
            print(f"windowed  on {win['on_rps']:.1f} / off {win['off_rps']:.1f} req/s", flush=True)
            for n in range(args.rounds):
                order = variants[n % len(variants) :] + variants[: n % len(variants)]
                for variant in order:
                    row = one_run(stack, work, variant, args, n)
                    rows.append(row)
                    print(f"round {n + 1} {variant:9} {row['rps']:8.1f} req/s", flush=True)
        finally:
            keelhaul("stack", "down", "--dir", str(stack))
        print("--monitoring: one load run, the monitoring frozen in every other window")
        mon = monitoring_windowed(work, args)
        prometheus = to_verdict_through_prometheus(work, args) if args.prometheus_rounds else {}
    result = {**summarize(rows, variants, win, args), "monitoring": mon}
    result["through_prometheus"] = show_prometheus(prometheus)
    result["loadavg"] = {"start": loadavg_start, "end": os.getloadavg()}  # a shared host's noise
    show(result, variants)
    show_monitoring(mon)
    print(f"load average {loadavg_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
