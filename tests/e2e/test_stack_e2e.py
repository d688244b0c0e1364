"""The whole stack through real clients: skopeo pushes and pulls, httpx asks for tokens."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from keelhaul.client import write_image

if TYPE_CHECKING:
    from tests.e2e.conftest import Skopeo

    from support.stacks import StackInfo

pytestmark = pytest.mark.e2e

PRIVATE = "demo/e2e"
PUBLIC = "public/e2e"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    layout = tmp_path_factory.mktemp("image")
    digest = write_image(layout, layers=2, layer_size=256 * 1024, seed=42)
    return layout, digest


@pytest.fixture(scope="module")
def pushed(
    make_skopeo: Callable[[Path], Skopeo],
    image: tuple[Path, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """Admin pushes the image to a private and a public repository; returns its digest."""
    layout, digest = image
    tool = make_skopeo(tmp_path_factory.mktemp("push"))
    for repo in (f"{PRIVATE}:1", f"{PUBLIC}:1"):
        result = tool.push(layout, repo, user="admin")
        assert result.returncode == 0, result.stderr
    return digest


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


def _pulled_digest(layout: Path, tag: str = "pulled") -> str:
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [
        m
        for m in index["manifests"]
        if m["annotations"]["org.opencontainers.image.ref.name"] == tag
    ]
    return str(entry["digest"])


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def test_skopeo_reads_a_written_layout(skopeo: Skopeo, image: tuple[Path, str]) -> None:
    layout, digest = image
    result = skopeo.run("inspect", f"oci:{layout}:latest")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Digest"] == digest


def test_admin_pushes_and_reader_pulls_the_same_manifest(
    skopeo: Skopeo, pushed: str, tmp_path: Path
) -> None:
    dest = tmp_path / "pulled"
    result = skopeo.pull(f"{PRIVATE}:1", dest, user="reader")
    assert result.returncode == 0, result.stderr
    assert _pulled_digest(dest) == pushed


def test_reader_may_not_push(skopeo: Skopeo, image: tuple[Path, str], pushed: str) -> None:
    layout, _ = image
    result = skopeo.push(layout, f"{PRIVATE}:reader-was-here", user="reader")
    assert result.returncode != 0
    assert "denied" in result.stderr or "unauthorized" in result.stderr


def test_wrong_password_is_refused(
    skopeo: Skopeo, stack: StackInfo, pushed: str, tmp_path: Path, http: httpx.Client
) -> None:
    result = skopeo.pull(f"{PRIVATE}:1", tmp_path / "x", user="admin", password="not-the-password")
    assert result.returncode != 0
    response = http.get(
        stack.token_url,
        params={"service": stack.service, "scope": f"repository:{PRIVATE}:pull"},
        auth=("admin", "not-the-password"),
    )
    assert response.status_code == 401
    assert "token" not in response.json()


def test_anonymous_pulls_public_but_not_private(
    skopeo: Skopeo, pushed: str, tmp_path: Path
) -> None:
    public = skopeo.pull(f"{PUBLIC}:1", tmp_path / "public", user=None)
    assert public.returncode == 0, public.stderr
    assert _pulled_digest(tmp_path / "public") == pushed
    private = skopeo.pull(f"{PRIVATE}:1", tmp_path / "private", user=None)
    assert private.returncode != 0


def test_reader_token_carries_only_pull(stack: StackInfo, http: httpx.Client) -> None:
    response = http.get(
        stack.token_url,
        params={"service": stack.service, "scope": f"repository:{PRIVATE}:pull,push,delete"},
        auth=("reader", stack.password("reader")),
    )
    assert response.status_code == 200, response.text
    claims = _claims(response.json()["token"])
    assert claims["iss"] == stack.issuer
    assert claims["aud"] == stack.service
    assert claims["sub"] == "reader"
    assert claims["access"] == [{"type": "repository", "name": PRIVATE, "actions": ["pull"]}]


def test_oauth2_password_then_refresh_grant(
    stack: StackInfo, pushed: str, http: httpx.Client
) -> None:
    scope = f"repository:{PRIVATE}:pull"
    first = http.post(
        stack.token_url,
        data={
            "grant_type": "password",
            "username": "admin",
            "password": stack.password("admin"),
            "service": stack.service,
            "scope": scope,
            "access_type": "offline",
            "client_id": "keelhaul-tests",
        },
    )
    assert first.status_code == 200, first.text
    refresh_token = first.json()["refresh_token"]
    assert refresh_token

    second = http.post(
        stack.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "service": stack.service,
            "scope": scope,
            "client_id": "keelhaul-tests",
        },
    )
    assert second.status_code == 200, second.text
    body = second.json()
    token = body.get("access_token") or body["token"]
    assert _claims(token)["access"][0]["actions"] == ["pull"]

    tags = http.get(
        f"{stack.registry}/v2/{PRIVATE}/tags/list", headers={"Authorization": f"Bearer {token}"}
    )
    assert tags.status_code == 200, tags.text
    assert tags.json() == {"name": PRIVATE, "tags": ["1"]}


def test_status_json_reports_all_healthy(
    stack: StackInfo, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    result = cli("stack", "status", "--dir", str(stack.dir), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    assert set(report["components"]) == {"redis", "auth", "registry", "nginx"}
    assert all(c["healthy"] and c["alive"] for c in report["components"].values())
    for password in stack.users.values():
        assert password not in result.stdout
