"""Issue 12, section 5: real clients log in through every kind of identity the token service
knows, against a real stack, and get exactly what the ACL allows.

The stack (nginx, registry, token service, Redis) comes from ``keelhaul stack up``; its
token service is then configured the way an operator would (``auth.yml``'s ``users:`` and
``acl:``, then ``keelhaul stack restart auth``) with a real OpenLDAP ``slapd``, a loopback
OIDC issuer standing in for a CI platform, and a robot file that ``keelhaul auth robot``
writes. Debian's docker CLI (through the session's private dockerd) and podman are the
clients. Everything started here is stopped by pid (slapd), by thread (the issuer) or by
``stack down`` at the end of the module, failures included.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from support.engines import DockerClient, Podman, stored_login, tiny_image
from support.oidc_issuer import Issuer
from support.slapd import PASSWORDS, SlapdServer, start_slapd
from support.stacks import StackInfo, keelhaul, running_stack

if TYPE_CHECKING:
    from keelhaul.engine import Dockerd
    from support.engines import Ledger

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
PLAIN = "--tls-verify=false"  # podman's name for "plain http" (loopback)
ROBOT_RELOAD = 0.5  # seconds between the token service's checks of the robot file

# Prepended to the stack's own rules (first match wins): who may do what, by identity kind.
IDENTITY_ACL: list[dict[str, Any]] = [
    {
        "match": {"labels": {"group": "developers"}, "type": "repository", "name": "ldapteam/**"},
        "actions": ["pull", "push"],
        "comment": "LDAP group developers pushes ldapteam/**",
    },
    {
        "match": {"labels": {"group": "auditors"}, "type": "repository", "name": "ldapteam/**"},
        "actions": ["pull"],
        "comment": "LDAP group auditors only pulls",
    },
    {
        "match": {
            "labels": {"protected": "true"},
            "type": "repository",
            "name": "${labels:repository}",
        },
        "actions": ["pull", "push"],
        "comment": "CI jobs of repository X on protected branches push X",
    },
    {
        "match": {"account": "ci:**", "type": "repository", "name": "${labels:repository}"},
        "actions": ["pull"],
        "comment": "other CI jobs of X only pull X",
    },
    {
        "match": {"labels": {"robot": "*"}, "type": "repository", "name": "**"},
        "actions": ["pull", "push"],
        "comment": "robots: the ACL allows much; each robot's own allow list narrows it",
    },
]


@dataclass
class IdentityStack:
    stack: StackInfo
    issuer: Issuer
    config: Path

    @property
    def host(self) -> str:
        return self.stack.entry_host

    def repo(self, prefix: str) -> str:
        return f"{self.host}/{prefix}/app-{uuid.uuid4().hex[:8]}"

    def robot(self, *args: str) -> Any:
        return keelhaul("auth", "robot", *args, "--config", str(self.config))


def _configure(stack: StackInfo, slapd: SlapdServer, issuer: Issuer) -> Path:
    """The stack's token service config with LDAP, robots and OIDC added to its htpasswd."""
    path = stack.dir / "config" / "auth.yml"
    config = yaml.safe_load(path.read_text())
    htpasswd = config["users"]["htpasswd"]  # the stack writes the mapping form
    config["users"] = [
        {"kind": "htpasswd", "path": htpasswd},
        {"kind": "robots", "path": str(stack.dir / "robots.json"), "reload_interval": ROBOT_RELOAD},
        slapd.backend(),
        issuer.backend(),
    ]
    config["acl"] = IDENTITY_ACL + config["acl"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def identity_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityStack]:
    root = tmp_path_factory.mktemp("identity")
    slapd = start_slapd(root / "slapd")
    issuer = Issuer()
    try:
        issuer.add_key("k1")
        options = ("--auth-workers", "1", "--bcrypt-cost", "4")
        with running_stack(root / "stack", *options) as stack:
            config = _configure(stack, slapd, issuer)
            restarted = keelhaul("stack", "restart", "auth", "--dir", str(stack.dir))
            assert restarted.returncode == 0, restarted.stderr
            health = httpx.get(stack.token_url.replace("/token", "/healthz"), timeout=30).json()
            assert set(health["checks"]) >= {"users.ldap", "users.robots", "users.ci"}, health
            yield IdentityStack(stack, issuer, config)
    finally:
        issuer.stop()
        slapd.stop()


