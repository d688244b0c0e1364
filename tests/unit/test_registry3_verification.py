"""keelhaul's tokens against distribution 3.x's verification order, transcribed from its source.

``Token.VerifySigningKey`` (registry/auth/token/token.go, identical at v3.0.0 and v3.1.0):

1. ``verifyCertChain``: the header's ``x5c`` chain is verified against the ``rootcertbundle``
   pool; if that fails for any reason but ``jose.ErrMissingX5cHeader`` the token is rejected.
2. Only without ``x5c``: ``header.JSONWebKey`` -> ``verifyJWK`` (a JWK without certificates
   must be a trusted key by its ``kid``);
3. else ``header.KeyID`` looked up in ``TrustedKeys``, "token signed by untrusted key" if absent;
4. else ``ErrInvalidToken``.

``TrustedKeys`` (``newAccessController``, registry/auth/token/accesscontroller.go): each
``rootcertbundle`` certificate's key under ``GetRFC7638Thumbprint`` (v3.0.0, util.go: for
ECDSA it hashes ``params.Gx``/``params.Gy``, the curve generator) or ``GetJWKThumbprint``
(v3.1.0, util.go ``getJWKThumbprint``: the key's own ``X.Bytes()``/``Y.Bytes()``), then
every ``jwks`` key under its ``KeyID``. ``NewToken`` parses with the configured
``signingalgorithms`` only; ``Token.Verify`` then checks signature, issuer, audience,
``exp`` and ``nbf``. The thumbprints below are written out again here from util.go, not
taken from keelhaul.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keelhaul.auth.keygen import generate_keypair
from keelhaul.auth.settings import KeyPair, TokenSettings
from keelhaul.auth.signing import KeyRing

pytestmark = pytest.mark.unit

ISSUER, SERVICE = "keelhaul-test", "registry.test"
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class Rejected(Exception):
    """What the registry answers with ErrInvalidToken / an error."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _go_bytes(value: int) -> bytes:  # big.Int.Bytes()
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _hash_and_encode(payload: str) -> str:  # util.go hashAndEncode
    return _b64(hashlib.sha256(payload.encode()).digest())


