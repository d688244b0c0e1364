"""Every 4xx a client can see from the token service is a Docker-style JSON body, both
directly (gunicorn + the app) and through the stack's nginx, for the requests that used to
get gunicorn's or nginx's HTML: many scopes, one very long scope, huge headers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import StackInfo

pytestmark = pytest.mark.e2e


def _url(stack: StackInfo, path: str) -> str:
    return stack.token_url if path == "direct" else f"{stack.entry}/token"


def _get(url: str, params: list[tuple[str, str]], headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=20) as http:
        return http.get(url, params=params, headers=headers)


def _assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].split(";")[0] == "application/json"
    errors = response.json()["errors"]
    assert errors[0]["code"] == code and errors[0]["message"]
    assert "<html" not in response.text.lower()


def _params(stack: StackInfo, scopes: list[str]) -> list[tuple[str, str]]:
    return [("service", stack.service), *(("scope", s) for s in scopes)]


# (case, path) -> (status, code): who answers is in the comment
CASES = {
    # 40 scopes, short query: the app's scope count limit
    ("40 scopes", "direct"): (400, "INVALID_SCOPE"),
    ("40 scopes", "nginx"): (400, "INVALID_SCOPE"),
    # 400 scopes (~9.6 KB request line): gunicorn's line limit / nginx's 8 KB buffer
    ("400 scopes", "direct"): (414, "SIZE_INVALID"),
    ("400 scopes", "nginx"): (414, "SIZE_INVALID"),
    # one 7000-character scope: the app's query limit (6144) on both paths
    ("long scope", "direct"): (413, "SIZE_INVALID"),
    ("long scope", "nginx"): (413, "SIZE_INVALID"),
    # one 20000-character scope
    ("very long scope", "direct"): (414, "SIZE_INVALID"),
    ("very long scope", "nginx"): (414, "SIZE_INVALID"),
    # a 12 KB header: within the app's 16 KB (gunicorn used to refuse it) / over nginx's 8 KB buffer
    ("12k header", "direct"): (200, ""),
    ("12k header", "nginx"): (431, "SIZE_INVALID"),
    # a 17 KB header: over the app's 16 KB total, under gunicorn's per-field limit
    ("17k header", "direct"): (431, "SIZE_INVALID"),
    ("17k header", "nginx"): (431, "SIZE_INVALID"),
    # a 40 KB header: over gunicorn's own field limit
    ("40k header", "direct"): (431, "SIZE_INVALID"),
    ("40k header", "nginx"): (431, "SIZE_INVALID"),
    # 100 small headers: the app's count limit (64) on both paths
    ("100 headers", "direct"): (431, "SIZE_INVALID"),
    ("100 headers", "nginx"): (431, "SIZE_INVALID"),
    # 300 small headers: over gunicorn's field count (256)
    ("300 headers", "direct"): (431, "SIZE_INVALID"),
}


def _request(case: str, stack: StackInfo) -> tuple[list[tuple[str, str]], dict[str, str]]:
    pull = "repository:team/app:pull"
    scopes, headers = [pull], {}
    if case == "40 scopes":
        scopes = [f"repository:a{i}:pull" for i in range(40)]
    elif case == "400 scopes":
        scopes = [f"repository:a{i}:pull" for i in range(400)]
    elif case == "long scope":
        scopes = ["repository:" + "a" * 7000 + ":pull"]
    elif case == "very long scope":
        scopes = ["repository:" + "a" * 20000 + ":pull"]
    elif case.endswith("k header"):
        headers = {"X-Padding": "p" * (int(case.split("k", maxsplit=1)[0]) * 1024)}
    elif case.endswith(" headers"):
        headers = {f"X-Pad-{i}": "v" for i in range(int(case.split(maxsplit=1)[0]))}
    return _params(stack, scopes), headers


@pytest.mark.parametrize(("case", "path"), list(CASES), ids=[f"{c}-{p}" for c, p in CASES])
def test_refusals_are_docker_style_json(stack: StackInfo, case: str, path: str) -> None:
    status, code = CASES[(case, path)]
    params, headers = _request(case, stack)
    response = _get(_url(stack, path), params, headers)
    if status == 200:  # anonymous token: within every limit, nothing refused
        assert response.status_code == 200, response.text[:300]
        assert response.json()["token"]
    else:
        _assert_json_error(response, status, code)
