"""Token signing for the Docker registry token spec: key ids, key rings, JWTs, key files.

How a CNCF distribution registry finds the key that verifies a token (from its source):

* **2.8**: an ``x5c`` header is verified as a chain against ``rootcertbundle`` and ``kid`` is
  ignored; else ``jwk``; else ``kid`` is looked up by libtrust key id (:func:`libtrust_kid`).
* **3.x**: ``jwk`` first; else ``kid``, looked up in its trusted keys and *rejected* when
  absent (no fall back to ``x5c``); else ``x5c``. Trusted keys are each ``rootcertbundle``
  certificate's key under :func:`registry_v3_kid` (later certificates overwrite earlier
  ones with the same id) and each key of its ``jwks`` file under that key's own ``kid``.

Everything per key (kid, header, certificate chain) is computed once when the ring is
loaded, so :meth:`KeyRing.sign` only serialises the claims and signs them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeAlias

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from keelhaul.auth.settings import KeyPair, KidFormat, TokenSettings
from keelhaul.errors import ConfigError, Unauthorized

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "Algorithm",
    "KeyRing",
    "PrivateKey",
    "PublicKey",
    "SigningKey",
    "compute_kid",
    "generate_keypair",
    "go_minimal_thumbprint",
    "jwk_thumbprint",
    "libtrust_kid",
    "public_jwk",
    "registry_v3_kid",
    "verify",
]

PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Algorithm = Literal["ES256", "RS256"]

EXPIRY_WARNING_DAYS = 14
"""A certificate expiring within this many days loads, with a warning in ``KeyRing.warnings``."""

_MIN_RSA_BITS = 2048
_ES256 = ec.ECDSA(hashes.SHA256())
_PKCS1 = PKCS1v15()
_SHA256 = hashes.SHA256()
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


# --------------------------------------------------------------------------- key ids


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _minimal(value: int) -> bytes:
    """Go's ``big.Int.Bytes()``: big-endian without leading zero bytes (empty for 0)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _sha256_b64url(payload: str) -> str:
    return _b64url(hashlib.sha256(payload.encode("ascii")).digest())


def _jose_curve(key: ec.EllipticCurvePublicKey) -> tuple[str, int]:
    try:
        return _CURVES[key.curve.name]
    except KeyError:
        raise ValueError(f"EC curve {key.curve.name} has no JOSE name") from None


def _rsa_members(key: rsa.RSAPublicKey) -> tuple[str, str]:
    numbers = key.public_numbers()
    return _b64url(_minimal(numbers.e)), _b64url(_minimal(numbers.n))


def _rsa_payload(key: rsa.RSAPublicKey) -> str:
    e, n = _rsa_members(key)
    return f'{{"e":"{e}","kty":"RSA","n":"{n}"}}'


def _ec_payload(crv: str, x: bytes, y: bytes) -> str:
    return f'{{"crv":"{crv}","kty":"EC","x":"{_b64url(x)}","y":"{_b64url(y)}"}}'


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