def thumbprint(key: PublicKey, version: str) -> str:
    """util.go: ``GetRFC7638Thumbprint`` (3.0.0) / ``getJWKThumbprint`` (3.1.0)."""
    if isinstance(key, rsa.RSAPublicKey):
        n = key.public_numbers()
        return _hash_and_encode(
            f'{{"e":"{_b64(_go_bytes(n.e))}","kty":"RSA","n":"{_b64(_go_bytes(n.n))}"}}'
        )
    if version == "3.0.0":  # params.Gx / params.Gy: the generator = public point of scalar 1
        point = ec.derive_private_key(1, ec.SECP256R1()).public_key().public_numbers()
    else:
        point = key.public_numbers()
    return _hash_and_encode(
        f'{{"crv":"P-256","kty":"EC","x":"{_b64(_go_bytes(point.x))}",'
        f'"y":"{_b64(_go_bytes(point.y))}"}}'
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class Registry3:
    """The token access controller's verification state (accesscontroller.go)."""

    version: str
    roots: tuple[x509.Certificate, ...]
    trusted: Mapping[str, PublicKey]
    algorithms: tuple[str, ...]

    @classmethod
    def configure(
        cls,
        version: str,
        *,
        rootcertbundle: bytes | None,
        jwks: Mapping[str, list[dict[str, str]]] | None,
        algorithms: tuple[str, ...],
    ) -> Registry3:
        roots = tuple(x509.load_pem_x509_certificates(rootcertbundle)) if rootcertbundle else ()
        trusted: dict[str, PublicKey] = {}
        for cert in roots:  # later certificates overwrite earlier ones with the same id
            key = cert.public_key()
            assert isinstance(key, PublicKey)
            trusted[thumbprint(key, version)] = key
        for jwk in (jwks or {}).get("keys", []):
            key = jwt.PyJWK(jwk).key
            assert isinstance(key, PublicKey)
            trusted[jwk["kid"]] = key
        return cls(version, roots, trusted, algorithms)

    def _verify_cert_chain(self, x5c: list[str]) -> PublicKey:
        """verifyCertChain: leaf x5c[0], intermediates x5c[1:], must end in a root."""
        chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in x5c]
        now = datetime.now(UTC)
        cert = chain[0]
        pool = chain[1:]
        for _ in range(len(chain) + 1):
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                raise Rejected("x509: certificate has expired or is not yet valid")
            if cert in self.roots:
                key = chain[0].public_key()
                assert isinstance(key, PublicKey)
                return key
            issuers = [c for c in (*pool, *self.roots) if c.subject == cert.issuer]
            for issuer in issuers:
                if _issued_by(cert, issuer):
                    cert = issuer
                    break
            else:
                raise Rejected("x509: certificate signed by unknown authority")
        raise Rejected("x509: chain too long")

    def verify_signing_key(self, header: Mapping[str, object]) -> PublicKey:
        """token.go ``Token.VerifySigningKey``."""
        x5c = header.get("x5c")
        if x5c:
            assert isinstance(x5c, list)
            return self._verify_cert_chain(x5c)  # any error here is final
        jwk = header.get("jwk")
        if jwk is not None:
            assert isinstance(jwk, dict)
            if "x5c" not in jwk:
                if jwk.get("kid") not in self.trusted:
                    raise Rejected("untrusted JWK with no certificate chain")
                return self.trusted[jwk["kid"]]
            return self._verify_cert_chain(jwk["x5c"])
        kid = header.get("kid")
        if kid:
            assert isinstance(kid, str)
            if kid not in self.trusted:
                raise Rejected(f"token signed by untrusted key with ID: {kid!r}")
            return self.trusted[kid]
        raise Rejected("invalid token")

    def verify(self, token: str) -> dict[str, object]:
        """token.go ``NewToken`` (allowed algorithms) + ``Token.Verify``."""
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in self.algorithms:
            raise Rejected("malformed token")
        key = self.verify_signing_key(header)
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                audience=SERVICE,
                issuer=ISSUER,
                options={"require": ["exp", "nbf"]},
            )
        except jwt.InvalidTokenError as exc:
            raise Rejected(str(exc)) from None
        return claims


