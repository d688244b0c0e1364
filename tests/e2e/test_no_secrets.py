"""No secret in any log line, metric, error body or status output after real traffic.

Secrets may live only in the stack's 0600 files (stack.json, the configs, the key).
"""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
import yaml

from keelhaul.client.layout import write_image

pytestmark = pytest.mark.e2e


def test_secrets_never_leak(stack, skopeo, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    auth_cfg = yaml.safe_load((stack.dir / "config" / "auth.yml").read_text())
    reg_cfg = yaml.safe_load((stack.dir / "config" / "registry.yml").read_text())
    key_lines = [
        line
        for line in (stack.dir / "keys" / "token.key").read_text().splitlines()
        if line and not line.startswith("-----")
    ]
    wrong = "Wr0ng-pa55word-for-grep"

    # --- traffic: pushes, pulls, failures, both OAuth2 grants, anonymous
    layout = tmp_path / "img"
    write_image(layout, layers=1, layer_size=4096, seed=42)
    assert skopeo.push(layout, "secrets/app:1", user="admin").returncode == 0
    assert skopeo.pull("secrets/app:1", tmp_path / "out", user="reader").returncode == 0
    assert (
        skopeo.pull("secrets/app:1", tmp_path / "out2", user="reader", password=wrong).returncode
        != 0
    )
    token_url, service = stack.token_url, stack.service
    bad = httpx.get(token_url, params={"service": service}, auth=("reader", wrong))
    assert bad.status_code == 401
    form = {
        "grant_type": "password",
        "service": service,
        "client_id": "grep",
        "access_type": "offline",
        "username": "reader",
        "password": stack.password("reader"),
        "scope": "repository:secrets/app:pull",
    }
    refresh = httpx.post(token_url, data=form).json()["refresh_token"]
    again = httpx.post(
        token_url,
        data={
            "grant_type": "refresh_token",
            "service": service,
            "client_id": "grep",
            "refresh_token": refresh,
            "scope": "repository:secrets/app:pull",
        },
    )
    assert again.status_code == 200
    forged = httpx.post(
        token_url,
        data={
            "grant_type": "refresh_token",
            "service": service,
            "client_id": "g",
            "refresh_token": refresh[:-4] + "AAAA",
        },
    )
    assert forged.status_code == 401

    secrets = {
        "admin password": stack.password("admin"),
        "reader password": stack.password("reader"),
        "wrong password": wrong,
        "refresh token": refresh,
        "server secret": auth_cfg["secret"],
        "registry http secret": reg_cfg["http"]["secret"],
        **{f"signing key line {i}": line for i, line in enumerate(key_lines)},
    }

    # --- where secrets must not be
    haystacks: dict[str, str] = {}
    for path in sorted((stack.dir / "logs").rglob("*")):
        if path.is_file():
            haystacks[str(path.relative_to(stack.dir))] = path.read_text(errors="replace")
    haystacks["/metrics"] = httpx.get(stack.urls["auth"] + "/metrics").text
    haystacks["401 body"] = bad.text
    haystacks["forged refresh body"] = forged.text
    haystacks["stack status"] = cli("stack", "status", "--dir", str(stack.dir)).stdout
    haystacks["stack status --json"] = cli(
        "stack", "status", "--dir", str(stack.dir), "--json"
    ).stdout
    assert haystacks["logs/audit.log"].count("\n") >= 5  # the grep looked at a real audit trail
    leaks = [
        (name, where)
        for name, secret in secrets.items()
        for where, text in haystacks.items()
        if secret in text
    ]
    assert leaks == []

    # --- where secrets may be: owner-only files
    for path in (
        stack.dir / "stack.json",
        stack.dir / "config" / "auth.yml",
        stack.dir / "config" / "registry.yml",
        stack.dir / "config" / "htpasswd",
        stack.dir / "keys" / "token.key",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
