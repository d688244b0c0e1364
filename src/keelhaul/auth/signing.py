"""Signing tokens: each key's JOSE header computed once, the key ring, JWKS and bundle.

Which ``kid`` a key gets is :mod:`keelhaul.auth.kids`; reading and checking the key files
is :mod:`keelhaul.auth.keyfiles`. How a CNCF distribution registry finds the key that
verifies a token (from its source):

* **2.8**: an ``x5c`` header is verified as a chain against ``rootcertbundle`` and ``kid`` is
  ignored; else ``jwk``; else ``kid`` is looked up by libtrust key id.
* **3.x** (``Token.VerifySigningKey``, registry/auth/token/token.go, 3.0.0 to 3.1.x): the
  ``x5c`` chain first, against ``rootcertbundle``; a chain that does not verify is final.
  Only without ``x5c``: the header's ``jwk``, else ``kid`` looked up in its trusted keys:
  each ``rootcertbundle`` certificate's key under its thumbprint (3.1: the real one,
  ``getJWKThumbprint``; 3.0.0: the curve generator's, every P-256 key alike; later
  certificates overwrite earlier ones with the same id) and each ``jwks`` key under its
  own ``kid``.

Everything per key (kid, header, certificate chain) is computed once when the ring is
loaded, so :meth:`KeyRing.sign` only serialises the claims and signs them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keelhaul.auth.keyfiles import Findings, load_pair, spki
from keelhaul.auth.kids import (
    Algorithm,
    PrivateKey,
    PublicKey,
    b64url,
    compute_kid,
    go_minimal_thumbprint,
    public_jwk,
)
from keelhaul.auth.settings import KidFormat, TokenSettings
from keelhaul.errors import ConfigError

__all__ = ["KeyRing", "SigningKey"]

_ES256 = ec.ECDSA(hashes.SHA256())
_PKCS1 = PKCS1v15()
_SHA256 = hashes.SHA256()


def _algorithm_of(private_key: PrivateKey) -> Algorithm:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "RS256"
    if private_key.curve.name == "secp256r1":
        return "ES256"
    raise ValueError(f"EC curve {private_key.curve.name} cannot sign ES256")


@dataclass(frozen=True)
class SigningKey:
    """One loaded key pair with everything :meth:`KeyRing.sign` needs, computed once."""

    private_key: PrivateKey = field(repr=False)
    public_key: PublicKey = field(repr=False)
    cert_chain_der: tuple[bytes, ...] = field(repr=False)
    kid: str
    alg: Algorithm
    not_after: datetime
    """Earliest ``notAfter`` in the chain: when registries start rejecting the ``x5c``."""
    header: dict[str, object] = field(repr=False, compare=False)
    """The JOSE header of every token this key signs. Treat as read-only."""
    header_segment: bytes = field(repr=False, compare=False, default=b"")
    """``base64url(header)``: constant per key, so encoded once, not per token."""

    @classmethod
    def build(
        cls,
        private_key: PrivateKey,
        certificates: Sequence[x509.Certificate],
        *,
        kid_format: KidFormat = "rfc7638",
        include_x5c: bool = True,
    ) -> SigningKey:
        """From a key and its certificate chain, leaf first (checked by the caller)."""
        if not certificates:
            raise ValueError("a signing key needs at least its own certificate")
        public_key = private_key.public_key()
        alg = _algorithm_of(private_key)
        kid = compute_kid(public_key, kid_format)
        chain = tuple(c.public_bytes(serialization.Encoding.DER) for c in certificates)
        header: dict[str, object] = {"typ": "JWT", "alg": alg, "kid": kid}
        if include_x5c:
            header["x5c"] = [base64.b64encode(der).decode("ascii") for der in chain]
        return cls(
            private_key=private_key,
            public_key=public_key,
            cert_chain_der=chain,
            kid=kid,
            alg=alg,
            not_after=min(c.not_valid_after_utc for c in certificates),
            header=header,
            header_segment=b64url(json.dumps(header, separators=(",", ":")).encode()).encode(),
        )


def _der_to_pem(der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


class KeyRing:
    """The token service's keys: the first signs, all are published (rotation without downtime)."""

    __slots__ = ("keys", "signer", "warnings")

    keys: tuple[SigningKey, ...]
    signer: SigningKey
    warnings: tuple[str, ...]
    """Loadable but worth a look (expiry soon, shared kids, loose file modes): for doctor/health."""

    def __init__(self, keys: Sequence[SigningKey], *, warnings: Sequence[str] = ()) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self.keys = tuple(keys)
        self.signer = self.keys[0]
        self.warnings = tuple(warnings)

    @classmethod
    def from_settings(cls, token: TokenSettings, *, now: datetime | None = None) -> KeyRing:
        """Read and check every configured pair; all problems are reported in one ConfigError."""
        moment = now if now is not None else datetime.now(UTC)
        found = Findings()
        keys: list[SigningKey] = []
        for index, pair in enumerate(token.keys):
            loaded = load_pair(index, pair, token.algorithm, moment, found)
            if loaded is not None:
                private_key, certificates = loaded
                keys.append(
                    SigningKey.build(
                        private_key,
                        certificates,
                        kid_format=token.kid_format,
                        include_x5c=token.include_x5c,
                    )
                )
        if found.problems:
            raise ConfigError("auth", found.problems)
        return cls(keys, warnings=[*found.warnings, *_ring_warnings(keys, token)])

    def sign(self, claims: Mapping[str, object]) -> str:
        """The compact JWS (RFC 7515) for ``claims``, signed by :attr:`signer`. The hot path.

        The header segment (with its ~1 KB ``x5c``) is encoded once per key; per token only
        the claims are serialised and signed. PyJWT, a transcription of registry
        3.x's verification and the real 2.8 registry check the result in the tests.
        """
        signer = self.signer
        body = claims if isinstance(claims, dict) else dict(claims)
        payload = b64url(json.dumps(body, separators=(",", ":")).encode()).encode()
        signing_input = signer.header_segment + b"." + payload
        key = signer.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(signing_input, _ES256))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = key.sign(signing_input, _PKCS1, _SHA256)
        return (signing_input + b"." + b64url(signature).encode()).decode("ascii")

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """``{"keys": [...]}`` for registry 3.x's ``auth.token.jwks`` file."""
        return {"keys": [public_jwk(k.public_key, kid=k.kid, alg=k.alg) for k in self.keys]}

    def bundle_pem(self) -> bytes:
        """Every certificate, PEM, for the registry's ``rootcertbundle``.

        The signer's leaf comes last: registry 3.x keeps the last certificate per kid, and
        3.0.0 files every P-256 key under one kid.
        """
        ordered = [der for key in self.keys[1:] for der in key.cert_chain_der]
        ordered += [*self.signer.cert_chain_der[1:], self.signer.cert_chain_der[0]]
        unique: list[bytes] = []
        for der in reversed(ordered):  # keep each certificate's last position
            if der not in unique:
                unique.append(der)
        return b"".join(_der_to_pem(der) for der in reversed(unique))


