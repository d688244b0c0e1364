"""OAuth2 refresh tokens: signed, opaque to clients, bound to the user and their credentials.

A refresh token carries the user name and a fingerprint (HMAC) of the account's revision
(:mod:`keelhaul.auth.authn`: the stored hash for htpasswd, DN and stamps for LDAP, the
secret's id for a robot), signed with the server secret. It is accepted only while the
user still exists with the same revision: changing the password, revoking a robot or
removing the user revokes every refresh token issued before, within the backend's reload
interval (LDAP: its ``lookup_ttl``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from keelhaul.auth.authn import Account
from keelhaul.errors import Unauthorized

__all__ = ["RefreshTokens"]

_SALT = "keelhaul.refresh-token.v1"


class RefreshTokens:
    def __init__(self, secret: bytes, *, max_age: int) -> None:
        self._secret = secret
        self._max_age = max_age
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)

    def _fingerprint(self, user: Account) -> str:
        mac = hmac.new(self._secret, b"refresh\0" + user.revision, hashlib.sha256)
        return mac.hexdigest()[:32]

    def issue(self, user: Account, service: str) -> str:
        return str(
            self._serializer.dumps({"u": user.name, "f": self._fingerprint(user), "s": service})
        )

    def verify(self, token: str, service: str, find: Callable[[str], Account | None]) -> Account:
        """The user ``token`` was issued to, if signature, age, service and revision still match."""
        try:
            data = self._serializer.loads(token, max_age=self._max_age)
        except SignatureExpired:
            raise Unauthorized("refresh token expired; log in again") from None
        except BadSignature:
            raise Unauthorized("invalid refresh token") from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("u"), str)
            or data.get("s") != service
        ):
            raise Unauthorized("invalid refresh token")
        user = find(data["u"])
        if user is None or not hmac.compare_digest(str(data.get("f", "")), self._fingerprint(user)):
            raise Unauthorized("refresh token revoked; log in again")
        return user
