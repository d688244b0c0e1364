"""User stores, the authenticator's outcomes, the credential cache and refresh tokens."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest

from keelhaul.auth.authn import Account
from keelhaul.auth.authn.authenticator import Authenticator
from keelhaul.auth.authn.htpasswd import HtpasswdFile, hash_password, parse_htpasswd
from keelhaul.auth.authn.static import StaticUsers
from keelhaul.auth.credcache import CredentialCache, LocalCache, credential_key
from keelhaul.auth.refresh import RefreshTokens
from keelhaul.auth.settings import StaticUser
from keelhaul.errors import BackendError, Unauthorized

pytestmark = pytest.mark.unit

H4 = hash_password("pw", 4)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hash_password_is_htpasswd_bcrypt() -> None:
    hashed = hash_password("s3cret", 5)
    assert hashed.startswith("$2y$05$")
    assert bcrypt.checkpw(b"s3cret", hashed.encode())


def test_parse_htpasswd_reports_bad_lines_without_content() -> None:
    text = f"# comment\n\nalice:{H4}\nbob:{{SHA}}abc=\nnocolon\nalice:{H4}\n"
    parsed = parse_htpasswd(text)
    assert list(parsed.users) == ["alice"]
    assert len(parsed.problems) == 3
    assert any("non-bcrypt" in p and "line 4" in p for p in parsed.problems)
    assert all("abc=" not in p for p in parsed.problems)


def test_htpasswd_reload_picks_up_changes(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{H4}\n")
    clock = Clock()
    store = HtpasswdFile(path, reload_interval=2.0, clock=clock)
    assert store.lookup("alice") is not None
    path.write_text(f"bob:{H4}\n")
    clock.now += 1.0  # within the interval: still the old copy
    assert store.lookup("alice") is not None
    clock.now += 1.5
    assert store.lookup("alice") is None
    assert store.lookup("bob") is not None


def test_htpasswd_unreadable_keeps_last_good_copy(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{H4}\n")
    clock = Clock()
    store = HtpasswdFile(path, reload_interval=1.0, clock=clock)
    path.unlink()
    clock.now += 5
    assert store.lookup("alice") is not None
    ok, detail = store.health()
    assert not ok and "last good copy" in detail


def test_htpasswd_missing_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="cannot be read"):
        HtpasswdFile(tmp_path / "nope")


def _static(**users: str) -> StaticUsers:
    return StaticUsers({n: StaticUser(password_hash=hash_password(p, 4)) for n, p in users.items()})  # type: ignore[arg-type]


def test_backends_in_order_first_known_decides(tmp_path: Path) -> None:
    first = _static(alice="one")
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hash_password('two', 4)}\nbob:{hash_password('three', 4)}\n")
    second = HtpasswdFile(path)
    authn = Authenticator([first, second], None, dummy_cost=4)
    assert authn.authenticate("alice", "one").user.backend == "static"
    with pytest.raises(Unauthorized):  # wrong password in the first store does not fall through
        authn.authenticate("alice", "two")
    assert authn.authenticate("bob", "three").user.backend == "htpasswd"
    with pytest.raises(Unauthorized):
        authn.authenticate("carol", "x")


def test_cache_skips_bcrypt_on_second_login_and_never_on_wrong_password() -> None:
    cache = CredentialCache(b"k" * 32, ttl=60, local=LocalCache(100))
    authn = Authenticator([_static(alice="pw")], cache, dummy_cost=4)
    assert authn.authenticate("alice", "pw").cache == "miss"
    assert authn.authenticate("alice", "pw").cache == "local"
    with pytest.raises(Unauthorized):
        authn.authenticate("alice", "wrong")


def test_cache_entry_dies_when_stored_hash_changes(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hash_password('old', 4)}\n")
    clock = Clock()
    cache = CredentialCache(b"k" * 32, ttl=3600, local=LocalCache(100, clock=clock))
    authn = Authenticator([HtpasswdFile(path, reload_interval=1, clock=clock)], cache, dummy_cost=4)
    authn.authenticate("alice", "old")
    assert authn.authenticate("alice", "old").cache == "local"
    path.write_text(f"alice:{hash_password('new', 4)}\n")
    clock.now += 2
    with pytest.raises(Unauthorized):
        authn.authenticate("alice", "old")  # cached, but for a hash that no longer exists
    assert authn.authenticate("alice", "new").cache == "miss"


def test_local_cache_expires_and_is_bounded() -> None:
    clock = Clock()
    lru = LocalCache(2, clock=clock)
    lru.put("a", 10)
    lru.put("b", 10)
    assert lru.get("a")
    lru.put("c", 10)  # evicts b, the least recently used
    assert not lru.get("b") and lru.get("a") and lru.get("c")
    clock.now += 11
    assert not lru.get("a")
    assert len(lru) == 1


def test_credential_key_is_keyed_and_unambiguous() -> None:
    k = credential_key(b"secret", "alice", "pw", b"$2y$hash")
    assert k != credential_key(b"other", "alice", "pw", b"$2y$hash")
    assert k != credential_key(b"secret", "alic", "epw", b"$2y$hash")  # no concatenation ambiguity
    assert "pw" not in k and len(k) == 64


def test_refresh_token_bound_to_user_and_password() -> None:
    tokens = RefreshTokens(b"s" * 32, max_age=3600)
    alice = Account("alice", b"$2y$04$" + b"a" * 53)
    token = tokens.issue(alice, "reg")
    assert tokens.verify(token, "reg", lambda name: alice if name == "alice" else None) is alice
    changed = Account("alice", b"$2y$04$" + b"b" * 53)
    with pytest.raises(Unauthorized, match="revoked"):
        tokens.verify(token, "reg", lambda name: changed)
    with pytest.raises(Unauthorized, match="revoked"):
        tokens.verify(token, "reg", lambda name: None)
    with pytest.raises(Unauthorized, match="invalid"):
        tokens.verify(token, "other-registry", lambda name: alice)
    with pytest.raises(Unauthorized, match="invalid"):
        tokens.verify(token[:-3] + "xyz", "reg", lambda name: alice)
    with pytest.raises(Unauthorized, match="invalid"):
        RefreshTokens(b"t" * 32, max_age=3600).verify(token, "reg", lambda name: alice)


# ----------------------------------------------------------------- the backend contract


def test_backends_answer_match_wrong_password_or_no_match(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hash_password('pw', 4)}\n")
    for backend in (HtpasswdFile(path), _static(alice="pw")):
        match = backend.authenticate("alice", "pw")
        assert isinstance(match, Account) and match.name == "alice"
        assert match.backend == backend.name and match.revision
        assert backend.lookup("alice") == match  # the cheap half gives the same revision
        assert backend.authenticate("alice", "nope") == "wrong_password"
        assert backend.authenticate("bob", "pw") == "no_match"


def test_static_revision_changes_with_its_config_entry() -> None:
    hashed = hash_password("pw", 4)
    before = StaticUsers({"a": StaticUser(password_hash=hashed)})  # type: ignore[arg-type]
    relabelled = StaticUsers({"a": StaticUser(password_hash=hashed, labels={"g": ["x"]})})  # type: ignore[arg-type]
    same = StaticUsers({"a": StaticUser(password_hash=hashed)})  # type: ignore[arg-type]
    rev = before.lookup("a").revision  # type: ignore[union-attr]
    assert rev == same.lookup("a").revision  # type: ignore[union-attr]
    assert rev != relabelled.lookup("a").revision  # type: ignore[union-attr]
    assert hashed.encode() not in rev  # the revision does not expose the hash


class _Unreachable:
    """A backend that cannot decide, as a dead directory would be."""

    name = "dead"
    throttled = True
    by_token = False

    def lookup(self, username: str) -> Account | None:
        raise BackendError("directory unreachable")

    def authenticate(self, username: str, password: str) -> Account | str:
        raise BackendError("directory unreachable")

    def health(self) -> tuple[bool, str]:
        return False, "unreachable"

    def typical_cost(self) -> int | None:
        return None

    def close(self) -> None:
        pass


def test_a_backend_that_cannot_decide_is_an_error_not_a_refusal() -> None:
    authn = Authenticator([_static(alice="pw"), _Unreachable()], None, dummy_cost=4)  # type: ignore[list-item]
    assert authn.authenticate("alice", "pw").user.backend == "static"  # decided before it
    with pytest.raises(BackendError):
        authn.authenticate("bob", "pw")


def test_refresh_token_revoked_when_static_entry_changes() -> None:
    tokens = RefreshTokens(b"s" * 32, max_age=3600)
    old = _static(alice="one").lookup("alice")
    new = _static(alice="two").lookup("alice")
    assert old is not None and new is not None
    token = tokens.issue(old, "reg")
    assert tokens.verify(token, "reg", lambda name: old) is old
    with pytest.raises(Unauthorized, match="revoked"):
        tokens.verify(token, "reg", lambda name: new)


def test_unknown_kids_refresh_the_jwks_at_most_once_per_min_refresh() -> None:
    from keelhaul.auth.authn.oidc import OidcIssuer
    from keelhaul.auth.authn.options import OidcOptions

    fetched: list[str] = []

    def http(url: str) -> dict[str, object]:
        fetched.append(url)
        return {"keys": []}

    clock = Clock()
    options = OidcOptions(
        kind="oidc", issuer="https://ci", jwks_url="https://ci/jwks", audiences=["r"]
    )
    issuer = OidcIssuer(options, clock=clock, http=http)
    forged = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJpc3MiOiJodHRwczovL2NpIn0.c2ln"
    for _ in range(5):
        with pytest.raises(Unauthorized, match="unknown signing key"):
            issuer.verify(forged)
    assert fetched == ["https://ci/jwks"]
    clock.now += options.min_refresh + 1
    with pytest.raises(Unauthorized, match="unknown signing key"):
        issuer.verify(forged)
    assert len(fetched) == 2
