"""The scenario mix: ``--mix pull=8,push=1,login=1,browse=1``, parsed and dealt out. Pure.

Each iteration (a *flow*) of a simulated client is one scenario, chosen by weight. The
choice is not random: a smooth weighted round-robin (nginx's upstream algorithm) deals the
scenarios out so that every window of ``sum(weights)`` iterations holds each scenario exactly
``weight`` times, interleaved (``pull pull push pull login ...``), in every process. A short
test run therefore exercises every scenario, and two runs with the same mix do the same work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from keelhaul.load.scenarios import SCENARIOS

__all__ = ["DEFAULT_MIX", "Mix", "MixEntry", "format_mix", "parse_mix"]

DEFAULT_MIX = "pull=8,push=1,login=1,browse=1"
"""Mostly pulls, as a registry behind CI runners and deployments sees: one push and one
login-only client per eight pulls, and a UI listing tags now and then."""

MixEntry = tuple[str, float]


def parse_mix(text: str) -> tuple[MixEntry, ...]:
    """``pull=8,push=1`` (a bare name weighs 1) -> ``(("pull", 8.0), ("push", 1.0))``.

    Raises ValueError with a message that names the bad part and the fix."""
    entries: list[MixEntry] = []
    seen: set[str] = set()
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ValueError(f"the mix is empty; give e.g. {DEFAULT_MIX}")
    for part in parts:
        if not part:
            raise ValueError(f"empty entry in {text!r}; separate NAME=WEIGHT pairs with commas")
        name, sep, raw = part.partition("=")
        name = name.strip()
        if name not in SCENARIOS:
            raise ValueError(
                f"unknown scenario {name!r} in {text!r}; choose from {', '.join(SCENARIOS)}"
            )
        if name in seen:
            raise ValueError(f"scenario {name!r} appears twice in {text!r}")
        seen.add(name)
        weight = 1.0
        if sep:
            try:
                weight = float(raw.strip())
            except ValueError:
                raise ValueError(
                    f"weight {raw.strip()!r} of {name!r} is not a number in {text!r}"
                ) from None
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"weight of {name!r} must be a number >= 0 in {text!r}")
        entries.append((name, weight))
    if not any(weight > 0 for _, weight in entries):
        raise ValueError(f"every weight in {text!r} is 0; at least one must be positive")
    return tuple((name, weight) for name, weight in entries if weight > 0)


def format_mix(entries: Sequence[MixEntry]) -> str:
    """The canonical spelling: ``pull=8,push=1`` (whole weights without ``.0``)."""
    return ",".join(f"{name}={weight:g}" for name, weight in entries)


class Mix:
    """Deals scenario names by weight, smoothly (see the module docstring). One per process:
    greenlets never switch inside :meth:`next`."""

    __slots__ = ("_current", "_names", "_total", "_weights")

    def __init__(self, entries: Sequence[MixEntry]) -> None:
        if not entries:
            raise ValueError("a mix needs at least one scenario")
        self._names = [name for name, _ in entries]
        self._weights = [weight for _, weight in entries]
        self._total = sum(self._weights)
        self._current = [0.0] * len(entries)

    def next(self) -> str:
        best = 0
        current = self._current
        for i, weight in enumerate(self._weights):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return self._names[best]
