"""Creating a signing key and its self-signed certificate (``keelhaul auth keygen``, the stack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from keelhaul.atomicfile import write_bytes
from keelhaul.auth.keyfiles import MIN_RSA_BITS
from keelhaul.auth.kids import Algorithm, PrivateKey
from keelhaul.auth.settings import KeyPair

__all__ = ["generate_keypair"]


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


def _ec_key_with_full_coordinates() -> ec.EllipticCurvePrivateKey:
    """A P-256 key whose X and Y need all 32 bytes (about 127 in 128 keys do).

    For the others RFC 7638 (fixed-length coordinates) and Go's thumbprint in registry 3.1
    (``big.Int.Bytes()``, leading zeros dropped) disagree, so a ``kid`` would not be found
    in a ``rootcertbundle`` without ``x5c``. Such keys are simply drawn again.
    """
    while True:
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        if numbers.x.bit_length() > 248 and numbers.y.bit_length() > 248:
            return key


def _write_private(path: Path, data: bytes) -> None:
    """Mode 0600 from the start, so the key is never readable by others; never replaced."""
    write_bytes(path, data, mode=0o600, exclusive=True, error=None)


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
    if rsa_bits < MIN_RSA_BITS:
        raise ValueError(f"rsa_bits must be at least {MIN_RSA_BITS}")
    private_key: PrivateKey
    if algorithm == "ES256":
        private_key = _ec_key_with_full_coordinates()
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
    write_bytes(
        cert_path, cert.public_bytes(serialization.Encoding.PEM), exclusive=True, error=None
    )
    return KeyPair(key=key_path, cert=cert_path)
