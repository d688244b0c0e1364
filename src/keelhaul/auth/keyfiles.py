"""Reading and checking the configured key and certificate files, every problem at once.

A key ring must not start with a key the registry will reject later, so everything a
registry or a client would trip on (swapped files, wrong curve, short RSA, expired or
not-yet-valid certificates, a certificate of another key) is a problem that stops the
start; what merely deserves a look (expiry soon, loose file mode) is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from keelhaul.auth.kids import Algorithm, PrivateKey
from keelhaul.auth.settings import KeyPair

__all__ = ["EXPIRY_WARNING_DAYS", "MIN_RSA_BITS", "Findings", "load_pair", "spki"]

EXPIRY_WARNING_DAYS = 14
"""A certificate expiring within this many days loads, with a warning in ``KeyRing.warnings``."""

MIN_RSA_BITS = 2048

_KEY_KINDS: tuple[tuple[type[object], str], ...] = (
    (rsa.RSAPrivateKey, "an RSA"),
    (ec.EllipticCurvePrivateKey, "an EC"),
    (ed25519.Ed25519PrivateKey, "an Ed25519"),
    (ed448.Ed448PrivateKey, "an Ed448"),
    (dsa.DSAPrivateKey, "a DSA"),
)


@dataclass
class Findings:
    """What loading found: problems stop the start, warnings are for doctor/health."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def spki(key: object) -> bytes | None:
    """The key's SubjectPublicKeyInfo DER (its identity), or None if not EC/RSA public."""
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return None


def _read(where: str, path: Path, found: Findings) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        found.problems.append(f"{where}: {path} does not exist")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        found.problems.append(f"{where}: {path} cannot be read: {reason}")
    return None


def _load_private_key(
    where: str, path: Path, algorithm: Algorithm, found: Findings
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
        if key.key_size < MIN_RSA_BITS:
            problems.append(
                f"{where}: is a {key.key_size}-bit RSA key; RS256 needs at least "
                f"{MIN_RSA_BITS} bits"
            )
            return None
        return key
    kind = next((name for cls, name in _KEY_KINDS if isinstance(key, cls)), "an unsupported")
    problems.append(f"{where}: is {kind} key but token.algorithm is {algorithm}")
    return None


def _check_mode(where: str, path: Path, found: Findings) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o077:
        found.warnings.append(f"{where}: {path} has mode {mode:04o}; restrict it with chmod 600")


def _load_certificates(
    where: str, path: Path, now: datetime, found: Findings
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


def _cert_spki(cert: x509.Certificate) -> bytes | None:
    try:
        return spki(cert.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return None


def load_pair(
    index: int,
    pair: KeyPair,
    algorithm: Algorithm,
    now: datetime,
    found: Findings,
) -> tuple[PrivateKey, list[x509.Certificate]] | None:
    """``token.keys[index]``'s key and chain (leaf first), or None with ``found`` told why."""
    key_where, cert_where = f"token.keys.{index}.key", f"token.keys.{index}.cert"
    private_key = _load_private_key(key_where, pair.key, algorithm, found)
    certificates = _load_certificates(cert_where, pair.cert, now, found)
    if private_key is None or certificates is None:
        return None
    own = spki(private_key.public_key())
    if _cert_spki(certificates[0]) != own:
        later = any(_cert_spki(c) == own for c in certificates[1:])
        hint = " (put the certificate of that key first in the file)" if later else ""
        found.problems.append(
            f"{cert_where}: certificate's public key does not match {key_where}{hint}"
        )
        return None
    return private_key, certificates
