"""The HTTP side of every upstream adapter: one pooled session per channel, bearer auth,
deadlines, and the translation of every upstream failure into `imagegate.errors`.

Adapters speak their dialect in terms of paths and JSON; everything about sockets, status
codes and error bodies lives here, so routing sees one vocabulary of codes whatever the
vendor (`upstream_timeout`, `upstream_rate_limited`, …; see `translate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson
from yarl import URL

from imagegate import __version__
from imagegate.config import ChannelConfig
from imagegate.errors import CONTENT_POLICY, ProviderError, ProviderRejectedError
from imagegate.providers import holding
from imagegate.providers.draining import AnswerTooLarge, DrainingConnector, read_body
from imagegate.providers.spool import AnswerBody

T = TypeVar("T")
MiB = 1024 * 1024
# A JSON answer holds up to n base64 images; 10 x 4K PNGs fit comfortably below this.
DEFAULT_MAX_RESPONSE_BYTES = 512 * MiB
_MAX_MESSAGE_CHARS = 500
# Error codes and types by which upstreams say "our safety system refused this request"
# (OpenAI: `moderation_blocked` for gpt-image, `content_policy_violation` for DALL·E; the
# resellers' `sensitive_content`, `unsafe_prompt`, `content_filter`, ...), and phrases of
# messages that say it when the code is only a number (the 002 seed's `{"code": 400}`). All
# of them reach the client as imagegate's one code for it, CONTENT_POLICY.
_CONTENT_POLICY_WORDS = ("moderation", "content_policy", "content_filter", "safety",
                         "sensitive", "unsafe", "violation")
_CONTENT_POLICY_PHRASES = ("safety system", "content policy", "content_policy", "moderation",
                           "违规", "敏感")


def is_content_policy(code: str | None, kind: str | None = None,
                      message: str | None = None) -> bool:
    """Whether an upstream error's code, type or message says it refused the content."""
    words = f"{code or ''} {kind or ''}".lower()
    if any(word in words for word in _CONTENT_POLICY_WORDS):
        return True
    text = (message or "").lower()
    return any(phrase in text for phrase in _CONTENT_POLICY_PHRASES)


