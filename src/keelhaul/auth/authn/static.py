"""Users declared in the config file (bcrypt hashes), for small or bootstrap deployments."""

from __future__ import annotations

from collections.abc import Mapping

from keelhaul.auth.authn import StoredUser, bcrypt_cost
from keelhaul.auth.settings import StaticUser

__all__ = ["StaticUsers"]


class StaticUsers:
    name = "static"

    def __init__(
        self,
        users: Mapping[str, StaticUser],
        labels: Mapping[str, Mapping[str, list[str]]] | None = None,
    ) -> None:
        extra = labels or {}
        self._users = {
            name: StoredUser(
                name,
                u.password_hash.get_secret_value().encode("ascii"),
                {k: tuple(v) for k, v in {**u.labels, **extra.get(name, {})}.items()},
                self.name,
            )
            for name, u in users.items()
        }

    def lookup(self, username: str) -> StoredUser | None:
        return self._users.get(username)

    def health(self) -> tuple[bool, str]:
        return True, f"{len(self._users)} users"

    def typical_cost(self) -> int | None:
        for user in self._users.values():
            return bcrypt_cost(user.password_hash)
        return None
