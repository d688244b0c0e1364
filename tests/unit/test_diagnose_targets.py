"""What the local diagnosis watches, from ``stack.json``: an external Redis is read through
what it answers, and its unseen process is said, never counted idle."""

from __future__ import annotations

import pytest

from keelhaul.diagnose.sources import SourceInfo
from keelhaul.diagnose.targets import targets_from_state
from keelhaul.diagnose.watch import build_collectors, describe
from keelhaul.stack.settings import StackSettings
from keelhaul.stack.state import StackState

pytestmark = pytest.mark.unit

EXTERNAL = "redis://:hunter2@10.0.0.5:6390/2"


def _state(redis_url: str, settings: StackSettings, pids: dict[str, int]) -> StackState:
    return StackState(
        status="running", dir="/srv/stack", started_at="now", registry="http://127.0.0.1:2",
        token_url="http://127.0.0.1:3/token", service="s", issuer="i", redis_url=redis_url,
        pids=pids, ports={"nginx": 1, "auth": 3, "registry": 2}, settings=settings.recorded(),
    )  # fmt: skip


def test_an_external_redis_is_read_and_its_process_said_unseen() -> None:
    state = _state(EXTERNAL, StackSettings(redis_url=EXTERNAL), {"auth": 10, "nginx": 11})
    targets = targets_from_state(state, cores=2)
    assert targets.redis_url == EXTERNAL  # the collector logs in with the password
    assert "redis" not in targets.leaders
    assert targets.redis_external == "redis://:***@10.0.0.5:6390/2"
    assert "redis" in [c.name for c in build_collectors(targets)]
    (note,) = SourceInfo.from_meta(describe(targets)).notes
    assert "Redis is external" in note and "unseen" in note and "10.0.0.5:6390" in note
    assert "hunter2" not in str(describe(targets))


def test_the_own_redis_needs_no_note() -> None:
    own = "redis://127.0.0.1:4/0"
    targets = targets_from_state(_state(own, StackSettings(), {"redis": 9, "auth": 10}), cores=2)
    assert targets.redis_external is None and targets.leaders["redis"] == 9
    assert SourceInfo.from_meta(describe(targets)).notes == ()
