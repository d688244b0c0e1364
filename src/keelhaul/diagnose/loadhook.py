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
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keelhaul.diagnose.analysis import Report
from keelhaul.diagnose.client import ClientRun, client_from_report
from keelhaul.diagnose.session import Diagnosis, write_reports
from keelhaul.diagnose.summary import render_text
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

    @classmethod
    def start(cls, settings: Any, *, profile: bool, out_dir: Path | None) -> DiagnosisHook:
        out = (out_dir or DEFAULT_OUT).absolute()
        out.mkdir(parents=True, exist_ok=True)
        client_json = settings.json_path or out / "load-report.json"
        if settings.json_path is None:
            settings = settings.model_copy(update={"json_path": client_json})
        diagnosis = Diagnosis.start(
            Path(settings.stack_dir),
            load_pids=(os.getpid(),),
            profile=profile,
            workdir=out / "agent",
            block=False,  # the run may start the stack itself
        )
        return cls(diagnosis, settings, out, Path(client_json))

    def _client(self) -> ClientRun | None:
        try:
            return client_from_report(json.loads(self.client_json.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def finish(self, say: Callable[[str], None]) -> str:
        """Stop, analyse, write ``diagnosis.json``/``.html``; the text to print (the verdict).

        Never raises for the diagnosis itself: the load run's own result comes first.
        """
        try:
            report = self.diagnosis.stop(client=self._client())
            json_path = self.out_dir / "diagnosis.json"
            html_path = self.out_dir / "diagnosis.html"
            write_reports(report, json_path=json_path, html_path=html_path)
        except DiagnoseError as exc:
            say(f"the diagnosis failed: {exc}")
            return ""
        self.report = report
        return render_text(report) + f"Diagnosis: {html_path} (JSON: {json_path})\n"