def _push(dockerd: Dockerd, book: Ledger, client: DockerClient, tagged: str) -> Any:
    dockerd.docker("tag", tiny_image(dockerd, book, "identity"), tagged)
    return client.run("push", tagged)


def _pulled_again(dockerd: Dockerd, client: DockerClient, tagged: str, digest: str) -> None:
    dockerd.docker("rmi", tagged)
    pulled = client.run("pull", tagged)
    assert pulled.returncode == 0, pulled.stderr
    assert digest in pulled.stdout


def _digest(pushed: Any) -> str:
    assert pushed.returncode == 0, pushed.stderr
    found = DIGEST.search(pushed.stdout)
    assert found, pushed.stdout
    return found.group(1)


def _denied(result: Any) -> None:
    assert result.returncode != 0
    assert "denied" in result.stderr.lower(), result.stderr


def test_ldap_users_push_and_pull_by_group(
    dockerd: Dockerd, engine_ledger: Ledger, identity_stack: IdentityStack, tmp_path: Path
) -> None:
    s = identity_stack
    alice = DockerClient(dockerd, tmp_path / "alice")  # group developers: pull, push
    dave = DockerClient(dockerd, tmp_path / "dave")  # group auditors: pull only
    bob = DockerClient(dockerd, tmp_path / "bob")  # no group

    login = alice.login(s.host, "alice", PASSWORDS["alice"])
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    stored = stored_login(alice.config(), s.host)
    assert stored.get("identitytoken") and PASSWORDS["alice"] not in str(stored)
    tagged = f"{s.repo('ldapteam')}:v1"
    digest = _digest(_push(dockerd, engine_ledger, alice, tagged))
    _pulled_again(dockerd, alice, tagged, digest)

    assert dave.login(s.host, "dave", PASSWORDS["dave"]).returncode == 0
    _pulled_again(dockerd, dave, tagged, digest)
    _denied(_push(dockerd, engine_ledger, dave, f"{s.repo('ldapteam')}:dave"))

    assert bob.login(s.host, "bob", PASSWORDS["bob"]).returncode == 0
    _denied(bob.run("pull", tagged))  # no group, no rule: nothing

    wrong = alice.login(s.host, "carol", "not-" + PASSWORDS["carol"])
    assert wrong.returncode != 0
    assert "wrong username or password" in wrong.stderr, wrong.stderr


def test_ci_identity_token_as_the_password(
    dockerd: Dockerd, engine_ledger: Ledger, identity_stack: IdentityStack, tmp_path: Path
) -> None:
    s = identity_stack
    name = f"team/app-{uuid.uuid4().hex[:8]}"
    tagged = f"{s.host}/{name}:v1"
    job = DockerClient(dockerd, tmp_path / "job")  # a job on a protected branch
    login = job.login(s.host, "ci", s.issuer.sign(repository=name))
    assert login.returncode == 0, login.stderr
    stored = stored_login(job.config(), s.host)
    assert not stored.get("identitytoken")  # no refresh token outlives the job's token
    digest = _digest(_push(dockerd, engine_ledger, job, tagged))
    _pulled_again(dockerd, job, tagged, digest)
    _denied(_push(dockerd, engine_ledger, job, f"{s.host}/team/other-{uuid.uuid4().hex[:8]}:v1"))

    branch = DockerClient(dockerd, tmp_path / "branch")  # same repository, unprotected ref
    token = s.issuer.sign(repository=name, ref="refs/heads/topic", ref_protected=False)
    assert branch.login(s.host, "ci", token).returncode == 0
    _pulled_again(dockerd, branch, tagged, digest)
    _denied(_push(dockerd, engine_ledger, branch, f"{s.host}/{name}:topic"))

    expired = DockerClient(dockerd, tmp_path / "expired")
    old = s.issuer.sign(repository=name, iat=int(time.time()) - 900, exp=int(time.time()) - 600)
    refused = expired.login(s.host, "ci", old)
    assert refused.returncode != 0
    assert "identity token refused: expired" in refused.stderr, refused.stderr


