"""Do the registry and the token service trust each other, and can clients reach the realm?
Issuer and service, the signing key against the registry's bundle (and its expiry), the
realm's address against where clients come in, and the live realm probe. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from keelhaul.auth.keyfiles import EXPIRY_WARNING_DAYS
from keelhaul.stack.doctor.model import CertInfo, Finding, RegistryView, Snapshot

__all__ = [
    "TOKEN_SERVICE_STATUSES",
    "auth_config_problems",
    "is_loopback",
    "keys_in_bundle",
    "realm_reachable",
    "token_agreement",
    "trusting",
]

TOKEN_SERVICE_STATUSES = frozenset({200, 400, 401, 403})
"""What a token service answers to an anonymous ``GET`` of its realm."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _addr_host(addr: str) -> str:
    host = addr.rpartition(":")[0] if ":" in addr else addr
    return host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":5000" listens everywhere


def _url_host(url: str) -> str:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.rsplit("@", 1)[-1].split(":", 1)[0]


def _token_registries(snap: Snapshot) -> list[RegistryView]:
    return [r for r in snap.registries if r.auth_kind == "token"]


# ------------------------------------------------------------------ token: issuer, service


def token_agreement(snap: Snapshot) -> Iterator[Finding]:
    for r in snap.registries:
        if r.auth_kind != "token" and snap.auths:
            yield Finding(
                "registry-not-token-auth", "error", "registry",
                f"{r.source} authenticates with auth.{r.auth_kind}: the token service is "
                "never asked",
                f"replace the auth section of {r.source} with auth.token (realm, service, "
                "issuer, rootcertbundle)",
            )  # fmt: skip
    for r in _token_registries(snap):
        for a in snap.auths:
            if a.issuer is not None and r.issuer != a.issuer:
                yield Finding(
                    "issuer-mismatch", "error", "registry",
                    f"the registry accepts tokens from issuer {r.issuer!r} ({r.source}), the "
                    f"token service issues them as {a.issuer!r} ({a.source}): every push "
                    "and pull fails with 401",
                    f"set auth.token.issuer in {r.source} and token.issuer in {a.source} to "
                    "the same string",
                )  # fmt: skip
            if a.service is not None and r.service != a.service:
                yield Finding(
                    "service-mismatch", "error", "registry",
                    f"the registry calls itself service {r.service!r} ({r.source}), the token "
                    f"service issues tokens for {a.service!r} ({a.source}): clients ask for "
                    "the registry's and are refused",
                    f"set auth.token.service in {r.source} and token.service in {a.source} "
                    "to the same string",
                )  # fmt: skip


def auth_config_problems(snap: Snapshot) -> Iterator[Finding]:
    for a in snap.auths:
        if a.problems:
            yield Finding(
                "auth-config-invalid", "error", "auth",
                f"{a.source} does not validate: {'; '.join(a.problems)}",
                f"fix the keys named; `keelhaul auth check --config {a.source}` says more",
            )  # fmt: skip


# ------------------------------------------------------------------ keys against the bundle


def _issued_by(child: CertInfo, parent: CertInfo) -> bool:
    try:
        x509.load_der_x509_certificate(child.der).verify_directly_issued_by(
            x509.load_der_x509_certificate(parent.der)
        )
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def trusting(chain: tuple[CertInfo, ...], bundle: tuple[CertInfo, ...]) -> CertInfo | None:
    """The bundle certificate that makes the registry accept tokens signed with ``chain``."""
    keys = {c.spki_sha256: c for c in bundle}
    for cert in chain:
        if cert.spki_sha256 in keys:
            return keys[cert.spki_sha256]
    top = chain[-1]
    for root in bundle:
        if root.subject == top.issuer and _issued_by(top, root):
            return root
    return None


