"""Robot accounts: named machine credentials with their own allow list, expiry and revocation.

Stored in one JSON file (mode 0600) that ``keelhaul auth robot`` writes and every replica
re-reads when it changes, like htpasswd (checked at most every ``reload_interval`` s on
the request path; mount the same file, or the same Secret, in every replica). A file was
chosen over Redis so that robots work without Redis and a Redis outage cannot lock out
CI; Redis stays a cache, never a source of truth.

* The secret is 256 random bits, shown once; the file keeps only its SHA-256. A slow hash
  (bcrypt) protects guessable passwords; for a random 256-bit secret a fast hash is as
  safe and keeps even a cold robot login cheap.
* The revision is the secret's random id: revoking (removing) a robot, or creating it
  again, makes its cached verifications and refresh tokens unreachable at the next reload.
  Expiry is checked on every lookup, cached logins included.
* A robot's grant is its allow list intersected with the ACL (:attr:`Account.limit`).
* Robots are not throttled: their secrets cannot be guessed, and a CI job sharing an
  address with a misbehaving client must not be locked out by its failures.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from keelhaul.atomicfile import write_text
from keelhaul.auth.acl import Acl
from keelhaul.auth.authn import Account, Events, Outcome, labels_of
from keelhaul.auth.settings import AclMatch, AclRule
from keelhaul.errors import BackendError, ConfigError

__all__ = [
    "Robot",
    "RobotAccounts",
    "RobotFile",
    "compile_allow",
    "new_robot",
    "parse_allow",
    "parse_duration",
]

log = logging.getLogger(__name__)

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_ACTION = re.compile(r"[a-z*][a-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Robot:
    name: str
    id: str
    sha256: str
    allow: tuple[str, ...]
    description: str = ""
    created: float = 0.0
    expires: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


def parse_duration(text: str) -> int:
    """``90d``, ``12h``, ``2w`` → seconds."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 90d, 12h or 2w")
    return int(m.group(1)) * _UNIT[m.group(2)]


def parse_allow(text: str) -> AclRule:
    """``repository:team/*:pull,push`` → an ACL rule (globs as in the ACL)."""
    kind, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    wanted = [a.strip() for a in actions.split(",") if a.strip()]
    if not (sep and sep2 and kind and name and wanted) or not all(
        _ACTION.fullmatch(a) for a in wanted
    ):
        raise ValueError(f"{text!r} is not of the form TYPE:NAME-PATTERN:ACTION[,ACTION]")
    return AclRule(match=AclMatch(type=kind, name=name), actions=wanted)


def compile_allow(allow: tuple[str, ...]) -> Acl:
    try:
        return Acl.compile([parse_allow(a) for a in allow])
    except ConfigError as exc:
        raise ValueError("; ".join(exc.problems)) from None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_robot(
    name: str,
    allow: tuple[str, ...],
    *,
    now: float,
    expires_in: int | None = None,
    description: str = "",
) -> tuple[Robot, str]:
    """A robot and its secret (the only time the secret exists in clear)."""
    if not NAME.fullmatch(name):
        raise ValueError(f"robot name {name!r}: use lower-case letters, digits, '.', '_', '-'")
    if not allow:
        raise ValueError("a robot needs at least one --allow")
    compile_allow(allow)
    secret = "khr_" + secrets.token_urlsafe(32)
    robot = Robot(
        name=name,
        id=secrets.token_hex(8),
        sha256=_digest(secret),
        allow=allow,
        description=description,
        created=now,
        expires=now + expires_in if expires_in else None,
    )
    return robot, secret


def parse_robots(text: str) -> dict[str, Robot]:
    data = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict) or not isinstance(data.get("robots", {}), dict):
        raise ValueError("not a keelhaul robot file")
    out: dict[str, Robot] = {}
    for name, raw in data.get("robots", {}).items():
        out[name] = Robot(
            name=name,
            id=str(raw["id"]),
            sha256=str(raw["sha256"]),
            allow=tuple(raw["allow"]),
            description=str(raw.get("description", "")),
            created=float(raw.get("created", 0)),
            expires=float(raw["expires"]) if raw.get("expires") is not None else None,
        )
    return out


def dump_robots(robots: Mapping[str, Robot]) -> str:
    body = {n: {k: v for k, v in asdict(r).items() if k != "name"} for n, r in robots.items()}
    return json.dumps({"version": 1, "robots": body}, indent=2, sort_keys=True) + "\n"


class RobotFile:
    """The CLI's side: read, change and write the file under an exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Robot]:
        try:
            return parse_robots(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"robot file {self.path} unreadable ({type(exc).__name__})"
            ) from None

    @contextmanager
    def changing(self) -> Iterator[dict[str, Robot]]:
        """Yield the robots; what the block leaves in the dict is written back atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            robots = self.read()
            yield robots
            write_text(self.path, dump_robots(robots), mode=0o600, fsync=True)
        finally:
            os.close(fd)


class RobotAccounts:
    """The token service's side: the file re-read on change; expiry checked per lookup."""

    kind = "robots"
    throttled = False
    by_token = False

    def __init__(
        self,
        path: Path,
        *,
        reload_interval: float = 2.0,
        labels: Mapping[str, Mapping[str, list[str]]] | None = None,
        name: str = "robots",
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.events = Events()
        self._file = RobotFile(path)
        self._interval = reload_interval
        self._clock = clock
        self._now = now
        self._labels = labels or {}
        self._accounts: dict[str, tuple[Robot, Account]] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._error = ""
        self._check(force=True)

    def _check(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._checked < self._interval:
            return
        self._checked = now
        try:
            st = os.stat(self._file.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            self._error = exc.strerror or type(exc).__name__
            return
        if stamp == self._stamp and not force:
            return
        try:
            robots = self._file.read()
        except BackendError as exc:
            if not self._error:
                log.error("%s; keeping the last good copy", exc)
            self._error = "unreadable"
            self.events.note("reload_failed")
            return
        accounts = {}
        for robot in robots.values():
            try:
                limit = compile_allow(robot.allow)
            except ValueError as exc:
                log.warning("robot %s skipped: %s", robot.name, exc)
                continue
            labels = labels_of({"robot": [robot.name]}, self._labels.get(robot.name, {}))
            account = Account(robot.name, b"robot:" + robot.id.encode(), labels, self.name, limit)
            accounts[robot.name] = (robot, account)
        self._accounts = accounts
        self._stamp = stamp
        self._error = ""
        self.events.note("reload")
        log.info("robots %s loaded: %d robots", self._file.path, len(accounts))

    def lookup(self, username: str) -> Account | None:
        self._check()
        found = self._accounts.get(username)
        if found is None or found[0].expired(self._now()):
            return None
        return found[1]

    def authenticate(self, username: str, password: str) -> Outcome:
        self._check()
        found = self._accounts.get(username)
        if found is None or found[0].expired(self._now()):
            return "no_match"
        if hmac.compare_digest(_digest(password), found[0].sha256):
            return found[1]
        return "wrong_password"

    def health(self) -> tuple[bool, str]:
        self._check()
        if self._error:
            return False, f"robot file {self._error}; serving the last good copy"
        now = self._now()
        active = sum(1 for r, _ in self._accounts.values() if not r.expired(now))
        return True, f"{active} active robots"

    def typical_cost(self) -> int | None:
        return None

    def close(self) -> None:
        pass
