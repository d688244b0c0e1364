"""Pure: what a rule returns (:class:`Finding`), the verdict tiers' labels, a profile's
hot spot. Shared by :mod:`.rules`, :mod:`.quota` and :mod:`.verdict`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LABELS", "Finding", "HotSpot", "pct"]

LABELS = {
    "redis": "Redis",
    "storage": "storage",
    "proxy": "proxy (nginx)",
    "token_workers": "token-service workers",
    "token_cpu": "token-service CPU",
    "registry": "registry",
    "load_generator": "load generator",
    "none": "no server-side bottleneck",
    "no_traffic": "no traffic",
}


@dataclass(frozen=True)
class HotSpot:
    """What the call graph says (:mod:`keelhaul.diagnose.callgraph`), if it was recorded."""

    function: str
    share: float
    path: tuple[str, ...]
    samples: int


@dataclass(frozen=True)
class Finding:
    tier: str
    score: float
    title: str
    evidence: tuple[str, ...]
    next_steps: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "label": LABELS.get(self.tier, self.tier),
            "score": round(self.score, 3),
            "title": self.title,
            "evidence": list(self.evidence),
            "next_steps": list(self.next_steps),
        }


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"