def keys_in_bundle(snap: Snapshot) -> Iterator[Finding]:
    now = snap.now or datetime.now(UTC)
    soon = now + timedelta(days=EXPIRY_WARNING_DAYS)
    for r in _token_registries(snap):
        if r.bundle is None:
            if r.bundle_problem and not r.bundle_problem.startswith("not found"):
                yield Finding(
                    "bundle-unreadable", "error", "registry",
                    f"the registry's rootcertbundle {r.bundle_path}: {r.bundle_problem}",
                    f"write the token service's certificates there: keelhaul auth bundle "
                    f"--config AUTH.yml > {r.bundle_path}",
                )  # fmt: skip
            continue
        for a in snap.auths:
            if not a.keys or a.keys[0].chain is None:
                continue
            signer = a.keys[0]
            chain = signer.chain or ()
            root = trusting(chain, r.bundle)
            if root is None:
                yield Finding(
                    "signing-key-not-in-bundle", "error", "registry",
                    f"the token service signs with {signer.cert_path} ({chain[0].subject}), "
                    f"which no certificate in the registry's bundle {r.bundle_path} trusts: "
                    "every token is refused",
                    f"keelhaul auth bundle --config {a.source} > {r.bundle_path}, then "
                    "restart the registry",
                )  # fmt: skip
                continue
            expires = min([c.not_after for c in chain] + [root.not_after])
            if expires <= now:
                yield Finding(
                    "signing-cert-expired", "error", "auth",
                    f"the signing certificate {signer.cert_path} (or the bundle certificate "
                    f"trusting it) expired on {expires.date().isoformat()}",
                    f"keelhaul auth keygen, list the new pair first in token.keys of "
                    f"{a.source}, update {r.bundle_path}",
                )  # fmt: skip
            elif expires <= soon:
                days = (expires - now).days
                yield Finding(
                    "signing-cert-expiring", "warning", "auth",
                    f"the signing certificate {signer.cert_path} (or the bundle certificate "
                    f"trusting it) expires on {expires.date().isoformat()}, in {days} days",
                    f"rotate now: keelhaul auth keygen, add the new pair to the bundle "
                    f"{r.bundle_path} first, then list it first in token.keys of {a.source}",
                )  # fmt: skip
            for key in a.keys[1:]:
                if key.chain and trusting(key.chain, r.bundle) is None:
                    yield Finding(
                        "rotation-key-not-in-bundle", "warning", "registry",
                        f"{key.cert_path} is published by the token service but not trusted "
                        f"by {r.bundle_path}: making it the signer would break every token",
                        f"keelhaul auth bundle --config {a.source} > {r.bundle_path}",
                    )  # fmt: skip


# ------------------------------------------------------------------ the realm


def _client_listens(snap: Snapshot, r: RegistryView) -> list[str]:
    listens = [addr for view in snap.nginx for addr, _ in view.listens]
    return listens or [r.addr]


def realm_reachable(snap: Snapshot) -> Iterator[Finding]:
    for r in _token_registries(snap):
        if not r.realm:
            continue
        realm_host = _url_host(r.realm)
        listens = _client_listens(snap, r)
        outside = [a for a in listens if not is_loopback(_addr_host(a))]
        if is_loopback(realm_host) and outside:
            yield Finding(
                "realm-loopback-mismatch", "error", "registry",
                f"the realm {r.realm} is on loopback, but clients reach the registry at "
                f"{', '.join(outside)}: from their hosts it names themselves",
                f"set auth.token.realm in {r.source} to the address clients use, "
                "e.g. https://<public name>/token",
            )  # fmt: skip
        elif not is_loopback(realm_host) and not outside:
            yield Finding(
                "realm-loopback-mismatch", "warning", "registry",
                f"clients reach the registry on loopback only ({', '.join(listens)}), but "
                f"the realm {r.realm} is not a loopback address",
                f"set auth.token.realm in {r.source} to the proxy's loopback address "
                "followed by /token",
            )  # fmt: skip
    for probe in snap.realm_probes:
        if probe.error is not None:
            yield Finding(
                "realm-unreachable", "error", "registry",
                f"GET {probe.url} from this host failed ({probe.error}): clients cannot "
                "get tokens",
                "start the token service, or point auth.token.realm at where it listens "
                "(through the proxy: <entry>/token)",
            )  # fmt: skip
        elif probe.status not in TOKEN_SERVICE_STATUSES:
            yield Finding(
                "realm-unreachable", "error", "registry",
                f"GET {probe.url} answered HTTP {probe.status}, not a token service's answer",
                "check the proxy's /token route and that the token service is up",
            )  # fmt: skip


# ------------------------------------------------------------------ Redis and storage
