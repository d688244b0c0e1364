"""Test helper: check a keelhaul token with PyJWT against the ring's public keys.

Lived in ``keelhaul.auth.signing`` while only tests used it. Importable from every tier
(``tests/`` is on ``sys.path`` through the root ``conftest.py``).
"""

from __future__ import annotations

import jwt

from keelhaul.auth.signing import KeyRing
from keelhaul.errors import Unauthorized


def verify(
    token: str, ring: KeyRing, *, audience: str, issuer: str, leeway: int = 0
) -> dict[str, object]:
    """The claims of ``token`` if a ring key signed it; raises :class:`Unauthorized` if not.

    Keys whose ``kid`` matches the header are tried first, then the others (kids collide
    under ``registry-v3``).
    """
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"malformed token: {exc}") from None
    candidates = sorted(ring.keys, key=lambda k: k.kid != kid)
    failure: jwt.InvalidTokenError | None = None
    for key in candidates:
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.alg],
                audience=audience,
                issuer=issuer,
                leeway=leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as exc:
            failure = exc
            continue
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"token rejected: {exc}") from None
        return claims
    raise Unauthorized(f"token rejected: {failure}")
