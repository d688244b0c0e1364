"""The token state machine: requests, reuse until expiry, refresh tokens, 401 decisions."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from keelhaul.client.challenge import parse_challenges
from keelhaul.client.tokens import (
    AuthState,
    Credentials,
    covers,
    merge_scopes,
    repository_scope,
)
from keelhaul.errors import RegistryClientError, RegistryDenied, RegistryUnauthorized

pytestmark = pytest.mark.unit

REALM = "http://127.0.0.1:5001/token"
PULL = (repository_scope("team/app", "pull"),)
PUSH = (repository_scope("team/app", "push", "pull"),)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _challenge(extra: str = "") -> list:  # type: ignore[type-arg]
    return parse_challenges([f'Bearer realm="{REALM}",service="reg"{extra}'])


def _state(creds: Credentials | None = None, **kw: object) -> tuple[AuthState, Clock]:
    clock = Clock()
    state = AuthState(creds, registry="127.0.0.1:5000", clock=clock, **kw)  # type: ignore[arg-type]
    state.learn(_challenge())
    return state, clock


def _grant(state: AuthState, scopes: tuple[str, ...], **body: object) -> str:
    fetch = state.token_request(scopes)
    value = f"tok-{len(state._tokens)}-{fetch.grant}"
    token = state.token_received(fetch, 200, json.dumps({"token": value, **body}).encode())
    assert token is not None
    return value


def test_scope_helpers() -> None:
    assert PUSH == ("repository:team/app:pull,push",)
    assert merge_scopes(PULL, PUSH, ["registry:catalog:*"]) == (
        "registry:catalog:*",
        "repository:team/app:pull,push",
    )
    assert covers(frozenset(PUSH), frozenset(PULL))
    assert not covers(frozenset(PULL), frozenset(PUSH))
    assert covers(frozenset({"repository:x:*"}), frozenset({"repository:x:delete"}))


def test_anonymous_get_request() -> None:
    state, _ = _state()
    fetch = state.token_request((*PULL, "repository:other:pull"))
    assert fetch.method == "GET" and fetch.grant == "anonymous"
    assert "Authorization" not in fetch.headers
    query = parse_qs(urlsplit(fetch.url).query)
    assert query == {
        "service": ["reg"],
        "scope": ["repository:team/app:pull", "repository:other:pull"],
    }


def test_basic_get_request_carries_credentials_and_account() -> None:
    state, _ = _state(Credentials("alice", "s3cret", source="flags"))
    fetch = state.token_request(PULL)
    assert fetch.grant == "basic"
    assert fetch.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert parse_qs(urlsplit(fetch.url).query)["account"] == ["alice"]
    assert "s3cret" not in repr(fetch) and "s3cret" not in repr(state.credentials)


def test_post_password_then_refresh_token() -> None:
    state, _ = _state(Credentials("alice", "pw"), token_method="post")
    fetch = state.token_request(PUSH)
    assert fetch.method == "POST" and fetch.grant == "password"
    form = parse_qs((fetch.body or b"").decode())
    assert form["grant_type"] == ["password"] and form["access_type"] == ["offline"]
    assert form["client_id"] == ["keelhaul"] and form["scope"] == list(PUSH)
    _grant(state, PUSH, refresh_token="r1")
    again = state.token_request(PULL)
    assert again.grant == "refresh_token"
    assert parse_qs((again.body or b"").decode())["refresh_token"] == ["r1"]


def test_refused_refresh_token_falls_back_to_password_once() -> None:
    state, _ = _state(Credentials("alice", "pw"))
    state.refresh_token = "stale"
    fetch = state.token_request(PULL)
    assert fetch.grant == "refresh_token"
    assert state.token_received(fetch, 401, b"{}") is None
    assert state.refresh_token is None
    assert state.token_request(PULL).grant == "basic"


def test_identity_token_from_a_credentials_file_is_a_refresh_token() -> None:
    state, _ = _state(Credentials(identity_token="idt", source="~/.docker/config.json"))
    fetch = state.token_request(PULL)
    assert fetch.grant == "refresh_token"
    with pytest.raises(RegistryUnauthorized):  # no password to fall back to
        state.token_received(fetch, 401, b"")


def test_token_reused_until_expiry_minus_margin() -> None:
    state, clock = _state(Credentials("a", "b"))
    assert state.needs_token(PULL)
    value = _grant(state, PUSH, expires_in=300)
    assert state.header(PULL) == f"Bearer {value}"  # a pull,push token serves a pull
    clock.now += 269  # margin: a tenth of 300 s, capped at 30 s
    assert state.header(PUSH) == f"Bearer {value}"
    clock.now += 2
    assert state.header(PUSH) is None
    assert state.needs_token(PUSH)


def test_a_very_short_lifetime_still_serves_its_request() -> None:
    state, clock = _state()
    value = _grant(state, PULL, expires_in=1)
    assert state.header(PULL) == f"Bearer {value}"
    clock.now += 0.6
    assert state.header(PULL) is None


def test_default_lifetime_is_60_seconds() -> None:
    state, clock = _state()
    _grant(state, PULL)
    clock.now += 53.9
    assert state.header(PULL) is not None
    clock.now += 0.2
    assert state.header(PULL) is None


def test_first_challenge_asks_for_the_registry_scope() -> None:
    state = AuthState(Credentials("a", "b"), registry="r")
    assert not state.scheme and state.header(PULL) is None
    wanted = state.unauthorized(
        _challenge(',scope="repository:team/app:push"'), PULL, None, retried=False
    )
    assert wanted == PUSH
    assert (state.scheme, state.realm, state.service) == ("bearer", REALM, "reg")


def test_invalid_token_is_forgotten_and_fetched_again_once() -> None:
    state, _ = _state(Credentials("a", "b"))
    value = _grant(state, PULL)
    sent = state.header(PULL)
    challenge = _challenge(',error="invalid_token"')
    assert state.unauthorized(challenge, PULL, sent, retried=False) == PULL
    assert state.header(PULL) is None, value
    with pytest.raises(RegistryUnauthorized, match="rejects the token service's tokens"):
        state.unauthorized(challenge, PULL, "Bearer fresh", retried=True)


def test_insufficient_scope_with_a_token_for_exactly_that_is_denied() -> None:
    state, _ = _state(Credentials("reader", "pw", source="flags"))
    _grant(state, PUSH)
    challenge = _challenge(',scope="repository:team/app:pull,push",error="insufficient_scope"')
    with pytest.raises(RegistryDenied, match=r"reader .from flags. may not pull/push team/app"):
        state.unauthorized(challenge, PUSH, state.header(PUSH), retried=False)


def test_insufficient_scope_with_a_narrower_token_asks_for_more() -> None:
    state, _ = _state(Credentials("a", "b"))
    _grant(state, PULL)
    challenge = _challenge(',scope="repository:team/app:pull,push",error="insufficient_scope"')
    assert state.unauthorized(challenge, PULL, state.header(PULL), retried=False) == PUSH
    with pytest.raises(RegistryDenied):
        state.unauthorized(challenge, PUSH, "Bearer x", retried=True)


def test_anonymous_refusal_is_unauthorized_not_denied() -> None:
    state, _ = _state()
    challenge = _challenge(',error="insufficient_scope"')
    with pytest.raises(RegistryUnauthorized, match="authentication required"):
        state.unauthorized(challenge, PULL, "Bearer anon", retried=True)


def test_basic_registry() -> None:
    basic = parse_challenges(['Basic realm="registry"'])
    anonymous = AuthState(registry="r")
    with pytest.raises(RegistryUnauthorized, match="authentication required"):
        anonymous.unauthorized(basic, PULL, None, retried=False)
    creds = Credentials("u", "p", source="environment")
    state = AuthState(creds, registry="r")
    assert state.unauthorized(basic, PULL, None, retried=False) == PULL
    assert state.header(PULL) == creds.basic()
    assert not state.needs_token(PULL)
    with pytest.raises(RegistryUnauthorized, match="rejected the credentials of u"):
        state.unauthorized(basic, PULL, creds.basic(), retried=False)


def test_no_challenge_at_all() -> None:
    with pytest.raises(RegistryUnauthorized, match="without saying how"):
        AuthState(registry="r").unauthorized([], PULL, None, retried=False)


def test_new_realm_drops_tokens() -> None:
    state, _ = _state()
    _grant(state, PULL)
    state.learn(parse_challenges(['Bearer realm="http://elsewhere/token",service="reg"']))
    assert state.header(PULL) is None


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (401, b"", RegistryUnauthorized, "rejected the credentials of a"),
        (403, b"", RegistryDenied, "refused"),
        (429, b"", RegistryClientError, "throttling"),
        (200, b"not json", RegistryClientError, "something other than a token"),
        (200, b'{"expires_in": 5}', RegistryClientError, "sent no token"),
    ],
)
def test_token_answer_errors(status: int, body: bytes, error: type[Exception], text: str) -> None:
    state, _ = _state(Credentials("a", "b"))
    with pytest.raises(error, match=text):
        state.token_received(state.token_request(PULL), status, body)


def test_access_token_field_and_cache_pruning() -> None:
    state, clock = _state()
    fetch = state.token_request(PULL)
    token = state.token_received(fetch, 200, b'{"access_token": "at", "expires_in": 10}')
    assert token is not None and token.value == "at"
    clock.now += 100
    _grant(state, PUSH)
    assert len(state._tokens) == 1  # the expired one was pruned
