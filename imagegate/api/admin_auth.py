"""The admin API's one check: `Authorization: Bearer <admin token>`, compared in constant time.

Admin routes live under `/admin/` and are for operators only; an API key never works there
and the admin token never works on `/v1` (they are different credentials on purpose).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from imagegate.api import deps
from imagegate.errors import AuthenticationError, PermissionDeniedError


async def require_admin(request: Request,
                        admin_token: Annotated[str, Depends(deps.admin_token)]) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "The admin API needs 'Authorization: Bearer <admin token>'.",
            code="missing_admin_token",
        )
    expected = admin_token.encode()
    if not hmac.compare_digest(token.strip().encode(), expected):
        raise PermissionDeniedError("The admin token is not valid.", code="invalid_admin_token")