class UpstreamClient:
    """One aiohttp session per channel: base URL, bearer auth, timeouts, error translation."""

    def __init__(
        self, channel: ChannelConfig, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        loads: Callable[[bytes], Any] = orjson.loads,
    ) -> None:
        self.channel = channel
        # How a JSON answer is parsed: adapters whose answers carry base64 images pass
        # `big_json.loads` (the same result, without running megabytes through the parser).
        self._loads = loads
        self.base_url = channel.base_url
        self.origin = str(URL(channel.base_url).origin())
        self.max_response_bytes = max_response_bytes
        # One session per event loop the client is used on, opened on first use there:
        # aiohttp binds a session to the loop it was created in, and task runs read their
        # answers on the upstream reader's loop (`providers/reader.py`) while streamed calls
        # and calls outside a run stay on the caller's.
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            headers = {"User-Agent": f"imagegate/{__version__}"}
            secret = self.channel.secret()
            if secret:
                headers["Authorization"] = f"Bearer {secret}"
            session = self._sessions[loop] = aiohttp.ClientSession(
                # Sized from the channel, not aiohttp's default of 100: that silently held a
                # channel without `concurrency` to 100 upstream calls in flight (with a 2 s
                # upstream, 50 images/s whatever the demand). 0 is aiohttp's "unlimited".
                connector=DrainingConnector(limit=self.channel.concurrency or 0),
                timeout=aiohttp.ClientTimeout(
                    total=self.channel.timeout, sock_connect=self.channel.connect_timeout
                ),
                headers=headers,
                # The operator configured this host; environment proxies would make tests
                # on loopback (and the byte caps) depend on the shell they run in.
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                # What aiohttp buffers per answer before it stops reading the socket is
                # twice this. Answers are drained as they arrive (`providers/draining.py`),
                # so this is what one keeps when it can only wait (no room in memory, no
                # spool file). Before the drain, when 2,000 answers arrived at once, a 2 MiB
                # burst peaked at 2.3-2.9 GB of RSS at the default (64 KiB), 1.2-1.5 GB at
                # 16 KiB (bench/README.md).
                read_bufsize=16 * 1024,
            )
        return session

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        here = asyncio.get_running_loop()
        for loop, session in sessions.items():
            if loop is here:
                await session.close()
            elif loop.is_running():  # closed on its own loop (a loop that stopped took its
                # connections with it)
                closing = asyncio.run_coroutine_threadsafe(session.close(), loop)
                with contextlib.suppress(TimeoutError, RuntimeError):
                    await asyncio.wait_for(asyncio.wrap_future(closing), 10)

    def url_for(self, path: str) -> str:
        return self.base_url + path

    # post_json, post_form and get_json hand back `_send`'s awaitable rather than awaiting
    # it in a frame of their own: an `openai_compatible` call is held for the whole
    # generation (a minute or more, thousands at once), and every suspended frame on its
    # way down stays allocated that long.
    def post_json(
        self, path: str, body: dict[str, Any], *, params: dict[str, str] | None = None
    ) -> Awaitable[Any]:
        return self._send("POST", self.url_for(path), self._parsed, json=body, params=params)

    async def post_json_events(self, path: str, body: dict[str, Any],
                               on_event: Callable[[str, Any], Awaitable[None]]) -> None:
        """POST `body` and read the answer as Server-Sent Events (`stream: true`), calling
        `on_event(name, data)` for each as it arrives (data parsed as JSON). A non-2xx answer
        raises as `post_json` would; the whole stream is capped like any answer."""
        session = self._open()
        name = self.channel.name
        try:
            async with session.post(self.url_for(path), json=body) as response:
                if not 200 <= response.status < 300:
                    raw = await response.content.read(self.max_response_bytes)
                    raise translate(response.status, raw, response.headers,
                                    secret=self.channel.secret())
                total, event, data = 0, "", bytearray()
                while True:
                    try:  # one line holds a whole base64 image: far above the default cap
                        line = await response.content.readuntil(
                            b"\n", max_size=self.max_response_bytes)
                    except ValueError:
                        raise _too_large(name, self.max_response_bytes) from None
                    if not line:
                        break
                    total += len(line)
                    if total > self.max_response_bytes:
                        response.close()
                        raise _too_large(name, self.max_response_bytes)
                    text = line.rstrip(b"\r\n")
                    if not text:
                        if data:
                            await on_event(event or "message", _event_json(name, bytes(data)))
                        event, data = "", bytearray()
                    elif text.startswith(b"event:"):
                        event = text[6:].strip().decode()
                    elif text.startswith(b"data:"):
                        data += text[5:].strip()
                if data:
                    await on_event(event or "message", _event_json(name, bytes(data)))
        except TimeoutError:
            raise ProviderError(f"{name}: the upstream did not answer in time",
                                code="upstream_timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ProviderError(f"{name}: could not reach the upstream ({type(exc).__name__})",
                                code="upstream_unavailable") from None

    def post_form(self, path: str, form: aiohttp.FormData) -> Awaitable[Any]:
        return self._send("POST", self.url_for(path), self._parsed, data=form)

    def get_json(self, path: str) -> Awaitable[Any]:
        return self._send("GET", self.url_for(path), self._parsed)

    async def get_bytes(self, url: str, max_bytes: int) -> bytes:
        """Download a result from this channel's own origin, refusing more than max_bytes."""
        if str(URL(url).origin()) != self.origin:
            # Only the operator's configured host skips the SSRF guard (see ResultDownloader).
            raise ProviderError("result URL is not on the channel's origin",
                                code="upstream_bad_result")
        return await self._send("GET", url, self._download, cap=max_bytes)

    def _download(self, status: int, _headers: Mapping[str, str], body: bytes) -> bytes:
        if not 200 <= status < 300:
            raise ProviderError(f"{self.channel.name}: result download answered HTTP {status}",
                                code="upstream_bad_result")
        return body

    def _parsed(self, status: int, headers: Mapping[str, str], body: bytes) -> Any:
        """A JSON answer's value, or the error a non-2xx answer stands for."""
        if not 200 <= status < 300:
            raise translate(status, body, headers, secret=self.channel.secret())
        try:
            return self._loads(body)
        except orjson.JSONDecodeError:
            raise bad_response(self.channel.name, "the answer is not JSON") from None

    def _send(
        self, method: str, url: str, answer: Callable[[int, Mapping[str, str], bytes], T], *,
        cap: int | None = None, json: Any = None, data: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Awaitable[T]:
        """One request; `answer(status, headers, body)` makes the result of the whole body
        (read within `cap` bytes, default `max_response_bytes`). The request's options are
        named rather than `**kwargs`: that dict stayed allocated with the suspended frame
        for as long as an upstream holds the call.

        A task run's exchange runs on the upstream reader's loop when its budget has one
        (`providers/reader.py`); the run's holding goes with it by hand, as context variables
        stay in this thread."""
        held = holding.current()
        reader = held.budget.reader if held is not None else None
        exchange = self._exchange(method, url, answer, held, cap=cap, json=json, data=data,
                                  params=params)
        # Handed back unawaited, like post_json's: one suspended frame fewer per held call.
        return exchange if reader is None else reader.run(exchange)

    async def _exchange(
        self, method: str, url: str, answer: Callable[[int, Mapping[str, str], bytes], T],
        held: holding.Holding | None, *, cap: int | None, json: Any, data: Any,
        params: Mapping[str, str] | None,
    ) -> T:
        cap = self.max_response_bytes if cap is None else cap
        session = self._open()
        name = self.channel.name
        # The session's `total` timeout, which aiohttp enforces only in its own reads.
        deadline = asyncio.get_running_loop().time() + self.channel.timeout
        try:
            async with session.request(method, url, json=json, data=data,
                                       params=params) as response:
                if response.content_length is not None and response.content_length > cap:
                    response.close()
                    raise _too_large(name, cap)
                # Counted against the process's bound before it is read: an answer that
                # does not fit waits for room in a spool file (`providers/spool.py`). The
                # pieces are kept as the socket delivered them (`providers/draining.py`),
                # joined once at the end: growing a bytearray (or `iter_chunked(n)`) copied
                # a 2.9 MB answer once or twice more.
                body = AnswerBody(held)
                try:
                    await body.expect(response.content_length or 0)
                    await read_body(response, body, cap, deadline)
                    raw = await body.finish()
                except AnswerTooLarge:
                    response.close()
                    raise _too_large(name, cap) from None
                finally:
                    body.close()
                status, headers = response.status, response.headers
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors (and ClientErrors)
            raise ProviderError(f"{name}: the upstream did not answer in time",
                                code="upstream_timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ProviderError(f"{name}: could not reach the upstream ({type(exc).__name__})",
                                code="upstream_unavailable") from None
        return answer(status, headers, raw)


def _event_json(channel: str, data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise bad_response(channel, "a streamed event is not JSON") from None


def _too_large(name: str, cap: int) -> ProviderError:
    return ProviderError(f"{name}: the upstream's answer is larger than {cap} bytes",
                         code="upstream_bad_response")


def bad_response(channel: str, why: str) -> ProviderError:
    """A 2xx answer that is not the shape the dialect documents."""
    return ProviderError(f"{channel}: unexpected upstream answer: {why}",
                         code="upstream_bad_response")


def translate(
    status: int, body: Any, headers: Mapping[str, str] | None = None, *,
    secret: str | None = None,
) -> ProviderError:
    """The exception for a non-2xx upstream answer (see the table in the module's docs).

    `body` may be raw bytes, text, or already-parsed JSON. `secret` (the channel's key) is
    blanked out of the message in case an upstream echoes it back."""
    message, code = _error_fields(body)
    if secret:
        message = message.replace(secret, "***")
    message = message or f"HTTP {status}"
    if status in (400, 413, 422):
        if is_content_policy(code, message=message):
            return ProviderRejectedError(message, code=CONTENT_POLICY)
        return ProviderRejectedError(message, code=code or "upstream_rejected")
    text = f"upstream answered HTTP {status}: {message}"
    if status in (401, 403):
        return ProviderError(text, code="upstream_auth")
    if status == 402:
        return ProviderError(text, code="upstream_quota")
    if status == 404:
        return ProviderError(text, code="upstream_not_found")
    if status == 408:
        return ProviderError(text, code="upstream_timeout")
    if status == 429 and code == "insufficient_quota":
        # OpenAI says "out of credit" with a 429: waiting will not help, another channel may.
        return ProviderError(text, code="upstream_quota")
    if status == 429:
        after = retry_after_seconds((headers or {}).get("Retry-After"))
        return ProviderError(text, retry_after=after, code="upstream_rate_limited")
    # 5xx and any 4xx we have no rule for: the channel misbehaves, another may not.
    return ProviderError(text, code="upstream_error")


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_fields(body: Any) -> tuple[str, str | None]:
    """(message, code) from the error bodies of every dialect we speak."""
    if isinstance(body, bytes | bytearray):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        return body.strip()[:_MAX_MESSAGE_CHARS], None
    if not isinstance(body, dict):
        return "", None
    inner: Any = body.get("error")
    if isinstance(inner, str):
        return inner[:_MAX_MESSAGE_CHARS], _code(body.get("code"))
    source: dict[str, Any] = inner if isinstance(inner, dict) else body
    message = source.get("message") or source.get("msg") or body.get("message") or ""
    return str(message)[:_MAX_MESSAGE_CHARS], _code(source.get("code"))


def _code(value: Any) -> str | None:
    # OpenAI codes are strings ("moderation_blocked"); some resellers send numbers (400),
    # which say nothing the status does not, so only strings are kept.
    return value if isinstance(value, str) and value else None
