"""``keelhaul diagnose``'s progress: seconds watched, then the top CPU-demand tier so far."""

from __future__ import annotations

import pytest

from keelhaul.diagnose.watching import (
    parse_progress,
    progress_document,
    progress_text,
    top_cpu_tier,
)
from support.diagnose_synth import Synth, cpu

pytestmark = pytest.mark.unit


def _watched(seconds: int) -> Synth:
    s = Synth(cores=2)
    for _ in range(seconds):
        tiers = {"auth": (1.2, 0.4), "nginx": (0.3, 0.0), "diagnosis": (1.9, 0.0)}
        s.second(add={"procs": cpu(tiers, host_busy=1.9)})
    return s


def test_no_tier_before_enough_readings() -> None:
    assert top_cpu_tier(_watched(1).collection()) is None  # baseline + 1 reading
    assert progress_text(1.4, 20, None) == "watched 1s of 20s"


def test_the_tier_with_the_highest_demand_so_far_not_the_diagnosis_itself() -> None:
    top = top_cpu_tier(_watched(5).collection())
    assert top is not None
    name, demand = top
    assert name == "auth"
    assert demand == pytest.approx(1.6)
    assert progress_text(12.2, 20, top) == (
        "watched 12s of 20s, highest CPU demand so far: auth (1.60 CPUs)"
    )


def test_the_agent_document_reads_back() -> None:
    doc = progress_document(7.5, _watched(5).collection())
    watched, top = parse_progress(doc)
    assert watched == 7.5
    assert top is not None and top[0] == "auth"
    assert parse_progress(progress_document(1.0, _watched(1).collection())) == (1.0, None)
    assert progress_text(3, None, None) == "watched 3s"
    with pytest.raises(ValueError, match="not a diagnosis progress document"):
        parse_progress({"top": None})
