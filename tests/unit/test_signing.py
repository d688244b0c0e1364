"""Key ids, key ring loading and token signing (keelhaul.auth.kids, keyfiles, keygen, signing)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keelhaul.auth.keygen import generate_keypair
from keelhaul.auth.kids import (
    compute_kid,
    distribution_300_kid,
    go_minimal_thumbprint,
    jwk_thumbprint,
    libtrust_kid,
    public_jwk,
)
from keelhaul.auth.settings import KeyPair, TokenSettings
from keelhaul.auth.signing import KeyRing
from keelhaul.errors import ConfigError, Unauthorized
from support.tokenverify import verify

pytestmark = pytest.mark.unit

ISSUER, SERVICE = "keelhaul-test", "registry.test"

# P-256 generator (SEC 2 / FIPS 186-4), what distribution 3.0.0 hashes for every EC key.
P256_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
P256_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

# The private scalar 43 is the smallest whose P-256 public Y starts with a 0x00 byte.
LEADING_ZERO_D = 43


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def sha256_b64url(text: str) -> str:
    return b64url(hashlib.sha256(text.encode("ascii")).digest())


def minimal(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def write_pair(directory: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> KeyPair:
    """A given key (0600) and a self-signed certificate for it."""
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test signer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "given.key", directory / "given.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return KeyPair(key=key_path, cert=cert_path)


def claims(**extra: object) -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    base: dict[str, object] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "test-jti",
        "access": [{"type": "repository", "name": "team/app", "actions": ["pull"]}],
    }
    base.update(extra)
    return base


def settings(*pairs: KeyPair, **kwargs: object) -> TokenSettings:
    return TokenSettings.model_validate(
        {"issuer": ISSUER, "service": SERVICE, "keys": list(pairs), **kwargs}
    )


@dataclass(frozen=True)
class Pairs:
    es1: KeyPair
    es2: KeyPair
    rs1: KeyPair


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Pairs:
    """Generated once per module: RSA generation is the slow part of these tests."""
    directory = tmp_path_factory.mktemp("keys")
    return Pairs(
        es1=generate_keypair(directory, name="es1"),
        es2=generate_keypair(directory, name="es2"),
        rs1=generate_keypair(directory, algorithm="RS256", name="rs1"),
    )


# --------------------------------------------------------------------------- key ids


def test_rfc7638_vector() -> None:
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    key = rsa.RSAPublicNumbers(b64url_int("AQAB"), b64url_int(n)).public_key()
    expected = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert jwk_thumbprint(key) == expected
    assert go_minimal_thumbprint(key) == expected
    assert distribution_300_kid(key) == expected
    assert compute_kid(key, "rfc7638") == expected
    assert compute_kid(key, "distribution-3.0.0") == expected


def test_libtrust_kid_of_a_docker_signed_manifest() -> None:
    # The jwk of a schema1 manifest signature made by a Docker daemon (libtrust computed
    # the kid); recorded in shabbywu/py-libtrust tests/conftest.py.
    key = ec.EllipticCurvePublicNumbers(
        b64url_int("aKznE1VBHSq3wv0t5RtCsL71i8mqAi1gVD-q5hxBb5g"),
        b64url_int("t-jITjF-vB12f3fplbnBYf6NB9a5FW1hR9UVBqa3-oo"),
        ec.SECP256R1(),
    ).public_key()
    assert libtrust_kid(key) == "2OYJ:FCRP:7MGM:ZDBE:25UO:7LO7:TEAK:MGXY:BOHH:N666:2KVT:CEAP"


@pytest.mark.parametrize("kind", ["EC", "RSA"])
def test_libtrust_kid_format_and_derivation(kind: str, pairs: Pairs) -> None:
    public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    if kind == "RSA":
        private = serialization.load_pem_private_key(pairs.rs1.key.read_bytes(), None)
        assert isinstance(private, rsa.RSAPrivateKey)
        public = private.public_key()
    else:
        public = ec.derive_private_key(7, ec.SECP256R1()).public_key()
    kid = libtrust_kid(public)
    assert re.fullmatch(r"[A-Z2-7]{4}(:[A-Z2-7]{4}){11}", kid)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    assert kid.replace(":", "") == encoded
    assert compute_kid(public, "libtrust") == kid


def test_distribution_300_kid_hashes_the_p256_generator() -> None:
    payload = (
        f'{{"crv":"P-256","kty":"EC","x":"{b64url(minimal(P256_GX))}",'
        f'"y":"{b64url(minimal(P256_GY))}"}}'
    )
    one = ec.derive_private_key(12345, ec.SECP256R1()).public_key()
    two = ec.derive_private_key(67890, ec.SECP256R1()).public_key()
    assert distribution_300_kid(one) == sha256_b64url(payload)
    assert distribution_300_kid(two) == distribution_300_kid(one)
    assert compute_kid(two, "distribution-3.0.0") == sha256_b64url(payload)
    assert jwk_thumbprint(one) != jwk_thumbprint(two)


def test_distribution_300_kid_for_rsa_is_the_rfc7638_thumbprint(pairs: Pairs) -> None:
    ring = KeyRing.from_settings(settings(pairs.rs1, algorithm="RS256"))
    public = ring.signer.public_key
    assert isinstance(public, rsa.RSAPublicKey)
    assert distribution_300_kid(public) == jwk_thumbprint(public)
    numbers = public.public_numbers()
    payload = (
        f'{{"e":"{b64url(minimal(numbers.e))}","kty":"RSA","n":"{b64url(minimal(numbers.n))}"}}'
    )
    assert jwk_thumbprint(public) == sha256_b64url(payload)


def test_leading_zero_coordinate_separates_rfc7638_from_go_minimal() -> None:
    public = ec.derive_private_key(LEADING_ZERO_D, ec.SECP256R1()).public_key()
    numbers = public.public_numbers()
    x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
    assert y[0] == 0 or x[0] == 0

    fixed = f'{{"crv":"P-256","kty":"EC","x":"{b64url(x)}","y":"{b64url(y)}"}}'
    short = (
        f'{{"crv":"P-256","kty":"EC","x":"{b64url(minimal(numbers.x))}",'
        f'"y":"{b64url(minimal(numbers.y))}"}}'
    )
    assert short != fixed
    assert jwk_thumbprint(public) == sha256_b64url(fixed)
    assert go_minimal_thumbprint(public) == sha256_b64url(short)
    assert jwk_thumbprint(public) != go_minimal_thumbprint(public)
    # regression vectors
    assert jwk_thumbprint(public) == "WZsjbh58q8kl1WsGShqtiycImZtCgGbukDn4RAacMig"
    assert go_minimal_thumbprint(public) == "oynto_iDk7BbC1TpDhAjGoiBUFY63hdrK_AAqhuXqX8"
    assert libtrust_kid(public) == ("5AGM:HKO7:7OPF:652Q:TP4K:C4TR:SMEB:2RDP:EZOM:FPEU:QIPJ:TCRD")

    jwk = public_jwk(public, kid="k", alg="ES256")
    assert len(base64.urlsafe_b64decode(jwk["y"] + "=")) == 32
    assert jwk == {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(x),
        "y": b64url(y),
        "kid": "k",
        "alg": "ES256",
        "use": "sig",
    }


# --------------------------------------------------------------------------- key ring


def header_of(token: str) -> dict[str, object]:
    segment = token.split(".", maxsplit=1)[0]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(segment + "=="))
    return decoded


def test_ring_signs_with_first_key_and_publishes_all(pairs: Pairs) -> None:
    ring = KeyRing.from_settings(settings(pairs.es1, pairs.es2, kid_format="rfc7638"))
    token = ring.sign(claims())

    header = header_of(token)
    assert list(header) == ["typ", "alg", "kid", "x5c"]
    assert header["typ"] == "JWT"
    assert header["alg"] == "ES256"
    assert header["kid"] == jwk_thumbprint(ring.keys[0].public_key)
    x5c = header["x5c"]
    assert isinstance(x5c, list)
    leaf = x509.load_pem_x509_certificate(pairs.es1.cert.read_bytes())
    assert base64.b64decode(x5c[0]) == leaf.public_bytes(serialization.Encoding.DER)

    decoded = verify(token, ring, audience=SERVICE, issuer=ISSUER)
    assert decoded["sub"] == "alice"
    assert decoded["access"] == claims()["access"]

    jwks = ring.jwks()["keys"]
    assert [k["kid"] for k in jwks] == [k.kid for k in ring.keys]
    assert len({k["kid"] for k in jwks}) == 2
    assert all(k["use"] == "sig" and k["alg"] == "ES256" for k in jwks)

    bundle = ring.bundle_pem()
    certs = x509.load_pem_x509_certificates(bundle)
    assert len(certs) == 2
    assert certs[-1] == leaf  # the signer last: registry 3.x keeps the last one per kid
    assert {c.public_bytes(serialization.Encoding.PEM) for c in certs} == {
        pairs.es1.cert.read_bytes(),
        pairs.es2.cert.read_bytes(),
    }
    assert ring.warnings == ()


def test_token_of_the_new_key_verifies_with_the_old_order(pairs: Pairs) -> None:
    quirk = {"kid_format": "distribution-3.0.0"}
    new_first = KeyRing.from_settings(settings(pairs.es2, pairs.es1, **quirk))
    old_first = KeyRing.from_settings(settings(pairs.es1, pairs.es2, **quirk))
    token = new_first.sign(claims())
    # distribution-3.0.0 kids collide for EC keys: verify must try the other keys too
    assert new_first.signer.kid == old_first.signer.kid
    assert verify(token, old_first, audience=SERVICE, issuer=ISSUER)["sub"] == "alice"
    assert any("same kid" in w for w in old_first.warnings)
    assert any(w.startswith("token.kid_format: distribution-3.0.0") for w in old_first.warnings)


def test_default_kid_is_the_keys_own_rfc7638_thumbprint(pairs: Pairs) -> None:
    one = KeyRing.from_settings(settings(pairs.es1))
    two = KeyRing.from_settings(settings(pairs.es2))
    assert TokenSettings.model_fields["kid_format"].default == "rfc7638"
    assert one.signer.kid == jwk_thumbprint(one.signer.public_key)
    assert one.signer.kid != two.signer.kid
    assert one.warnings == ()


def test_old_registry_v3_name_is_refused_with_the_fix(pairs: Pairs) -> None:
    with pytest.raises(ValueError, match=re.escape("now called 'distribution-3.0.0'")):
        settings(pairs.es1, kid_format="registry-v3")


def test_leading_zero_key_without_x5c_is_a_warning(tmp_path: Path) -> None:
    key = ec.derive_private_key(LEADING_ZERO_D, ec.SECP256R1())
    pair = write_pair(tmp_path, key)
    ring = KeyRing.from_settings(settings(pair, include_x5c=False))
    assert any("starts with a zero byte" in w for w in ring.warnings)
    with_x5c = KeyRing.from_settings(settings(pair))
    assert with_x5c.warnings == ()


@pytest.mark.parametrize("kid_format", ["distribution-3.0.0", "rfc7638", "libtrust"])
def test_rsa_ring_and_kid_formats(pairs: Pairs, kid_format: str) -> None:
    ring = KeyRing.from_settings(
        settings(pairs.rs1, algorithm="RS256", kid_format=kid_format, include_x5c=False)
    )
    token = ring.sign(claims())
    header = header_of(token)
    assert header == {"typ": "JWT", "alg": "RS256", "kid": ring.signer.kid}
    public = ring.signer.public_key
    assert ring.signer.kid == compute_kid(public, kid_format)  # type: ignore[arg-type]
    assert verify(token, ring, audience=SERVICE, issuer=ISSUER)["iss"] == ISSUER
    jwk = ring.jwks()["keys"][0]
    assert jwk["kty"] == "RSA" and jwk["e"] == "AQAB"


def test_verify_rejects_foreign_keys_and_wrong_claims(pairs: Pairs) -> None:
    ring = KeyRing.from_settings(settings(pairs.es1))
    other = KeyRing.from_settings(settings(pairs.es2))
    with pytest.raises(Unauthorized):
        verify(other.sign(claims()), ring, audience=SERVICE, issuer=ISSUER)
    with pytest.raises(Unauthorized, match=r"(?i)audience"):
        verify(ring.sign(claims(aud="elsewhere")), ring, audience=SERVICE, issuer=ISSUER)
    expired = claims(exp=int(datetime.now(UTC).timestamp()) - 60)
    with pytest.raises(Unauthorized, match="expired"):
        verify(ring.sign(expired), ring, audience=SERVICE, issuer=ISSUER)
    with pytest.raises(Unauthorized):
        verify("not.a.token", ring, audience=SERVICE, issuer=ISSUER)


def test_sign_accepts_any_mapping_and_does_not_mutate_header(pairs: Pairs) -> None:
    ring = KeyRing.from_settings(settings(pairs.es1))
    before = dict(ring.signer.header)
    token = ring.sign(MappingProxyType(claims()))
    assert ring.signer.header == before
    assert jwt.get_unverified_header(token)["kid"] == ring.signer.kid


# --------------------------------------------------------------------------- key errors


def load_problems(token: TokenSettings, now: datetime | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        KeyRing.from_settings(token, now=now)
    error = caught.value
    assert error.component == "auth"
    assert "BEGIN" not in str(error)
    assert "PRIVATE" not in str(error)
    return error.problems


def test_missing_key_file(pairs: Pairs, tmp_path: Path) -> None:
    missing = tmp_path / "x.key"
    problems = load_problems(settings(KeyPair(key=missing, cert=pairs.es1.cert)))
    assert problems == [f"token.keys.0.key: {missing} does not exist"]


def test_cert_of_another_key(pairs: Pairs) -> None:
    problems = load_problems(settings(KeyPair(key=pairs.es1.key, cert=pairs.es2.cert)))
    assert problems == [
        "token.keys.0.cert: certificate's public key does not match token.keys.0.key"
    ]


def test_leaf_not_first_in_chain_file(pairs: Pairs, tmp_path: Path) -> None:
    chain = tmp_path / "chain.crt"
    chain.write_bytes(pairs.es2.cert.read_bytes() + pairs.es1.cert.read_bytes())
    problems = load_problems(settings(KeyPair(key=pairs.es1.key, cert=chain)))
    assert len(problems) == 1
    assert problems[0].startswith("token.keys.0.cert: certificate's public key does not match")
    assert "first" in problems[0]


def test_rsa_key_under_es256(pairs: Pairs) -> None:
    problems = load_problems(settings(pairs.es1, pairs.rs1))
    assert problems == ["token.keys.1.key: is an RSA key but token.algorithm is ES256"]


def test_ec_key_under_rs256(pairs: Pairs) -> None:
    problems = load_problems(settings(pairs.es1, algorithm="RS256"))
    assert problems == ["token.keys.0.key: is an EC key but token.algorithm is RS256"]


def test_unsupported_keys(pairs: Pairs, tmp_path: Path) -> None:
    def write(name: str, key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> Path:
        path = tmp_path / name
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
        return path

    edwards = write("ed.key", ed25519.Ed25519PrivateKey.generate())
    p384 = write("p384.key", ec.generate_private_key(ec.SECP384R1()))
    problems = load_problems(
        settings(KeyPair(key=edwards, cert=pairs.es1.cert), KeyPair(key=p384, cert=pairs.es1.cert))
    )
    assert problems == [
        "token.keys.0.key: is an Ed25519 key but token.algorithm is ES256",
        "token.keys.1.key: is an EC key on curve secp384r1 but ES256 needs P-256",
    ]


def test_encrypted_garbled_and_swapped_files(pairs: Pairs, tmp_path: Path) -> None:
    private = serialization.load_pem_private_key(pairs.es1.key.read_bytes(), None)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    garbled = tmp_path / "garbled.crt"
    garbled.write_text("not a certificate\n")
    problems = load_problems(
        settings(
            KeyPair(key=encrypted, cert=pairs.es1.cert),
            KeyPair(key=pairs.es1.key, cert=garbled),
            KeyPair(key=pairs.es2.cert, cert=pairs.es2.key),
        )
    )
    assert problems[0].startswith(f"token.keys.0.key: {encrypted} is encrypted")
    assert problems[1] == f"token.keys.1.cert: {garbled} holds no PEM certificate"
    assert problems[2].startswith(f"token.keys.2.key: {pairs.es2.cert} is not a PEM private key")
    assert "swapped" in problems[2]
    assert problems[3] == f"token.keys.2.cert: {pairs.es2.key} holds no PEM certificate"
    assert len(problems) == 4


def test_expired_certificate(tmp_path: Path) -> None:
    old = generate_keypair(tmp_path, now=datetime(2024, 1, 2, tzinfo=UTC), days=365)
    problems = load_problems(settings(old))
    assert problems == ["token.keys.0.cert: expired on 2025-01-01"]


def test_not_yet_valid_certificate(pairs: Pairs) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    problems = load_problems(settings(pairs.es1), now=past)
    assert len(problems) == 1
    assert problems[0].startswith("token.keys.0.cert: is not valid before")


def test_certificate_expiring_soon_loads_with_a_warning(pairs: Pairs) -> None:
    not_after = x509.load_pem_x509_certificate(pairs.es1.cert.read_bytes()).not_valid_after_utc
    ring = KeyRing.from_settings(settings(pairs.es1), now=not_after - timedelta(days=3))
    assert ring.signer.not_after == not_after
    assert len(ring.warnings) == 1
    assert ring.warnings[0].startswith(
        f"token.keys.0.cert: expires on {not_after.date().isoformat()}"
    )


def test_loose_key_file_mode_is_a_warning(pairs: Pairs, tmp_path: Path) -> None:
    loose = tmp_path / "loose.key"
    shutil.copyfile(pairs.es1.key, loose)
    loose.chmod(0o644)
    ring = KeyRing.from_settings(settings(KeyPair(key=loose, cert=pairs.es1.cert)))
    assert ring.warnings == (
        f"token.keys.0.key: {loose} has mode 0644; restrict it with chmod 600",
    )


# --------------------------------------------------------------------------- generate


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_generate_keypair(tmp_path: Path, algorithm: str) -> None:
    directory = tmp_path / "new"
    pair = generate_keypair(directory, algorithm=algorithm, name="signer", days=30)  # type: ignore[arg-type]
    assert pair == KeyPair(key=directory / "signer.key", cert=directory / "signer.crt")
    assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600
    assert pair.key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")

    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert cert.issuer == cert.subject
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=30) <= lifetime <= timedelta(days=30, minutes=10)

    ring = KeyRing.from_settings(settings(pair, algorithm=algorithm))
    assert verify(ring.sign(claims()), ring, audience=SERVICE, issuer=ISSUER)["sub"] == "alice"
    # generated keys have full-length coordinates: Go's thumbprint (3.1) equals RFC 7638
    assert go_minimal_thumbprint(ring.signer.public_key) == ring.signer.kid


def test_generate_keypair_refuses_to_replace_unless_asked(tmp_path: Path) -> None:
    first = generate_keypair(tmp_path)
    before = first.key.read_bytes()
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path)
    assert first.key.read_bytes() == before
    first.key.chmod(0o644)
    again = generate_keypair(tmp_path, overwrite=True)
    assert again.key.read_bytes() != before
    assert stat.S_IMODE(again.key.stat().st_mode) == 0o600
