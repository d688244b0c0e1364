"""Test data naming, run ids, and how local worker processes are started (pure parts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keelhaul.client.reference import parse_repository
from keelhaul.load.children import worker_argv, worker_env
from keelhaul.load.prepare import new_run_id
from keelhaul.load.seed import build_seed_images, push_repository, seed_tag
from keelhaul.load.settings import LoadSettings

pytestmark = pytest.mark.unit


def test_seeded_images_are_deterministic_and_tagged_by_shape() -> None:
    first = build_seed_images(2, layers=2, layer_size=1000, seed=7)
    again = build_seed_images(2, layers=2, layer_size=1000, seed=7)
    assert [t for t, _ in first] == ["2x1000-s7", "2x1000-s8"]
    assert [i.digest for _, i in first] == [i.digest for _, i in again]
    assert first[0][1].digest != first[1][1].digest
    other_shape = build_seed_images(1, layers=2, layer_size=2000, seed=7)
    assert other_shape[0][0] != first[0][0]  # never overwrites another shape's tag


def test_tags_and_repositories_are_valid_names() -> None:
    assert re.fullmatch(r"[\w][\w.-]{0,127}", seed_tag(100, 1 << 30, 2**31))
    run_id = new_run_id(1_790_000_000.0)
    assert run_id.startswith("20260921-141320-")
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run_id)
    repo = push_repository("keelhaul/load", run_id)
    assert parse_repository(f"127.0.0.1:5000/{repo}").repository == repo


def test_local_workers_get_credentials_through_the_environment_only() -> None:
    settings = LoadSettings(
        target="http://127.0.0.1:5000",
        username="alice",
        password="s3cret",
        processes=2,
        worker_stats_dir=Path("/tmp/ws"),
    )
    argv = worker_argv(settings, master_port=4242, embedded=False, python="py")
    assert argv[:5] == ["py", "-m", "keelhaul", "load", "--worker"]
    assert "4242" in argv
    assert "--worker-stats" in argv
    assert argv[argv.index("--print-every") + 1] == "0"  # the master's terminal shows the merge
    assert "s3cret" not in " ".join(argv)
    assert "alice" not in " ".join(argv)
    env = worker_env(settings, {"PATH": "/bin", "KEELHAUL_LOAD_PROCESSES": "2"})
    assert env["KEELHAUL_REGISTRY_USERNAME"] == "alice"
    assert env["KEELHAUL_REGISTRY_PASSWORD"] == "s3cret"
    assert "KEELHAUL_LOAD_PROCESSES" not in env  # the master decides for its workers
    assert env["PATH"] == "/bin"


def test_local_workers_of_the_local_stack_read_its_users() -> None:
    settings = LoadSettings(stack_dir=Path("/tmp/st"), processes=2)
    argv = worker_argv(settings, master_port=1, embedded=True, python="py")
    assert argv[argv.index("--stack-dir") + 1] == "/tmp/st"
    assert "KEELHAUL_REGISTRY_USERNAME" not in worker_env(settings, {})
