"""The diagnosis (issue #6): which tier limits the stack's throughput, and the evidence.

Importing this package imports only its pure core (no socket, no psutil, no HTTP client):
the collectors and the processes that run them are in :mod:`.session` (and :mod:`.agent`),
imported by the commands that sample a live stack.

=====================  ========================================================================
module                 holds
=====================  ========================================================================
``model``              ticks, readings, cumulative histograms, the collection (+ JSON)
``targets``, ``watch`` what to watch in a stack (from ``stack.json``), its collectors
``collectors/``        one per tier: processes, accept queues, nginx, registry, token service,
                       Redis, the tiers' logs
``sampler``            one reading per collector per wall-clock second
``series``,            pure: rates and windows; the signals of each tier
``signals*``
``rules``, ``verdict`` pure: one rule per tier; the verdict, its evidence, what to try next
``waterfall``          pure: where the mean request's time went, per stage
``callgraph``,         collapsed stacks → call graph → hottest path → DOT; py-spy + dot
``profile``
``analysis``           pure: collection (+ the client's numbers, + a profile) → report
``report_*``,          the ``keelhaul.diagnose/v1`` JSON, the self-contained HTML, the terminal
``summary``
``session``, ``agent`` run it: in-process for a duration, or an agent beside a load
``loadhook``           ``keelhaul load --diagnose`` / ``--profile``
=====================  ========================================================================
"""

from __future__ import annotations

from keelhaul.diagnose.analysis import Profile, Report, analyse
from keelhaul.diagnose.loadreport import ClientRun, client_from_report
from keelhaul.diagnose.model import Collection, Hist, Reading, Tick
from keelhaul.diagnose.signals import Signals, derive
from keelhaul.diagnose.verdict import Finding, HotSpot, Verdict, decide
from keelhaul.diagnose.waterfall import Waterfall, waterfalls

__all__ = [
    "ClientRun",
    "Collection",
    "Finding",
    "Hist",
    "HotSpot",
    "Profile",
    "Reading",
    "Report",
    "Signals",
    "Tick",
    "Verdict",
    "Waterfall",
    "analyse",
    "client_from_report",
    "decide",
    "derive",
    "waterfalls",
]
