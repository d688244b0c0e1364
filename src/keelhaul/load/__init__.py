"""The load kit (``keelhaul load``): Locust users for registry flows, and numbers you can trust.

Importing this package does not import Locust (nor gevent's monkey-patching): the pure
parts below are safe anywhere. :mod:`keelhaul.load.hooks`, which wires the statistics into
a Locust ``Environment``, imports Locust and is imported by the load process only.

=====================  ========================================================================
module                 holds
=====================  ========================================================================
``histogram``          HdrHistogram buckets kept sparse; percentiles; HdrHistogram encoding
``layer``              the mergeable counters behind RunStats, and their wire form
``timeline``           per-second (or coarser) points with exact percentiles
``stats``              ``RunStats``: record, take_delta / merge, summary rows
``checks``             ``--check`` thresholds: parse and evaluate
``summary``            the terminal table
``report_json``        ``RunInfo`` and the ``keelhaul.load/v1`` JSON document
``report_html``        the self-contained HTML report (charts from ``charts``)
``hooks``              Locust event wiring for local, master and worker runners
=====================  ========================================================================
"""

from __future__ import annotations

from keelhaul.load.checks import Check, CheckResult, evaluate, parse_check, parse_checks
from keelhaul.load.report_html import render_html
from keelhaul.load.report_json import ClosedModel, OpenModel, RunInfo, build_report, dumps
from keelhaul.load.stats import (
    AGGREGATED,
    COMPOSITE_STAGES,
    STAGE_ORDER,
    ErrorCount,
    IterationCounts,
    RunStats,
    StageSummary,
)
from keelhaul.load.summary import render_summary
from keelhaul.load.timeline import TimelinePoint

__all__ = [
    "AGGREGATED",
    "COMPOSITE_STAGES",
    "STAGE_ORDER",
    "Check",
    "CheckResult",
    "ClosedModel",
    "ErrorCount",
    "IterationCounts",
    "OpenModel",
    "RunInfo",
    "RunStats",
    "StageSummary",
    "TimelinePoint",
    "build_report",
    "dumps",
    "evaluate",
    "parse_check",
    "parse_checks",
    "render_html",
    "render_summary",
]
