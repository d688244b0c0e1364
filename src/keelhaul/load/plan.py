"""The run plan: what every load-generating process must know, decided once by the master.

The master (or the single local process) resolves the target, logs in, seeds the test
repository and probes whether the registry deletes; the outcome is a :class:`RunPlan`. A
worker process receives it as a Locust message when a test starts (``keelhaul_plan``),
with its own :class:`Share` of the iterations and of the arrival rate. The plan holds no
secret: each process resolves its own credentials (see :mod:`keelhaul.load.target`).
Pure: plain data, validated on the way in, so a worker of another keelhaul version fails
with a message rather than mid-run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from keelhaul.errors import LoadError
from keelhaul.load.mix import MixEntry
from keelhaul.load.openmodel import split_count, split_rate
from keelhaul.settings_base import FrozenModel, validation_problems

__all__ = [
    "DONE_MESSAGE",
    "ERROR_MESSAGE",
    "PLAN_MESSAGE",
    "RunPlan",
    "SeedImage",
    "Share",
    "push_tag",
]

PLAN_MESSAGE = "keelhaul_plan"
DONE_MESSAGE = "keelhaul_done"
ERROR_MESSAGE = "keelhaul_error"


class _Wire(FrozenModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SeedImage(_Wire):
    """One seeded image: pulled by tag, as docker does."""

    tag: str
    digest: str
    bytes: int = Field(ge=0, description="config and layers")


class Share(_Wire):
    """One process's part of the run: ``index`` of ``count`` load-generating processes."""

    index: int = Field(default=0, ge=0)
    count: int = Field(default=1, ge=1)
    iterations: int | None = Field(default=None, ge=0)
    rate: float | None = Field(default=None, gt=0)
    offset_s: float = Field(default=0.0, ge=0)


class RunPlan(_Wire):
    run_id: str
    registry: str
    """``host[:port]`` of the entry point every request goes to."""
    plain_http: bool
    insecure: bool = False
    ca_cert: str | None = None
    timeout_s: float = 60.0
    token_method: Literal["get", "post"] = "get"  # noqa: S105 - a method name
    embedded: bool
    """The local stack: pulls as ``reader``, pushes and browsing as ``admin``."""
    repo: str
    images: tuple[SeedImage, ...] = Field(min_length=1)
    push_repo: str
    push_unique: bool
    """Deletes work: every push gets a new tag, all deleted at the end. Else the pushes
    cycle through ``push_tags`` tags."""
    push_tags: int = Field(default=16, ge=1)
    layers: int = Field(ge=1)
    layer_size: int = Field(ge=0)
    seed: int = Field(ge=0)
    mix: tuple[MixEntry, ...] = Field(min_length=1)
    verify: bool = False
    only_missing: bool = False
    parallel: int = Field(default=3, ge=1)
    late_after_ms: float = Field(default=10.0, ge=0)
    drop_after_s: float = Field(default=1.0, gt=0)
    total_iterations: int | None = Field(default=None, ge=1)
    total_rate: float | None = Field(default=None, gt=0)
    pushed_log: str | None = None
    """Each process appends ``repo:tag@digest`` here for every push it reports as done."""
    exit_after_stop: bool = False
    """A headless run: workers exit once their last statistics are sent (a web UI run
    keeps them for the next test)."""
    share: Share = Share()

    @property
    def base_url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.registry}"

    def for_process(self, index: int, count: int) -> RunPlan:
        """This plan with process ``index`` of ``count``'s share of iterations and rate."""
        iterations = (
            split_count(self.total_iterations, count, index)
            if self.total_iterations is not None
            else None
        )
        rate, offset = split_rate(self.total_rate, count, index) if self.total_rate else (None, 0.0)
        share = Share(index=index, count=count, iterations=iterations, rate=rate, offset_s=offset)
        return self.model_copy(update={"share": share})

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_wire(cls, data: object) -> RunPlan:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(validation_problems(exc)[:5])
            raise LoadError(
                f"the master sent a run plan this worker cannot use ({problems}); run the "
                "same keelhaul version on the master and every worker"
            ) from None


def push_tag(plan: RunPlan, process: int, n: int) -> str:
    """The tag of this process's ``n``-th push: unique when deletes clean up after the run,
    else one of ``push_tags`` reused tags."""
    if plan.push_unique:
        return f"p{process}-{n}"
    return f"t{(process * 7919 + n) % plan.push_tags}"