def registry_v3_kid(public_key: PublicKey) -> str:
    """The ``kid`` distribution 3.x files a ``rootcertbundle`` key under, bug for bug.

    Its ``GetRFC7638Thumbprint`` builds the RSA payload correctly (minimal ``e`` and ``n``),
    but for ECDSA it encodes the *curve generator* (``params.Gx``/``params.Gy``), not the
    key's X/Y. So every P-256 key gets the same id: with a ``rootcertbundle``, registry 3.x
    resolves only ONE EC key by ``kid`` (the last one in the bundle). For EC key rotation on
    3.x, give the registry the ring's :meth:`KeyRing.jwks` as its ``jwks`` file and use
    ``kid_format: rfc7638``.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        return _sha256_b64url(_rsa_payload(public_key))
    go_name, gx, gy = _generator(public_key.curve.name)
    return _sha256_b64url(_ec_payload(go_name, _minimal(gx), _minimal(gy)))


def compute_kid(public_key: PublicKey, kid_format: KidFormat) -> str:
    if kid_format == "registry-v3":
        return registry_v3_kid(public_key)
    if kid_format == "rfc7638":
        return jwk_thumbprint(public_key)
    if kid_format == "libtrust":
        return libtrust_kid(public_key)
    raise ValueError(f"unknown kid format {kid_format!r}")


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
        "x": _b64url(numbers.x.to_bytes(size, "big")),
        "y": _b64url(numbers.y.to_bytes(size, "big")),
        "kid": kid,
        "alg": alg,
        "use": "sig",
    }


# --------------------------------------------------------------------------- key ring


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
        kid_format: KidFormat = "registry-v3",
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
            header_segment=_b64url(json.dumps(header, separators=(",", ":")).encode()).encode(),
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
        found = _Findings()
        keys: list[SigningKey] = []
        for index, pair in enumerate(token.keys):
            loaded = _load_pair(index, pair, token.algorithm, moment, found)
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
        return cls(keys, warnings=[*found.warnings, *_ring_warnings(keys, token.kid_format)])

    def sign(self, claims: Mapping[str, object]) -> str:
        """The compact JWS (RFC 7515) for ``claims``, signed by :attr:`signer`. The hot path.

        The header segment (with its ~1 KB ``x5c``) is encoded once per key; per token only
        the claims are serialised and signed. ``verify`` (PyJWT) and the registry check the
        result in the tests.
        """
        signer = self.signer
        body = claims if isinstance(claims, dict) else dict(claims)
        payload = _b64url(json.dumps(body, separators=(",", ":")).encode()).encode()
        signing_input = signer.header_segment + b"." + payload
        key = signer.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(signing_input, _ES256))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = key.sign(signing_input, _PKCS1, _SHA256)
        return (signing_input + b"." + _b64url(signature).encode()).decode("ascii")

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """``{"keys": [...]}`` for registry 3.x's ``auth.token.jwks`` file."""
        return {"keys": [public_jwk(k.public_key, kid=k.kid, alg=k.alg) for k in self.keys]}

    def bundle_pem(self) -> bytes:
        """Every certificate, PEM, for the registry's ``rootcertbundle``.

        The signer's leaf comes last: registry 3.x keeps the last certificate per kid, and
        with ``kid_format: registry-v3`` all EC keys share one kid.
        """
        ordered = [der for key in self.keys[1:] for der in key.cert_chain_der]
        ordered += [*self.signer.cert_chain_der[1:], self.signer.cert_chain_der[0]]
        unique: list[bytes] = []
        for der in reversed(ordered):  # keep each certificate's last position
            if der not in unique:
                unique.append(der)
        return b"".join(_der_to_pem(der) for der in reversed(unique))


def _ring_warnings(keys: Sequence[SigningKey], kid_format: KidFormat) -> list[str]:
    warnings: list[str] = []
    first_by_kid: dict[str, int] = {}
    first_by_key: dict[bytes, int] = {}
    for index, key in enumerate(keys):
        spki = key.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if spki in first_by_key:
            warnings.append(
                f"token.keys.{index}.key: same key as token.keys.{first_by_key[spki]}.key"
            )
            continue
        first_by_key[spki] = index
        if key.kid in first_by_kid:
            hint = (
                " (every P-256 key has the same registry-v3 kid)"
                if kid_format == "registry-v3"
                else ""
            )
            warnings.append(
                f"token.keys.{index}.key: same kid as token.keys.{first_by_kid[key.kid]}.key"
                f"{hint}; registry 3.x resolves only one key per kid: for rotation on 3.x use "
                "token.kid_format rfc7638 and the registry's jwks option"
            )
        else:
            first_by_kid[key.kid] = index
    return warnings


# --------------------------------------------------------------------------- loading files

_KEY_KINDS: tuple[tuple[type[object], str], ...] = (
    (rsa.RSAPrivateKey, "an RSA"),
    (ec.EllipticCurvePrivateKey, "an EC"),
    (ed25519.Ed25519PrivateKey, "an Ed25519"),
    (ed448.Ed448PrivateKey, "an Ed448"),
    (dsa.DSAPrivateKey, "a DSA"),
)


