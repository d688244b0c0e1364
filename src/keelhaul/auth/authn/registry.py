"""The identity backends by ``kind``: one record each, the only place a kind is switched on.

To add a backend: its settings model in :mod:`.options` (joined to ``BackendSettings``),
a module here answering :class:`~keelhaul.auth.authn.Backend`, and one record below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keelhaul.auth.authn import Backend
from keelhaul.auth.authn.options import (
    BackendSettings,
    HtpasswdOptions,
    LdapOptions,
    OidcOptions,
    RobotOptions,
    StaticOptions,
)

__all__ = ["KINDS", "BackendKind", "build_backend"]


@dataclass(frozen=True)
class BackendKind:
    kind: str
    options: type[Any]
    factory: Callable[[Any], Backend]
    what: str


def _htpasswd(o: HtpasswdOptions) -> Backend:
    from keelhaul.auth.authn.htpasswd import HtpasswdFile

    return HtpasswdFile(
        o.path, reload_interval=o.reload_interval, labels=o.labels, name=o.name or o.kind
    )


def _static(o: StaticOptions) -> Backend:
    from keelhaul.auth.authn.static import StaticUsers

    return StaticUsers(o.users, o.labels, name=o.name or o.kind)


def _ldap(o: LdapOptions) -> Backend:
    from keelhaul.auth.authn.ldap import LdapDirectory

    return LdapDirectory(o)


def _robots(o: RobotOptions) -> Backend:
    from keelhaul.auth.authn.robots import RobotAccounts

    return RobotAccounts(
        o.path, reload_interval=o.reload_interval, labels=o.labels, name=o.name or o.kind
    )


def _oidc(o: OidcOptions) -> Backend:
    from keelhaul.auth.authn.oidc import OidcIssuer

    return OidcIssuer(o)


KINDS: dict[str, BackendKind] = {
    k.kind: k
    for k in (
        BackendKind("htpasswd", HtpasswdOptions, _htpasswd, "bcrypt htpasswd file, re-read"),
        BackendKind("static", StaticOptions, _static, "users in the config file"),
        BackendKind("ldap", LdapOptions, _ldap, "LDAP / Active Directory: search, then bind"),
        BackendKind("robots", RobotOptions, _robots, "robot accounts (keelhaul auth robot)"),
        BackendKind("oidc", OidcOptions, _oidc, "CI identity tokens from a trusted issuer"),
    )
}


def build_backend(options: BackendSettings) -> Backend:
    return KINDS[options.kind].factory(options)