def test_robot_docker_and_podman_then_revoked(
    dockerd: Dockerd,
    engine_ledger: Ledger,
    identity_stack: IdentityStack,
    podman: Podman,
    tmp_path: Path,
) -> None:
    s = identity_stack
    robot = f"deployer-{uuid.uuid4().hex[:6]}"
    created = s.robot("create", robot, "--allow", "repository:robots/*:pull,push")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()

    docker = DockerClient(dockerd, tmp_path / "robot")
    deadline = time.monotonic() + 10  # the service re-reads the robot file within 0.5 s
    while (login := docker.login(s.host, robot, secret)).returncode != 0:
        assert time.monotonic() < deadline, login.stderr
        time.sleep(ROBOT_RELOAD)
    assert stored_login(docker.config(), s.host).get("identitytoken")
    tagged = f"{s.repo('robots')}:v1"
    digest = _digest(_push(dockerd, engine_ledger, docker, tagged))
    _pulled_again(dockerd, docker, tagged, digest)
    # the ACL allows robots everything; this robot's own allow list does not
    _denied(_push(dockerd, engine_ledger, docker, f"{s.repo('ldapteam')}:robot"))

    login = podman.login(s.host, robot, secret, PLAIN)
    assert login.returncode == 0, login.stderr
    pulled = podman.run("pull", PLAIN, tagged)
    assert pulled.returncode == 0, pulled.stderr
    assert podman.run("image", "exists", tagged).returncode == 0

    revoked = s.robot("revoke", robot)
    assert revoked.returncode == 0, revoked.stderr
    # within seconds: a new login fails, and the refresh token docker holds is not renewed
    deadline = time.monotonic() + 10
    while (
        again := DockerClient(dockerd, tmp_path / "again").login(s.host, robot, secret)
    ).returncode == 0:
        assert time.monotonic() < deadline, "the revoked robot could still log in"
        time.sleep(ROBOT_RELOAD)
    assert "wrong username or password" in again.stderr, again.stderr
    dockerd.docker("rmi", tagged)
    held = docker.run("pull", tagged)
    assert held.returncode != 0
    assert "refresh token revoked" in held.stderr, held.stderr
    refused = podman.login(s.host, robot, secret, PLAIN)
    assert refused.returncode != 0
    assert "invalid username/password" in refused.stderr.lower(), refused.stderr
    podman.run("rmi", tagged)
    assert podman.run("pull", PLAIN, tagged).returncode != 0  # its stored secret is dead too


def test_the_stacks_token_service_counts_each_backend(identity_stack: IdentityStack) -> None:
    """Under gunicorn with the multiprocess metrics directory (the stack's way), a login of
    each kind is on its own series, and every backend is up."""
    s = identity_stack
    base = s.stack.token_url.removesuffix("/token")
    service = s.stack.service

    def login(user: str, password: str) -> int:
        params = {"service": service, "scope": "repository:ldapteam/x:pull"}
        r = httpx.get(s.stack.token_url, params=params, auth=(user, password), timeout=30)
        return r.status_code

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"{base}/metrics", timeout=30).text
        return {
            (x.name, tuple(sorted(x.labels.items()))): x.value
            for family in text_string_to_metric_families(text)
            for x in family.samples
        }

    def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted(labels.items()))

    def logins(backend: str, kind: str, result: str, seen: Mapping[Any, float]) -> float:
        return seen.get(key("keelhaul_authn_total", backend=backend, kind=kind, result=result), 0)

    before = samples()
    assert login("carol", PASSWORDS["carol"]) == 200
    assert login("ci", s.issuer.sign(repository="ldapteam/x")) == 200
    assert login("admin", s.stack.password("admin")) == 200
    after = samples()
    for backend, kind in (("ldap", "ldap"), ("ci", "oidc"), ("htpasswd", "htpasswd")):
        done = sum(logins(backend, kind, r, after) - logins(backend, kind, r, before)
                   for r in ("match", "cached"))  # fmt: skip
        assert done == 1, (backend, kind)
    for backend, kind in (("ldap", "ldap"), ("ci", "oidc"), ("robots", "robots")):
        assert after[key("keelhaul_authn_backend_up", backend=backend, kind=kind)] == 1
