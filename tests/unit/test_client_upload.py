"""Upload session state: URLs, chunk boundaries, offsets from Range, resume."""

from __future__ import annotations

import pytest

from keelhaul.client.upload import (
    UploadState,
    finish_url,
    mount_url,
    parse_range_end,
    plan_upload,
    start_url,
)

pytestmark = pytest.mark.unit

BASE = "http://127.0.0.1:5000"


def test_urls() -> None:
    assert start_url(BASE, "a/b") == f"{BASE}/v2/a/b/blobs/uploads/"
    assert (
        mount_url(BASE, "a/b", "sha256:abc", "c/d")
        == f"{BASE}/v2/a/b/blobs/uploads/?mount=sha256%3Aabc&from=c%2Fd"
    )
    assert (
        finish_url("http://h/up/1?_state=x", "sha256:ab")
        == "http://h/up/1?_state=x&digest=sha256:ab"
    )
    assert finish_url("http://h/up/1", "sha256:ab") == "http://h/up/1?digest=sha256:ab"


@pytest.mark.parametrize(
    ("value", "end"),
    [("0-1023", 1023), ("bytes=0-9", 9), (" 0-0 ", 0), (None, None), ("", None), ("x-1", None)],
)
def test_parse_range_end(value: str | None, end: int | None) -> None:
    assert parse_range_end(value) == end


def test_plan() -> None:
    assert plan_upload(100, 100) == "monolithic"
    assert plan_upload(101, 100) == "chunked"


def test_started_resolves_relative_location() -> None:
    state = UploadState.started(
        f"{BASE}/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/u1?_state=s", 10
    )
    assert state.location == f"{BASE}/v2/a/blobs/uploads/u1?_state=s"
    with pytest.raises(ValueError, match="Location"):
        UploadState.started(BASE, None, 10)


def test_chunked_transitions_follow_location_and_range() -> None:
    state = UploadState(f"{BASE}/up/1?_state=a", size=25, chunk_size=10)
    assert state.next_chunk() == (0, 10)
    assert UploadState.content_range(0, 10) == "0-9"
    state.patched(10, "/up/1?_state=b", "0-9")
    assert (state.offset, state.location) == (10, f"{BASE}/up/1?_state=b")
    assert state.next_chunk() == (10, 20)
    state.patched(20, None, "0-19")
    assert state.next_chunk() == (20, 25)
    state.patched(25, "/up/1?_state=c", "0-24")
    assert state.done
    assert state.finish("sha256:ff") == f"{BASE}/up/1?_state=c&digest=sha256:ff"
    with pytest.raises(ValueError, match="nothing left"):
        state.next_chunk()


def test_streamed_single_patch() -> None:
    state = UploadState(f"{BASE}/up/1", size=1000, chunk_size=0)
    assert state.next_chunk() == (0, 1000)


def test_registry_range_wins_over_what_was_sent() -> None:
    state = UploadState(f"{BASE}/up", size=100, chunk_size=50)
    state.patched(50, None, "0-29")  # the registry kept only 30 bytes
    assert state.next_chunk() == (30, 80)


def test_resume_offsets() -> None:
    state = UploadState(f"{BASE}/up", size=100, chunk_size=40)
    state.resumed("/up?_state=r", "0-61")
    assert state.offset == 62
    assert state.location == f"{BASE}/up?_state=r"
    state.resumed(None, "0-0")  # ambiguous: nothing (or one byte); nothing is safe
    assert state.offset == 0
    state.resumed(None, None)
    assert state.offset == 0
    state.resumed(None, "0-500")  # never past the end
    assert state.offset == 100 and state.done


def test_zero_zero_after_sending_one_byte() -> None:
    state = UploadState(f"{BASE}/up", size=2, chunk_size=1)
    state.patched(1, None, "0-0")
    assert state.offset == 1
