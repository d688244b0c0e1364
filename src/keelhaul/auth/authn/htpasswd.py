"""An htpasswd user store, in the same bcrypt format the registry's own htpasswd auth reads.

The file is re-read when its (inode, size, mtime) changes, checked at most once per
``reload_interval`` seconds on the request path (one ``stat``), so edits take effect within
seconds without a restart. A file that turns unreadable keeps the last good copy and shows
in health; a removed or changed user is effective at the next check.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from keelhaul.auth.authn import Account, Events, Outcome, bcrypt_cost, check_bcrypt, labels_of
from keelhaul.errors import BackendError

__all__ = ["HtpasswdFile", "ParsedHtpasswd", "hash_password", "parse_htpasswd"]

log = logging.getLogger(__name__)

_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


def hash_password(password: str, cost: int = 10) -> str:
    """A ``$2y$`` bcrypt hash, as ``htpasswd -B`` writes it (the registry accepts it)."""
    raw = bcrypt.hashpw(password.encode("utf-8")[:72], bcrypt.gensalt(rounds=cost))
    return "$2y$" + raw.decode("ascii")[4:]


@dataclass(frozen=True)
class ParsedHtpasswd:
    users: Mapping[str, bytes]
    problems: tuple[str, ...]


def parse_htpasswd(text: str) -> ParsedHtpasswd:
    """Pure parser. Non-bcrypt entries are skipped and reported (by line number, no content)."""
    users: dict[str, bytes] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not name:
            problems.append(f"line {number}: not of the form name:hash")
            continue
        if not _BCRYPT.fullmatch(hashed):
            problems.append(
                f"line {number}: user {name!r} has a non-bcrypt hash (only bcrypt is supported)"
            )
            continue
        if name in users:
            problems.append(f"line {number}: user {name!r} appears again; the first entry wins")
            continue
        users[name] = hashed.encode("ascii")
    return ParsedHtpasswd(users=users, problems=tuple(problems))


class HtpasswdFile:
    """Revision: the stored hash itself (so a cache entry made before an upgrade stays valid)."""

    kind = "htpasswd"
    throttled = True
    by_token = False

    def __init__(
        self,
        path: Path,
        *,
        reload_interval: float = 2.0,
        labels: Mapping[str, Mapping[str, list[str]]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "htpasswd",
    ) -> None:
        self.name = name
        self.events = Events()
        self._path = path
        self._interval = reload_interval
        self._clock = clock
        self._labels = {u: labels_of(m) for u, m in (labels or {}).items()}
        self._users: Mapping[str, bytes] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._error = ""
        self._loaded_once = False
        self._check(force=True)
        if not self._loaded_once:
            raise BackendError(f"htpasswd file {path} cannot be read ({self._error})")

    def _check(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._checked < self._interval:
            return
        self._checked = now
        try:
            st = os.stat(self._path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if stamp == self._stamp:
                return
            text = self._path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = (
                exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            )
            if self._error != reason:
                log.error(
                    "htpasswd file %s unreadable (%s); keeping the last good copy",
                    self._path,
                    reason,
                )
            self._error = reason
            self.events.note("reload_failed")
            return
        parsed = parse_htpasswd(text)
        for problem in parsed.problems:
            log.warning("htpasswd %s: %s", self._path, problem)
        self._users = parsed.users
        self._stamp = stamp
        self._error = ""
        self._loaded_once = True
        self.events.note("reload")
        log.info("htpasswd %s loaded: %d users", self._path, len(parsed.users))

    def lookup(self, username: str) -> Account | None:
        self._check()
        hashed = self._users.get(username)
        if hashed is None:
            return None
        return Account(username, hashed, self._labels.get(username, {}), self.name)

    def authenticate(self, username: str, password: str) -> Outcome:
        account = self.lookup(username)
        if account is None:
            return "no_match"
        return account if check_bcrypt(password, account.revision) else "wrong_password"

    def health(self) -> tuple[bool, str]:
        self._check()
        if self._error:
            return False, f"htpasswd unreadable ({self._error}); serving the last good copy"
        return True, f"{len(self._users)} users"

    def typical_cost(self) -> int | None:
        for hashed in self._users.values():
            return bcrypt_cost(hashed)
        return None

    def close(self) -> None:
        pass
