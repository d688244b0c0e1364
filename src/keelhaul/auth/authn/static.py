"""Users declared in the config file (bcrypt hashes), for small or bootstrap deployments."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from keelhaul.auth.authn import Account, Events, Outcome, bcrypt_cost, check_bcrypt, labels_of
from keelhaul.auth.authn.options import StaticUser

__all__ = ["StaticUsers"]


def _revision(user: StaticUser) -> bytes:
    """A hash of the whole config entry: any edit to it (hash or labels) revokes cached logins."""
    entry = {"password_hash": user.password_hash.get_secret_value(), "labels": user.labels}
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode("utf-8")).hexdigest().encode()


class StaticUsers:
    kind = "static"
    throttled = True
    by_token = False

    def __init__(
        self,
        users: Mapping[str, StaticUser],
        labels: Mapping[str, Mapping[str, list[str]]] | None = None,
        *,
        name: str = "static",
    ) -> None:
        self.name = name
        self.events = Events()
        extra = labels or {}
        self._hashes = {
            n: u.password_hash.get_secret_value().encode("ascii") for n, u in users.items()
        }
        self._users = {
            n: Account(n, _revision(u), labels_of(u.labels, extra.get(n, {})), name)
            for n, u in users.items()
        }

    def lookup(self, username: str) -> Account | None:
        return self._users.get(username)

    def authenticate(self, username: str, password: str) -> Outcome:
        account = self._users.get(username)
        if account is None:
            return "no_match"
        return account if check_bcrypt(password, self._hashes[username]) else "wrong_password"

    def health(self) -> tuple[bool, str]:
        return True, f"{len(self._users)} users"

    def typical_cost(self) -> int | None:
        for hashed in self._hashes.values():
            return bcrypt_cost(hashed)
        return None

    def close(self) -> None:
        pass
