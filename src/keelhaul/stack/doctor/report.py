"""The doctor's report as text for people (``--json`` prints ``Report.as_dict()``). Pure."""

from __future__ import annotations

from typing import Any

from keelhaul.stack.doctor.model import Report

__all__ = ["render_text"]


def _edge(edge: dict[str, Any]) -> str:
    via = f" {edge['route']}" if edge.get("route") else ""
    extra = []
    if "db" in edge:
        extra.append(f"db {edge['db']}")
    if edge.get("tls"):
        extra.append("tls")
    if "keepalive" in edge:
        extra.append("keep-alive" if edge["keepalive"] else "no keep-alive")
    tail = f"  ({', '.join(extra)})" if extra else ""
    return f"{edge['from']:>8} ->{via:<16} {edge['to']:<9} {edge['address']}{tail}"


def _topology_lines(topo: dict[str, Any]) -> list[str]:
    lines = ["topology"]
    lines += [f"  {_edge(e)}" for e in topo["edges"]]
    for r in topo["registry"]:
        storage = r["storage"]
        lines.append(f"  registry   {r['source']}")
        lines.append(f"             listen {r['listen']}, storage {storage['driver']} "
                     f"{storage['where']}, redis {r['redis'] or '(none)'}")  # fmt: skip
        lines.append(f"             token: realm {r['realm']}, service {r['service']!r}, "
                     f"issuer {r['issuer']!r}")  # fmt: skip
        bundle = ", ".join(f"{c['subject']} ({c['days_left']} d)" for c in r["bundle"])
        lines.append(f"             bundle {r['rootcertbundle']}: {bundle or '(not read)'}")
    for a in topo["auth"]:
        lines.append(f"  auth       {a['source']}")
        lines.append(f"             listen {a['listen']}, redis {a['redis'] or '(none)'}, "
                     f"credential cache {'on' if a['credential_cache'] else 'OFF'}")  # fmt: skip
        lines.append(f"             token: service {a['service']!r}, issuer {a['issuer']!r}")
        lines.append(f"             gunicorn {a['workers']} x {a['worker_class']}, "
                     f"trusted proxies {a['trusted_proxies']}")  # fmt: skip
    for key in topo["keys"]:
        if "problem" in key:
            lines.append(f"  key        {key['role']} {key['cert']}: {key['problem']}")
            continue
        trusted = ", ".join(
            "not read" if v is None else ("NOT TRUSTED" if v is False else "trusted")
            for v in key["trusted_by"].values()
        )
        lines.append(f"  key        {key['role']} {key['subject']}, {key['days_left']} days "
                     f"left; registry bundle: {trusted or '-'}")  # fmt: skip
    for n in topo["nginx"]:
        lines.append(f"  nginx      {n['source']}: worker_processes {n['worker_processes']}, "
                     f"worker_connections {n['worker_connections']}")  # fmt: skip
        for route in n["routes"]:
            if route["kind"] == "token":
                continue
            lines.append(
                f"             {route['kind']:<8} location {route['location']}: request "
                f"buffering {route['proxy_request_buffering']}, buffering "
                f"{route['proxy_buffering']}, client_max_body_size "
                f"{route['client_max_body_size']}"
            )
    cpus = topo["cpus"]
    lines.append(f"  cpus       {cpus['count'] if cpus['count'] else '?'} ({cpus['source']})")
    for clock in topo["clocks"]:
        offset = "?" if clock["offset_s"] is None else f"{clock['offset_s']:+.1f} s"
        lines.append(f"  clock      {clock['tier']:<9} {offset} against this host")
    return lines


def render_text(report: Report) -> str:
    lines = _topology_lines(report.topology)
    lines.append("")
    if report.findings:
        lines.append(f"findings ({len(report.findings)})")
        for f in report.findings:
            lines.append(f"  {f.severity.upper():<7} {f.id}: {f.message}")
            lines.append(f"          fix: {f.fix}")
    else:
        lines.append("findings: none")
    if report.notes:
        lines.append("")
        lines.append("not checked")
        lines += [f"  - {note}" for note in report.notes]
    return "\n".join(lines)