def claims() -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    return {"iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 300, "nbf": now}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    directory = tmp_path_factory.mktemp("keys")
    return {
        "ES256": generate_keypair(directory, name="ec"),
        "RS256": generate_keypair(directory, algorithm="RS256", name="rsa"),
    }


KID_FORMATS = ("rfc7638", "libtrust", "distribution-3.0.0")
# (version, trust, include_x5c, algorithm, kid_format) -> accepted, derived by hand from the
# order above: with x5c the chain decides (jwks alone has no roots: rejected); without x5c
# the kid must be a trusted key id: jwks names keys by keelhaul's own kid; a rootcertbundle
# by 3.1's real thumbprint (rfc7638; RSA also under 3.0.0's) or 3.0.0's generator
# thumbprint (distribution-3.0.0; RSA: rfc7638 too). libtrust ids are never 3.x ids.
EXPECTED: dict[tuple[str, str, bool, str], set[str]] = {
    ("3.1.0", "bundle", True, "ES256"): set(KID_FORMATS),
    ("3.1.0", "bundle", True, "RS256"): set(KID_FORMATS),
    ("3.0.0", "bundle", True, "ES256"): set(KID_FORMATS),
    ("3.0.0", "bundle", True, "RS256"): set(KID_FORMATS),
    ("3.1.0", "bundle", False, "ES256"): {"rfc7638"},
    ("3.1.0", "bundle", False, "RS256"): {"rfc7638", "distribution-3.0.0"},
    ("3.0.0", "bundle", False, "ES256"): {"distribution-3.0.0"},
    ("3.0.0", "bundle", False, "RS256"): {"rfc7638", "distribution-3.0.0"},
    ("3.1.0", "jwks", True, "ES256"): set(),
    ("3.1.0", "jwks", True, "RS256"): set(),
    ("3.0.0", "jwks", True, "ES256"): set(),
    ("3.0.0", "jwks", True, "RS256"): set(),
    ("3.1.0", "jwks", False, "ES256"): set(KID_FORMATS),
    ("3.1.0", "jwks", False, "RS256"): set(KID_FORMATS),
    ("3.0.0", "jwks", False, "ES256"): set(KID_FORMATS),
    ("3.0.0", "jwks", False, "RS256"): set(KID_FORMATS),
}


@pytest.mark.parametrize("kid_format", KID_FORMATS)
@pytest.mark.parametrize("include_x5c", [True, False])
@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
@pytest.mark.parametrize("trust", ["bundle", "jwks"])
@pytest.mark.parametrize("version", ["3.0.0", "3.1.0"])
def test_keelhaul_tokens_under_registry_3(
    keys: dict[str, KeyPair],
    version: str,
    trust: str,
    algorithm: str,
    include_x5c: bool,
    kid_format: str,
) -> None:
    token_settings = TokenSettings.model_validate(
        {
            "issuer": ISSUER,
            "service": SERVICE,
            "algorithm": algorithm,
            "keys": [keys[algorithm]],
            "kid_format": kid_format,
            "include_x5c": include_x5c,
        }
    )
    ring = KeyRing.from_settings(token_settings)
    registry = Registry3.configure(
        version,
        rootcertbundle=ring.bundle_pem() if trust == "bundle" else None,
        jwks=ring.jwks() if trust == "jwks" else None,
        algorithms=(algorithm,),  # what keelhaul's registry configuration pins
    )
    token = ring.sign(claims())
    accepted = kid_format in EXPECTED[(version, trust, include_x5c, algorithm)]
    if accepted:
        assert registry.verify(token)["sub"] == "alice"
    else:
        with pytest.raises(Rejected):
            registry.verify(token)


def test_pinned_algorithms_refuse_the_other_one(keys: dict[str, KeyPair]) -> None:
    ring = KeyRing.from_settings(
        TokenSettings.model_validate(
            {"issuer": ISSUER, "service": SERVICE, "algorithm": "RS256", "keys": [keys["RS256"]]}
        )
    )
    registry = Registry3.configure(
        "3.1.0", rootcertbundle=ring.bundle_pem(), jwks=None, algorithms=("ES256",)
    )
    with pytest.raises(Rejected, match="malformed"):
        registry.verify(ring.sign(claims()))


def test_a_foreign_x5c_is_final_even_with_a_trusted_kid(
    keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    """3.x never falls back to kid when the x5c chain fails (token.go VerifySigningKey)."""
    ring = KeyRing.from_settings(
        TokenSettings.model_validate(
            {"issuer": ISSUER, "service": SERVICE, "keys": [keys["ES256"]]}
        )
    )
    stranger = KeyRing.from_settings(
        TokenSettings.model_validate(
            {"issuer": ISSUER, "service": SERVICE, "keys": [generate_keypair(tmp_path)]}
        )
    )
    registry = Registry3.configure(
        "3.1.0", rootcertbundle=ring.bundle_pem(), jwks=None, algorithms=("ES256",)
    )
    token = ring.sign(claims())
    header, payload, signature = token.split(".")
    forged_header = json.loads(base64.urlsafe_b64decode(header + "=="))
    forged_header["x5c"] = stranger.signer.header["x5c"]
    forged = ".".join([_b64(json.dumps(forged_header).encode()), payload, signature])
    assert registry.verify(token)["sub"] == "alice"
    with pytest.raises(Rejected, match="unknown authority"):
        registry.verify(forged)
