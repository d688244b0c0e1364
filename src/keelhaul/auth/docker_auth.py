"""A cesanta/docker_auth configuration, converted to keelhaul's token service. Pure.

``keelhaul auth import-docker-auth`` reads the file and writes what :func:`convert`
returns. Each ACL rule keeps its meaning: docker_auth's ``/regex/`` becomes the ``search``
kind (unanchored, as Go's ``regexp.Match``), its globs the ``path_match`` kind (Go
``path.Match``), with docker_auth's placeholder substitution; see
:mod:`keelhaul.auth.aclpatterns`. What keelhaul cannot do is listed, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keelhaul.auth.acl import Acl
from keelhaul.auth.settings import AclRule
from keelhaul.errors import ConfigError

__all__ = ["UNSUPPORTED_SECTIONS", "Imported", "convert", "convert_pattern", "convert_rule"]

UNSUPPORTED_SECTIONS: dict[str, str] = {
    "google_auth": "Google sign-in",
    "github_auth": "GitHub sign-in",
    "gitlab_auth": "GitLab sign-in",
    "oidc_auth": "OpenID Connect sign-in",
    "ldap_auth": "LDAP authentication",
    "mongo_auth": "MongoDB users",
    "xorm_auth": "XORM database users",
    "ext_auth": "an external authentication program",
    "plugin_authn": "an authentication plugin",
    "acl_mongo": "ACLs stored in MongoDB",
    "acl_xorm": "ACLs stored in an XORM database",
    "casbin_authz": "casbin authorization",
    "ext_authz": "an external authorization program",
    "plugin_authz": "an authorization plugin",
}
"""docker_auth sections keelhaul has no equivalent for (yet): each is reported, not dropped."""

_FIELDS = ("account", "type", "name", "service")
_BCRYPT = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
_CAPTURE = re.compile(r"\$\{(.+?):(\d+)\}")  # docker_auth's captureGroupRegex
_OWN_CAPTURE = re.compile(r"\$\{(?:account|service):\d+\}")
_UNSUPPORTED_PLACEHOLDER = re.compile(r"\$\{(name|type)(:\d+)?\}")
_GLOB_SPECIAL = re.compile(r"[*?\[\\]|\$\{")
_MIN_EXPIRATION, _MAX_EXPIRATION = 60, 86400


@dataclass
class Imported:
    """The keelhaul config (without ``secret``), htpasswd lines, and what was left out."""

    config: dict[str, Any]
    htpasswd: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def convert_pattern(text: str) -> str | dict[str, str]:
    """docker_auth's pattern -> the keelhaul pattern that matches the same values.

    A plain literal stays a plain string (it means the same in both).
    """
    if len(text) > 2 and text.startswith("/") and text.endswith("/"):
        return {"search": text[1:-1]}
    if _GLOB_SPECIAL.search(text) or (len(text) >= 2 and text[0] == text[-1] == "/"):
        return {"path_match": text}
    return text


def convert_rule(index: int, entry: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """One ACL entry -> (keelhaul rule, or None with the reasons it cannot be carried over)."""
    where = f"acl.{index}"
    problems: list[str] = []
    match = entry.get("match")
    actions = entry.get("actions")
    if not isinstance(match, Mapping) or not isinstance(actions, list):
        return None, [f"{where}: needs match and actions (docker_auth would not start)"]
    if "*" in actions and actions != ["*"]:
        problems.append(
            f"{where}.actions: {actions} grants only the literal listed actions in docker_auth "
            "(just [\"*\"] means all); keelhaul reads any '*' as all"
        )
    converted: dict[str, Any] = {}
    for key in _FIELDS:
        value = match.get(key)
        if value is None:
            continue
        text = str(value)
        if _UNSUPPORTED_PLACEHOLDER.search(text):
            problems.append(f"{where}.match.{key}: ${{name}} / ${{type}} placeholders")
        for found in _CAPTURE.finditer(text):
            if found.group(1) not in ("account", "service"):
                problems.append(
                    f"{where}.match.{key}: {found.group(0)} (docker_auth reads it as a capture "
                    f"of field {found.group(1)!r}, keelhaul supports account and service)"
                )
        converted[key] = convert_pattern(text)
    if match.get("ip") is not None:
        converted["ip"] = str(match["ip"])
    labels = match.get("labels") or {}
    # docker_auth substitutes a capture only if captureGroupRegex finds it in one of the
    # four fields; in a labels pattern alone it stays text (and never matches)
    recognized = {
        found.group(0) for key in _FIELDS for found in _CAPTURE.finditer(str(match.get(key) or ""))
    }
    for label, pattern in labels.items():
        for token in _OWN_CAPTURE.findall(str(pattern)):
            if token not in recognized:
                problems.append(
                    f"{where}.match.labels.{label}: {token} is not substituted by docker_auth "
                    "(it appears in no account/type/name/service pattern)"
                )
    if labels:
        converted["labels"] = {str(k): convert_pattern(str(v)) for k, v in labels.items()}
    unknown = sorted(set(match) - {*_FIELDS, "ip", "labels"})
    if unknown:
        problems.append(f"{where}.match: unknown fields {unknown}")
    rule: dict[str, Any] = {"match": converted, "actions": [str(a) for a in actions]}
    if entry.get("comment"):
        rule["comment"] = str(entry["comment"])
    if not problems:
        try:
            Acl.compile([AclRule.model_validate(rule)])
        except (ConfigError, ValueError) as exc:
            problems.append(f"{where}: {exc}".replace("acl.0.", f"{where}."))
    return (None, problems) if problems else (rule, [])


def _token(docker: Mapping[str, Any], service: str | None, out: Imported) -> dict[str, Any]:
    token = docker.get("token") or {}
    server = docker.get("server") or {}
    cert = token.get("certificate") or server.get("certificate")
    key = token.get("key") or server.get("key")
    if not cert or not key:
        out.left_out.append("token.certificate/key: no signing key found (nor server.*)")
    expiration = int(token.get("expiration") or 900)
    clamped = min(max(expiration, _MIN_EXPIRATION), _MAX_EXPIRATION)
    if clamped != expiration:
        out.notes.append(f"token.expiration: {expiration} s is outside 60..86400; {clamped} used")
    legacy = not token.get("disable_legacy_key_id", False)
    if not service:
        out.left_out.append(
            "token.service: docker_auth takes the service from each request; keelhaul "
            "issues for one: give --service (the registry's auth.token.service)"
        )
    return {
        "issuer": str(token.get("issuer") or ""),
        "service": service or "CHANGE-ME",
        "expiration": clamped,
        # docker_auth's kid: libtrust (2.8) unless disable_legacy_key_id (JWK thumbprint)
        "kid_format": "libtrust" if legacy else "rfc7638",
        "keys": [{"key": str(key or "CHANGE-ME"), "cert": str(cert or "CHANGE-ME")}],
    }


def _users(docker: Mapping[str, Any], out: Imported) -> tuple[bool, dict[str, Any]]:
    """(anonymous allowed, the keelhaul users section); fills out.htpasswd."""
    anonymous = False
    labels: dict[str, dict[str, list[str]]] = {}
    for name, given in (docker.get("users") or {}).items():
        user, spec = str(name), given or {}
        if user == "":
            anonymous = True
            continue
        password = str(spec.get("password") or "")
        if not _BCRYPT.fullmatch(password):
            out.left_out.append(f"users.{user}.password: not a bcrypt hash")
            continue
        out.htpasswd.append(f"{user}:{password}")
        if spec.get("labels"):
            labels[user] = {str(k): [str(v) for v in vs] for k, vs in spec["labels"].items()}
    section: dict[str, Any] = {"order": ["htpasswd"]}
    if labels:
        section["labels"] = labels
    return anonymous, section


def _server(docker: Mapping[str, Any], out: Imported) -> dict[str, Any]:
    server = docker.get("server") or {}
    addr = str(server.get("addr") or ":5001")
    if server.get("net") == "unix" or addr.startswith("/"):
        out.left_out.append(f"server.addr: unix socket {addr}; keelhaul listens on TCP")
        addr = ":5001"
    if server.get("certificate") or server.get("letsencrypt"):
        out.left_out.append(
            "server TLS (certificate/letsencrypt): keelhaul serves HTTP behind a proxy; "
            "terminate TLS there (keelhaul stack up --tls)"
        )
    if server.get("path_prefix"):
        out.left_out.append(
            f"server.path_prefix: {server['path_prefix']!r}; keelhaul serves /token"
        )
    if server.get("real_ip_header"):
        out.left_out.append(
            "server.real_ip_header: set server.trusted_proxies to the number of proxies "
            "in front of keelhaul"
        )
    host, _, port = addr.rpartition(":")
    # docker_auth's ":5001" listens on every interface; so does the converted bind
    return {"bind": f"{host or '0.0.0.0'}:{port}"}  # noqa: S104


def convert(docker: Mapping[str, Any], *, service: str | None, htpasswd_path: str) -> Imported:
    """A docker_auth config (parsed YAML) -> keelhaul's auth config and the rest."""
    out = Imported(config={})
    server = _server(docker, out)
    token = _token(docker, service, out)
    anonymous, users = _users(docker, out)
    users["htpasswd"] = htpasswd_path
    rules: list[dict[str, Any]] = []
    if not anonymous:
        # docker_auth refuses anonymous logins unless users has "": keep them without access
        rules.append(
            {"match": {"account": ""}, "actions": [], "comment": "no anonymous user in docker_auth"}
        )
    for index, entry in enumerate(docker.get("acl") or []):
        rule, problems = convert_rule(index, entry if isinstance(entry, Mapping) else {})
        out.left_out.extend(problems)
        if rule is not None:
            rules.append(rule)
    for section, what in UNSUPPORTED_SECTIONS.items():
        if docker.get(section) is not None:
            out.left_out.append(f"{section}: {what} is not available in keelhaul")
    out.config = {
        "token": token,
        "users": users,
        "acl": rules,
        "server": server,
    }
    return out
