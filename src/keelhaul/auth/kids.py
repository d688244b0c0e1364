"""Key ids and public JWKs: the ``kid`` formats registries look keys up by (pure).

* ``rfc7638`` (default): the RFC 7638 JWK thumbprint of the key, what distribution 3.1+
  computes for ``rootcertbundle`` keys (``registry/auth/token/util.go``,
  ``getJWKThumbprint``) and what a ``jwks`` file names keys by.
* ``libtrust``: registry 2.8's id, looked up when a token has neither ``x5c`` nor ``jwk``.
* ``distribution-3.0.0``: distribution 3.0.0's ``GetRFC7638Thumbprint`` bug, which hashed
  the curve's generator point, so every P-256 key gets one id. Only for a 3.0.0 registry
  verifying without ``x5c``; keelhaul warns at start when it is chosen.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Literal, TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keelhaul.auth.settings import KidFormat

__all__ = [
    "Algorithm",
    "PrivateKey",
    "PublicKey",
    "b64url",
    "compute_kid",
    "distribution_300_kid",
    "go_minimal_thumbprint",
    "jwk_thumbprint",
    "libtrust_kid",
    "public_jwk",
]

PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Algorithm = Literal["ES256", "RS256"]

# cryptography curve name -> (JOSE / Go ``params.Name``, coordinate size in bytes)
_CURVES: dict[str, tuple[str, int]] = {
    "secp256r1": ("P-256", 32),
    "secp384r1": ("P-384", 48),
    "secp521r1": ("P-521", 66),
}
_GO_CURVES: dict[str, tuple[str, type[ec.EllipticCurve]]] = {
    "secp224r1": ("P-224", ec.SECP224R1),
    "secp256r1": ("P-256", ec.SECP256R1),
    "secp384r1": ("P-384", ec.SECP384R1),
    "secp521r1": ("P-521", ec.SECP521R1),
}


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _minimal(value: int) -> bytes:
    """Go's ``big.Int.Bytes()``: big-endian without leading zero bytes (empty for 0)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _sha256_b64url(payload: str) -> str:
    return b64url(hashlib.sha256(payload.encode("ascii")).digest())


def _jose_curve(key: ec.EllipticCurvePublicKey) -> tuple[str, int]:
    try:
        return _CURVES[key.curve.name]
    except KeyError:
        raise ValueError(f"EC curve {key.curve.name} has no JOSE name") from None


def _rsa_members(key: rsa.RSAPublicKey) -> tuple[str, str]:
    numbers = key.public_numbers()
    return b64url(_minimal(numbers.e)), b64url(_minimal(numbers.n))


def _rsa_payload(key: rsa.RSAPublicKey) -> str:
    e, n = _rsa_members(key)
    return f'{{"e":"{e}","kty":"RSA","n":"{n}"}}'


def _ec_payload(crv: str, x: bytes, y: bytes) -> str:
    return f'{{"crv":"{crv}","kty":"EC","x":"{b64url(x)}","y":"{b64url(y)}"}}'


def libtrust_kid(public_key: PublicKey) -> str:
    """libtrust key id (registry 2.8 ``kid``): SHA-256 of the PKIX DER, 240 bits, base32."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def jwk_thumbprint(public_key: PublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256): EC coordinates fixed-length (RFC 7518 §6.2.1.2)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return _sha256_b64url(_rsa_payload(public_key))
    crv, size = _jose_curve(public_key)
    numbers = public_key.public_numbers()
    return _sha256_b64url(
        _ec_payload(crv, numbers.x.to_bytes(size, "big"), numbers.y.to_bytes(size, "big"))
    )


def go_minimal_thumbprint(public_key: PublicKey) -> str:
    """RFC 7638 layout, but EC coordinates as Go's ``big.Int.Bytes()`` (no leading zeros).

    What several Go token servers (e.g. docker_auth) compute. It differs from
    :func:`jwk_thumbprint` for the ~1 in 128 P-256 keys whose X or Y starts with a zero byte.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        return _sha256_b64url(_rsa_payload(public_key))
    crv, _ = _jose_curve(public_key)
    numbers = public_key.public_numbers()
    return _sha256_b64url(_ec_payload(crv, _minimal(numbers.x), _minimal(numbers.y)))


@functools.cache
def _generator(curve_name: str) -> tuple[str, int, int]:
    """(Go name, Gx, Gy): the public point of the private scalar 1 is the generator."""
    try:
        go_name, curve_type = _GO_CURVES[curve_name]
    except KeyError:
        raise ValueError(f"EC curve {curve_name} is not supported by Go's crypto/ecdsa") from None
    point = ec.derive_private_key(1, curve_type()).public_key().public_numbers()
    return go_name, point.x, point.y


def distribution_300_kid(public_key: PublicKey) -> str:
    """The ``kid`` distribution 3.0.0 files a ``rootcertbundle`` key under, bug for bug.

    Its ``GetRFC7638Thumbprint`` builds the RSA payload correctly (minimal ``e`` and ``n``),
    but for ECDSA it encodes the *curve generator* (``params.Gx``/``params.Gy``), not the
    key's X/Y, so every P-256 key gets the same id. 3.1.0 fixed it (``getJWKThumbprint``).
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        return _sha256_b64url(_rsa_payload(public_key))
    go_name, gx, gy = _generator(public_key.curve.name)
    return _sha256_b64url(_ec_payload(go_name, _minimal(gx), _minimal(gy)))


_KID_FUNCTIONS = {
    "rfc7638": jwk_thumbprint,
    "libtrust": libtrust_kid,
    "distribution-3.0.0": distribution_300_kid,
}


def compute_kid(public_key: PublicKey, kid_format: KidFormat) -> str:
    try:
        function = _KID_FUNCTIONS[kid_format]
    except KeyError:
        raise ValueError(f"unknown kid format {kid_format!r}") from None
    return function(public_key)


def public_jwk(public_key: PublicKey, *, kid: str, alg: str) -> dict[str, str]:
    """A public JWK as go-jose parses it (EC coordinates must be fixed-length)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        e, n = _rsa_members(public_key)
        return {"kty": "RSA", "n": n, "e": e, "kid": kid, "alg": alg, "use": "sig"}
    crv, size = _jose_curve(public_key)
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": crv,
        "x": b64url(numbers.x.to_bytes(size, "big")),
        "y": b64url(numbers.y.to_bytes(size, "big")),
        "kid": kid,
        "alg": alg,
        "use": "sig",
    }