@dataclass
class _Findings:
    """What loading found: problems stop the start, warnings are for doctor/health."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _read(where: str, path: Path, found: _Findings) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        found.problems.append(f"{where}: {path} does not exist")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        found.problems.append(f"{where}: {path} cannot be read: {reason}")
    return None


def _load_private_key(
    where: str, path: Path, algorithm: Algorithm, found: _Findings
) -> PrivateKey | None:
    problems = found.problems
    data = _read(where, path, found)
    if data is None:
        return None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        problems.append(
            f"{where}: {path} is encrypted; keelhaul needs an unencrypted PEM key "
            "(protect it with file mode 0600 instead)"
        )
        return None
    except (ValueError, UnsupportedAlgorithm):
        swapped = " (it holds a certificate: are key and cert swapped?)"
        hint = swapped if b"-----BEGIN CERTIFICATE" in data else ""
        problems.append(f"{where}: {path} is not a PEM private key{hint}")
        return None
    _check_mode(where, path, found)
    if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name != "secp256r1":
            problems.append(
                f"{where}: is an EC key on curve {key.curve.name} but ES256 needs P-256"
            )
            return None
        return key
    if algorithm == "RS256" and isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            problems.append(
                f"{where}: is a {key.key_size}-bit RSA key; RS256 needs at least "
                f"{_MIN_RSA_BITS} bits"
            )
            return None
        return key
    kind = next((name for cls, name in _KEY_KINDS if isinstance(key, cls)), "an unsupported")
    problems.append(f"{where}: is {kind} key but token.algorithm is {algorithm}")
    return None


def _check_mode(where: str, path: Path, found: _Findings) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o077:
        found.warnings.append(f"{where}: {path} has mode {mode:04o}; restrict it with chmod 600")


def _load_certificates(
    where: str, path: Path, now: datetime, found: _Findings
) -> list[x509.Certificate] | None:
    problems, warnings = found.problems, found.warnings
    data = _read(where, path, found)
    if data is None:
        return None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        problems.append(f"{where}: {path} holds no PEM certificate")
        return None
    ok = True
    for position, cert in enumerate(certificates):
        which = f"certificate {position + 1} in the file ({_subject(cert)}) " if position else ""
        not_after = cert.not_valid_after_utc
        if not_after < now:
            problems.append(f"{where}: {which}expired on {not_after.date().isoformat()}")
            ok = False
        elif not_after - now < timedelta(days=EXPIRY_WARNING_DAYS):
            warnings.append(
                f"{where}: {which}expires on {not_after.date().isoformat()}; "
                "rotate the key (add a new pair first in token.keys)"
            )
        if cert.not_valid_before_utc > now:
            problems.append(
                f"{where}: {which}is not valid before "
                f"{cert.not_valid_before_utc.isoformat()} (is the clock right?)"
            )
            ok = False
    return certificates if ok else None


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "unreadable subject"


def _spki(key: object) -> bytes | None:
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return None


def _cert_spki(cert: x509.Certificate) -> bytes | None:
    try:
        return _spki(cert.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return None


def _load_pair(
    index: int,
    pair: KeyPair,
    algorithm: Algorithm,
    now: datetime,
    found: _Findings,
) -> tuple[PrivateKey, list[x509.Certificate]] | None:
    key_where, cert_where = f"token.keys.{index}.key", f"token.keys.{index}.cert"
    private_key = _load_private_key(key_where, pair.key, algorithm, found)
    certificates = _load_certificates(cert_where, pair.cert, now, found)
    if private_key is None or certificates is None:
        return None
    own = _spki(private_key.public_key())
    if _cert_spki(certificates[0]) != own:
        later = any(_cert_spki(c) == own for c in certificates[1:])
        hint = " (put the certificate of that key first in the file)" if later else ""
        found.problems.append(
            f"{cert_where}: certificate's public key does not match {key_where}{hint}"
        )
        return None
    return private_key, certificates


# --------------------------------------------------------------------------- verify, generate


def verify(
    token: str, ring: KeyRing, *, audience: str, issuer: str, leeway: int = 0
) -> dict[str, object]:
    """The claims of ``token`` if a ring key signed it; raises :class:`Unauthorized` if not.

    Keys whose ``kid`` matches the header are tried first, then the others (kids collide
    under ``registry-v3``).
    """
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"malformed token: {exc}") from None
    candidates = sorted(ring.keys, key=lambda k: k.kid != kid)
    failure: jwt.InvalidTokenError | None = None
    for key in candidates:
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.alg],
                audience=audience,
                issuer=issuer,
                leeway=leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as exc:
            failure = exc
            continue
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"token rejected: {exc}") from None
        return claims
    raise Unauthorized(f"token rejected: {failure}")


def _self_signed(
    private_key: PrivateKey, common_name: str, now: datetime, days: int
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = private_key.public_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(private_key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    """Create with mode 0600 from the start, so the key is never readable by others."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(data)


def generate_keypair(
    directory: Path,
    *,
    algorithm: Algorithm = "ES256",
    common_name: str = "keelhaul token signer",
    days: int = 365,
    name: str = "token",
    rsa_bits: int = 2048,
    now: datetime | None = None,
    overwrite: bool = False,
) -> KeyPair:
    """Write ``{name}.key`` (PKCS8 PEM, 0600) and a self-signed CA ``{name}.crt``.

    The certificate is its own root (CA:true, digitalSignature + keyCertSign), so it goes
    into the registry's ``rootcertbundle`` as is. Refuses to replace existing files unless
    ``overwrite``.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if rsa_bits < _MIN_RSA_BITS:
        raise ValueError(f"rsa_bits must be at least {_MIN_RSA_BITS}")
    private_key: PrivateKey
    if algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    moment = now if now is not None else datetime.now(UTC)
    cert = _self_signed(private_key, common_name, moment, days)
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (key_path, cert_path):
        if path.exists() or path.is_symlink():
            if not overwrite:
                raise FileExistsError(f"{path} already exists; refusing to replace it")
            path.unlink()
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_path, key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return KeyPair(key=key_path, cert=cert_path)