def _ring_warnings(keys: Sequence[SigningKey], token: TokenSettings) -> list[str]:
    warnings: list[str] = []
    if token.kid_format == "distribution-3.0.0":
        warnings.append(
            "token.kid_format: distribution-3.0.0 gives every P-256 key the same kid (that "
            "release's thumbprint of the curve generator); only a 3.0.0 registry verifying "
            "without x5c needs it: use rfc7638 for 3.1+ and 2.8"
        )
    first_by_kid: dict[str, int] = {}
    first_by_key: dict[bytes, int] = {}
    for index, key in enumerate(keys):
        identity = spki(key.public_key) or b""
        if identity in first_by_key:
            warnings.append(
                f"token.keys.{index}.key: same key as token.keys.{first_by_key[identity]}.key"
            )
            continue
        first_by_key[identity] = index
        if key.kid in first_by_kid:
            warnings.append(
                f"token.keys.{index}.key: same kid as token.keys.{first_by_kid[key.kid]}.key; "
                "registry 3.x resolves only one key per kid: for rotation use "
                "token.kid_format rfc7638"
            )
        else:
            first_by_kid[key.kid] = index
        if (
            token.kid_format == "rfc7638"
            and not token.include_x5c
            and go_minimal_thumbprint(key.public_key) != key.kid
        ):
            warnings.append(
                f"token.keys.{index}.key: a coordinate of this EC key starts with a zero byte, "
                "so registry 3.1's rootcertbundle thumbprint (Go's minimal bytes) differs from "
                "its RFC 7638 kid: give the registry the jwks (keelhaul auth jwks), turn "
                "token.include_x5c on, or use a new key (keelhaul auth keygen avoids such keys)"
            )
    return warnings
