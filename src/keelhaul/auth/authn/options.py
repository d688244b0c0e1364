"""Settings of each identity backend: one model per ``kind``, joined in a discriminated union.

``users:`` in the token service config is a list of these, tried in order:

    users:
      - {kind: htpasswd, path: /etc/keelhaul/htpasswd}
      - {kind: ldap, servers: [ldaps://ldap1:636], ...}

The older mapping form (``users: {htpasswd: PATH, static: {...}, order: [...]}``) is still
read: :class:`LegacyUsers` validates it with its own key names and converts it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from keelhaul.settings_base import FrozenModel

__all__ = [
    "BackendSettings",
    "GroupSearch",
    "HtpasswdOptions",
    "LdapOptions",
    "LegacyUsers",
    "OidcOptions",
    "RobotOptions",
    "StaticOptions",
    "StaticUser",
]

UserLabels = dict[str, dict[str, list[str]]]


class StaticUser(FrozenModel):
    password_hash: SecretStr = Field(description="a bcrypt hash ($2a$/$2b$/$2y$)")
    labels: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("password_hash")
    @classmethod
    def _bcrypt_only(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", value.get_secret_value()):
            raise ValueError("must be a bcrypt hash; create one with `keelhaul auth hash`")
        return value


class _Common(FrozenModel):
    name: str | None = Field(
        default=None, description="shown in /healthz and metrics; default: the kind"
    )
    labels: UserLabels = Field(
        default_factory=dict, description="user -> label -> values, added to the backend's own"
    )


class HtpasswdOptions(_Common):
    kind: Literal["htpasswd"]
    path: Path
    reload_interval: float = Field(default=2.0, gt=0, le=300, description="seconds between checks")


class StaticOptions(_Common):
    kind: Literal["static"]
    users: dict[str, StaticUser] = Field(default_factory=dict)


class RobotOptions(_Common):
    kind: Literal["robots"]
    path: Path = Field(description="the robot file `keelhaul auth robot` writes")
    reload_interval: float = Field(default=2.0, gt=0, le=300, description="seconds between checks")


_FORBIDDEN_ALGS = ("none", "HS256", "HS384", "HS512")


class OidcOptions(_Common):
    """A trusted issuer of CI identity tokens (GitHub Actions, GitLab CI, ...)."""

    kind: Literal["oidc"]
    issuer: str = Field(min_length=1, description="the tokens' iss, exactly")
    jwks_url: str | None = Field(
        default=None, description="default: jwks_uri of the issuer's discovery document"
    )
    audiences: list[str] = Field(min_length=1, description="accepted aud values")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    leeway: int = Field(default=60, ge=0, le=600, description="clock skew allowed, seconds")
    account: str = Field(
        default="{sub}", description="account name from claims, e.g. 'gha:{repository}'"
    )
    claim_labels: dict[str, str] = Field(
        default_factory=dict, description="label -> claim, e.g. {repository: repository}"
    )
    require: dict[str, list[str]] = Field(
        default_factory=dict, description="claim -> accepted values, e.g. {ref_protected: [true]}"
    )
    audit_claims: list[str] = Field(
        default_factory=lambda: [
            "sub", "jti", "ref", "sha", "actor", "workflow", "run_id", "run_attempt",
            "pipeline_id", "job_id", "user_login",
        ],
        description="claims copied to the audit line (those the token has): which job it was",
    )  # fmt: skip
    jwks_ttl: float = Field(default=300.0, gt=0, le=86400, description="seconds keys are reused")
    min_refresh: float = Field(
        default=30.0, ge=0, le=3600, description="seconds between fetches on an unknown kid"
    )
    http_timeout: float = Field(default=3.0, gt=0, le=60)

    @field_validator("require", mode="before")
    @classmethod
    def _booleans_as_claim_text(cls, value: object) -> object:
        """``ref_protected: [true]`` in YAML means the claim value ``true``."""
        if isinstance(value, dict):
            return {
                k: [("true" if x else "false") if isinstance(x, bool) else x for x in v]
                if isinstance(v, list)
                else v
                for k, v in value.items()
            }
        return value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        for alg in value:
            if alg in _FORBIDDEN_ALGS or alg.lower() == "none":
                raise ValueError(
                    f"{alg} is not allowed: only asymmetric algorithms (RS*, ES*, PS*)"
                )
            if not re.fullmatch(r"(RS|ES|PS)(256|384|512)|EdDSA", alg):
                raise ValueError(f"{alg} is not a JWS algorithm keelhaul accepts")
        return value


class GroupSearch(FrozenModel):
    base_dn: str = Field(min_length=1)
    filter: str = Field(
        default="(|(member={dn})(uniqueMember={dn}))",
        description="{dn} is the user's (or, nested, the group's) DN, escaped",
    )
    name_attribute: str = "cn"


class LdapOptions(_Common):
    """An LDAP / Active Directory directory: search as a service account, bind as the user."""

    kind: Literal["ldap"]
    servers: list[str] = Field(min_length=1, description="ldap:// or ldaps:// URLs, in order")
    start_tls: bool = False
    ca_file: Path | None = Field(default=None, description="PEM CA bundle to verify the server")
    bind_dn: str = Field(default="", description="service account; empty: anonymous search")
    bind_password: SecretStr = SecretStr("")
    base_dn: str = Field(min_length=1)
    user_filter: str = Field(
        default="(uid={username})",
        description="{username} is substituted escaped; AD: (sAMAccountName={username})",
    )
    group_attribute: str | None = Field(
        default="memberOf", description="groups from this attribute of the user entry (DNs)"
    )
    group_search: GroupSearch | None = None
    nested_depth: int = Field(default=0, ge=0, le=5, description="levels of nested groups")
    group_label: str = Field(default="group", description="label that carries the group names")
    case_insensitive_names: bool = Field(
        default=True,
        description="the account is the name lower-cased: uid and sAMAccountName match "
        "without case, so Alice and alice are one account (ACL, throttle, audit)",
    )
    revision_attributes: list[str] = Field(
        default_factory=lambda: ["entryCSN", "modifyTimestamp", "pwdChangedTime"],
        description="attributes whose change revokes cached logins; AD: pwdLastSet, whenChanged",
    )
    connect_timeout: float = Field(default=2.0, gt=0, le=60)
    timeout: int = Field(
        default=3,
        ge=1,
        le=60,
        description="bind and search, whole seconds (ldap3 sets SO_RCVTIMEO)",
    )
    pool_size: int = Field(default=4, ge=1, le=64, description="service-account connections")
    lookup_ttl: float = Field(
        default=30.0, ge=0, le=3600, description="seconds a search result is reused"
    )
    retry_interval: float = Field(
        default=5.0, gt=0, le=600, description="seconds a failed directory is not asked again"
    )

    @field_validator("servers")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("ldap://", "ldaps://")):
                raise ValueError(f"{url!r} must start with ldap:// or ldaps://")
        return value

    @field_validator("user_filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        if "{username}" not in value or not (value.startswith("(") and value.endswith(")")):
            raise ValueError("must be an LDAP filter in parentheses containing {username}")
        return value

    @model_validator(mode="after")
    def _tls(self) -> LdapOptions:
        if self.start_tls and any(u.startswith("ldaps://") for u in self.servers):
            raise ValueError("start_tls is for ldap:// servers; ldaps:// is TLS already")
        return self


BackendSettings = Annotated[
    HtpasswdOptions | StaticOptions | LdapOptions | RobotOptions | OidcOptions,
    Field(discriminator="kind"),
]

OldKind = Literal["static", "htpasswd"]
_OLD_KINDS: tuple[OldKind, ...] = ("static", "htpasswd")


class LegacyUsers(FrozenModel):
    """The mapping form of ``users:`` from before backends were a list; still accepted."""

    htpasswd: Path | None = None
    reload_interval: float = Field(default=2.0, gt=0, le=300)
    static: dict[str, StaticUser] = Field(default_factory=dict)
    order: list[OldKind] = Field(default_factory=lambda: list(_OLD_KINDS))
    labels: UserLabels = Field(default_factory=dict)

    def as_list(self) -> list[HtpasswdOptions | StaticOptions]:
        out: list[HtpasswdOptions | StaticOptions] = []
        for kind in self.order:
            if kind == "static" and self.static:
                out.append(StaticOptions(kind="static", users=self.static, labels=self.labels))
            elif kind == "htpasswd" and self.htpasswd is not None:
                out.append(
                    HtpasswdOptions(
                        kind="htpasswd",
                        path=self.htpasswd,
                        reload_interval=self.reload_interval,
                        labels=self.labels,
                    )
                )
        return out
