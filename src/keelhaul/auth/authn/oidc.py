"""CI workload identity: an OIDC identity token (GitHub Actions, GitLab CI) as the password.

``docker login -u anything --password-stdin <<< "$ID_TOKEN"``: the token, not the user
name, says who logs in. It is verified against the trusted issuer's keys (JWKS, from the
configured URL or the issuer's discovery document): signature with an allowed asymmetric
algorithm only (never ``none``, never HMAC, whose "secret" would be the public key),
issuer, audience, ``exp``/``nbf``/``iat`` with a leeway. Claim rules then make the account
name (``account: "gha:{repository}"``), the labels (``labels: {repository: repository}``)
and the conditions (``require: {ref_protected: ["true"]}``).

Keys are cached; an unknown ``kid`` triggers a refresh at most every ``min_refresh``
seconds (a flood of forged kids cannot hammer the issuer), and the issuer being down never
stops logins whose key is cached. Verifying a signature is cheap and an identity token
cannot be guessed, so these logins bypass the credential cache and the throttle.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt

from keelhaul.auth.authn import Account, Events, Outcome, labels_of
from keelhaul.auth.authn.options import OidcOptions
from keelhaul.errors import Unauthorized

__all__ = ["OidcIssuer"]

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")


def _claim_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class OidcIssuer:
    kind = "oidc"
    throttled = False
    by_token = True

    def __init__(
        self,
        options: OidcOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        http: Callable[[str], Any] | None = None,
    ) -> None:
        self.name = options.name or options.kind
        self.events = Events()
        self._o = options
        self._clock = clock
        self._get = http or (lambda url: httpx.get(url, timeout=options.http_timeout).json())
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = float("-inf")
        self._attempted = float("-inf")
        self._lock = threading.Lock()
        self._error = ""

    # ------------------------------------------------------------------ keys

    def _jwks_url(self) -> str:
        if self._o.jwks_url:
            return self._o.jwks_url
        discovery = self._get(self._o.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if not isinstance(discovery, dict) or discovery.get("issuer") != self._o.issuer:
            raise ValueError("discovery document names another issuer")
        return str(discovery["jwks_uri"])

    def _refresh(self) -> None:
        """Fetch the JWKS, at most once per ``min_refresh``; keep the old keys on failure."""
        with self._lock:
            now = self._clock()
            if now - self._attempted < self._o.min_refresh:
                return
            self._attempted = now
            try:
                document = self._get(self._jwks_url())
                keys = {}
                for jwk in document.get("keys", []):
                    if jwk.get("kid") and jwk.get("use", "sig") == "sig":
                        try:
                            keys[str(jwk["kid"])] = jwt.PyJWK(jwk)
                        except jwt.PyJWTError:
                            continue  # a key type or algorithm we do not accept
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
                self._error = type(exc).__name__
                self.events.note("jwks_fetch_failed")
                log.error("oidc %s: cannot fetch keys (%s); using cached keys", self.name, exc)
                return
            self._keys = keys
            self._fetched = now
            self.events.note("jwks_fetch")
            self._error = ""

    def _key(self, kid: str) -> jwt.PyJWK | None:
        if kid not in self._keys:
            self.events.note("unknown_kid")
            self._refresh()
        elif self._clock() - self._fetched > self._o.jwks_ttl:
            self._refresh()
        return self._keys.get(kid)

    # ------------------------------------------------------------------ verification

    def _refuse(self, why: str) -> Unauthorized:
        return Unauthorized(f"identity token refused: {why}")

    def verify(self, token: str) -> Account:
        """The account the token stands for; Unauthorized with the reason otherwise."""
        o = self._o
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise self._refuse("not a JWT") from None
        alg = header.get("alg")
        if alg not in o.algorithms:
            raise self._refuse(f"algorithm {alg!r} not allowed")
        key = self._key(str(header.get("kid", "")))
        if key is None:
            raise self._refuse("unknown signing key (kid)")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=list(o.audiences),
                issuer=o.issuer,
                leeway=o.leeway,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise self._refuse("expired") from None
        except jwt.ImmatureSignatureError:
            raise self._refuse("not yet valid") from None
        except jwt.InvalidAudienceError:
            raise self._refuse("audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise self._refuse("issuer not trusted") from None
        except jwt.InvalidSignatureError:
            raise self._refuse("bad signature") from None
        except jwt.PyJWTError as exc:
            raise self._refuse(f"invalid ({type(exc).__name__})") from None
        for claim, allowed in o.require.items():
            if claim not in claims or _claim_text(claims[claim]) not in allowed:
                raise self._refuse(f"claim {claim!r} does not satisfy the rules")
        account = self._template(o.account, claims)
        from_claims = {
            label: [_claim_text(claims[claim])]
            for label, claim in o.claim_labels.items()
            if claim in claims
        }
        labels = labels_of(from_claims, o.labels.get(account, {}))
        return Account(
            account,
            b"oidc:" + str(claims.get("jti", "")).encode(),
            labels,
            self.name,
            by_token=True,
            details={c: _claim_text(claims[c])[:256] for c in o.audit_claims if c in claims},
        )

    def _template(self, template: str, claims: Mapping[str, Any]) -> str:
        def fill(m: re.Match[str]) -> str:
            if m.group(1) not in claims:
                raise self._refuse(f"claim {m.group(1)!r} missing")
            return _claim_text(claims[m.group(1)])

        return _PLACEHOLDER.sub(fill, template)

    def claims_issuer(self, token: str) -> bool:
        """Whether the (unverified) token names this issuer: which backend should verify it."""
        try:
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return False
        return bool(iss == self._o.issuer)

    # ------------------------------------------------------------------ the contract

    def lookup(self, username: str) -> Account | None:
        return None  # the token says who it is, not the user name

    def authenticate(self, username: str, password: str) -> Outcome:
        if not self.claims_issuer(password):
            return "no_match"
        return self.verify(password)

    def health(self) -> tuple[bool, str]:
        if self._error:
            return False, f"keys unavailable ({self._error}); {len(self._keys)} cached keys in use"
        return True, f"{len(self._keys)} keys"

    def typical_cost(self) -> int | None:
        return None

    def close(self) -> None:
        pass
