"""The admin side of the client: the `/admin/…` routes, behind the admin token (used by
`imagegate channels` and `imagegate moderation`).

Its errors keep apart what a caller treats differently: no server answering at all (a CLI
can fall back to what the configuration says) and a server that answered with an error (a
wrong token, say), or with something that is not an answer of ours.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from imagegate.client.session import BearerSession


class AdminError(Exception):
    """Any failure of an admin call."""


class ServerUnreachable(AdminError):
    """No server answered at the URL (connection refused, name not resolved, timed out)."""


class AdminAnswerError(AdminError):
    """The server answered with an error, or with a body that is not what was asked for."""

    def __init__(self, url: str, status: int, message: object) -> None:
        self.url, self.status, self.message = url, status, message
        super().__init__(f"{url} answered {status}: {message}")


class UnexpectedAnswer(AdminError):
    """Something answered, but not with JSON (another program on the port, a proxy page)."""

    def __init__(self, url: str, detail: str) -> None:
        self.url, self.detail = url, detail
        super().__init__(f"unexpected answer from {url}: {detail}")


class AdminClient(BearerSession):
    """`async with AdminClient(url, token) as admin: rows = await admin.channels()`.

    `admin_token` None sends no `Authorization` header: the server then answers 401, which
    reaches the caller as an AdminAnswerError like any other refusal."""

    def __init__(self, base_url: str, admin_token: str | None, *,
                 timeout: float = 30.0) -> None:
        super().__init__(base_url, admin_token, timeout=timeout)
        # Errors name the server as the caller wrote it; requests go to the normalized form.
        self.url = base_url

    async def channels(self) -> list[dict[str, Any]]:
        """`GET /admin/channels`: each upstream channel's configuration and live state."""
        status, body = await self._get("/admin/channels")
        if status != 200 or not isinstance(body, list):
            raise AdminAnswerError(self.url, status, _message(body))
        return body

    async def moderation_test(self, prompt: str, key_id: str | None = None,
                              moderation: str = "auto") -> dict[str, Any]:
        """`POST /admin/moderation/test`: whether and why the server would refuse `prompt`."""
        body: dict[str, Any] = {"prompt": prompt, "moderation": moderation}
        if key_id is not None:
            body["key_id"] = key_id
        return await self._object("POST", "/admin/moderation/test", body)

    async def moderation_reload(self) -> dict[str, Any]:
        """`POST /admin/moderation/reload`: re-read every blocklist source."""
        return await self._object("POST", "/admin/moderation/reload", None)

    async def _object(self, method: str, path: str, body: Any) -> dict[str, Any]:
        status, answer = await self._send(method, path, body)
        if status != 200 or not isinstance(answer, dict):
            raise AdminAnswerError(self.url, status, _message(answer))
        return answer

    async def _get(self, path: str) -> tuple[int, Any]:
        return await self._send("GET", path, None)

    async def _send(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        try:
            async with self.session.request(method, self.base_url + path,
                                            json=body) as resp:
                # content_type=None: an error page served as text/html still gets parsed or
                # reported, rather than refused on its header alone.
                answer: Any = await resp.json(content_type=None)
                return resp.status, answer
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise ServerUnreachable(str(exc) or type(exc).__name__) from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise UnexpectedAnswer(self.url, str(exc)) from None


def _message(body: Any) -> object:
    """The `error.message` of an OpenAI-style error body; any other body as it is."""
    if isinstance(body, dict):
        error = body.get("error", {})
        return error.get("message") if isinstance(error, dict) else None
    return body
