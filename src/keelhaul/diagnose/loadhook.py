"""``keelhaul load --diagnose`` / ``--profile``: the diagnosis beside a load run.

The load command calls two functions and nothing else::

    hook = DiagnosisHook.start(settings, profile=..., out_dir=...)   # before the run
    settings = hook.settings                                          # asks for a JSON report
    ...                                                               # the run
    hook.finish(say)                                                  # after it, even on failure

The diagnosis watches the stack in ``--stack-dir`` (the one the run starts or reuses, or
the one behind ``--target``) from its own agent process, with the load process and its
workers as the load generator. The client side comes from the run's own JSON report
(``keelhaul.load/v1``), so the waterfall starts where the user's requests start, and the
verdict is made from the seconds the load ran, not from the seeding before it.

With ``prometheus=URL`` (``keelhaul load --diagnose --prometheus URL``) the stack is
treated as remote: the agent samples only the load generator, and after the run every
tier's signals are read from Prometheus over the run's window (:mod:`.promrun`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keelhaul.diagnose.analysis import Report
from keelhaul.diagnose.loadreport import ClientRun, client_from_report
from keelhaul.diagnose.promapi import PromApi, check_url
from keelhaul.diagnose.promrun import prometheus_report, tier_map, wait_for_last_scrape
from keelhaul.diagnose.promsource import LOOKBACK, resolution
from keelhaul.diagnose.session import Diagnosis, write_reports
from keelhaul.diagnose.summary import render_text
from keelhaul.diagnose.tiermap import TierMap
from keelhaul.errors import DiagnoseError

__all__ = ["DEFAULT_OUT", "DiagnosisHook"]

DEFAULT_OUT = Path("keelhaul-diagnosis")


@dataclass
class DiagnosisHook:
    diagnosis: Diagnosis
    settings: Any
    """The load settings, with a JSON report asked for when there was none."""
    out_dir: Path
    client_json: Path
    report: Report | None = None
    prometheus: str | None = None
    tiers: TierMap | None = None
    started: float = 0.0

    @classmethod
    def start(
        cls,
        settings: Any,
        *,
        profile: bool,
        out_dir: Path | None,
        prometheus: str | None = None,
        tiers: Path | None = None,
    ) -> DiagnosisHook:
        """Raises DiagnoseError before the run for a bad --prometheus URL or --tiers file."""
        tier_map_ = tier_map(tiers) if prometheus is not None else None
        if prometheus is not None:
            prometheus = check_url(prometheus)
            if profile:
                raise DiagnoseError(
                    "--profile needs the local stack; it cannot go with --prometheus"
                )
        out = (out_dir or DEFAULT_OUT).absolute()
        out.mkdir(parents=True, exist_ok=True)
        client_json = settings.json_path or out / "load-report.json"
        if settings.json_path is None:
            settings = settings.model_copy(update={"json_path": client_json})
        diagnosis = Diagnosis.start(
            Path(settings.stack_dir) if prometheus is None else None,
            load_pids=(os.getpid(),),
            profile=profile,
            workdir=out / "agent",
            block=False,  # the run may start the stack itself
        )
        return cls(
            diagnosis, settings, out, Path(client_json), None, prometheus, tier_map_, time.time()
        )

    def _client(self) -> ClientRun | None:
        try:
            return client_from_report(json.loads(self.client_json.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def _report(self) -> Report:
        if self.prometheus is None or self.tiers is None:
            return self.diagnosis.stop(client=self._client())
        local = self.diagnosis.stop_collection()
        ended = time.time()
        client = self._client()
        start = client.start if client is not None and client.start else self.started
        end = client.end if client is not None and client.end else ended
        with PromApi(self.prometheus) as api:
            step = resolution(api, self.tiers, start - LOOKBACK, end)
            wait_for_last_scrape(step, end)
            return prometheus_report(
                api, self.tiers, start, end, local=local.ticks, client=client, resolution_s=step
            )

    def finish(self, say: Callable[[str], None]) -> str:
        """Stop, analyse, write ``diagnosis.json``/``.html``; the text to print (the verdict).

        Never raises for the diagnosis itself: the load run's own result comes first.
        """
        try:
            report = self._report()
            json_path = self.out_dir / "diagnosis.json"
            html_path = self.out_dir / "diagnosis.html"
            write_reports(report, json_path=json_path, html_path=html_path)
        except DiagnoseError as exc:
            say(f"the diagnosis failed: {exc}")
            return ""
        self.report = report
        return render_text(report) + f"Diagnosis: {html_path} (JSON: {json_path})\n"
