"""``keelhaul stack doctor``: read every tier's configuration, draw the topology, flag the
wrong shapes (each with a one-line fix).

::

    inputs.py     I/O: config files, the files they name, stack.json, live probes
    probes.py     I/O: realm reachability, Date headers (clock offsets)
    nginxconf.py  pure: nginx's config language: parse, pick a location, inherit values
    views.py      pure: configs -> one view per tier
    model.py      pure: the views, the snapshot, findings, the report
    trust.py      pure: issuer/service, keys against the bundle, the realm
    capacity.py   pure: workers against cores, credential cache, nginx's routes
    rules.py      pure: Redis, storage, clocks; every rule in order (RULES, check)
    topology.py   pure: who talks to whom, and what could not be checked
    report.py     pure: the report as text
"""

from __future__ import annotations

from datetime import datetime

from keelhaul.stack.doctor.inputs import DoctorRequest, collect, request_for_stack
from keelhaul.stack.doctor.model import Finding, Report, Snapshot
from keelhaul.stack.doctor.report import render_text
from keelhaul.stack.doctor.rules import check
from keelhaul.stack.doctor.topology import describe, notes

__all__ = [
    "DoctorRequest",
    "Finding",
    "Report",
    "Snapshot",
    "check_stack",
    "examine",
    "render_text",
    "request_for_stack",
]

_ORDER = {"error": 0, "warning": 1}


def examine(snapshot: Snapshot) -> Report:
    """Pure: the report on what is known."""
    findings = sorted(check(snapshot), key=lambda f: _ORDER[f.severity])
    return Report(
        findings=tuple(findings),
        topology=describe(snapshot),
        notes=tuple(notes(snapshot)),
        sources={
            "registry": [r.source for r in snapshot.registries],
            "auth": [a.source for a in snapshot.auths],
            "nginx": [n.source for n in snapshot.nginx],
        },
    )


def check_stack(request: DoctorRequest, *, now: datetime | None = None) -> Report:
    """Collect (files, live probes) and examine: what `keelhaul stack doctor` runs."""
    return examine(collect(request, now=now))
