"""Who may look: the viewer token (``RECSYS_DASHBOARD_TOKEN``) or the admin token.

Sent as the password of HTTP Basic authentication (any user name: the browser asks for it on
the 401 challenge) or as ``Authorization: Bearer <token>``; never in the URL. Compared in
constant time with every configured token. With neither token set the dashboard does not
exist (404): it is never public by default.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from typing import Annotated

from fastapi import Depends, Header, HTTPException

from gateway.serving.deps import ADMIN_TOKEN_ENV

DASHBOARD_TOKEN_ENV = "RECSYS_DASHBOARD_TOKEN"
CHALLENGE = 'Basic realm="recsys dashboard", charset="UTF-8"'


def configured_tokens() -> list[str]:
    return [t for t in (os.environ.get(DASHBOARD_TOKEN_ENV, ""), os.environ.get(ADMIN_TOKEN_ENV, "")) if t]


def presented_token(authorization: str | None) -> str | None:
    """The token in an ``Authorization`` header (Basic: the password; Bearer: the token)."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, colon, password = decoded.partition(":")
        return password if colon and password else None
    return None


def token_matches(given: str, tokens: list[str]) -> bool:
    """Constant time in the tokens' contents: every configured token is compared."""
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given.encode(), token.encode())
    return ok


async def require_viewer(
    authorization: Annotated[
        str | None, Header(description="Basic (any user, the token as password) or Bearer <token>")
    ] = None,
) -> None:
    tokens = configured_tokens()
    if not tokens:
        raise HTTPException(
            404, f"the dashboard is off: set {DASHBOARD_TOKEN_ENV} on the server to enable it"
        )
    given = presented_token(authorization)
    if given is None or not token_matches(given, tokens):
        raise HTTPException(
            401,
            "the dashboard needs the viewer token: HTTP Basic (any user name, the token as password) or Bearer",
            headers={"WWW-Authenticate": CHALLENGE},
        )


ViewerDep = Annotated[None, Depends(require_viewer)]
