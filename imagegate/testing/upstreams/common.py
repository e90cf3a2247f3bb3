"""What every fake upstream shares: a real HTTP server on loopback, request recording,
planned faults, bearer auth, and real PNG results served from its own `/files/` route.

A dialect subclass adds its routes (`routes()`) and its error body (`error_body()`); its
submit/generation handlers call `await self.begin(request)`, which records the request,
checks the key and applies the next planned fault.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import orjson
import pyvips
from aiohttp import BodyPartReader, web

FaultKind = Literal["http", "drop", "hang"]


@dataclass
class Fault:
    """One planned misbehaviour, consumed in order by the submit/generation endpoints."""

    status: int = 500
    body: Any = None  # None: the dialect's own error body for `status`
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    kind: FaultKind = "http"  # drop = close the connection, hang = never answer


@dataclass(frozen=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None  # the parsed JSON body, when it was JSON
    form: list[FormPart] = field(default_factory=list)  # multipart parts, in order

    def fields(self) -> dict[str, Any]:
        """The top-level JSON object, or a multipart body's text fields (last one wins)."""
        if isinstance(self.json, dict):
            return dict(self.json)
        return {p.name: p.text for p in self.form if p.filename is None}

    def files(self, name: str | None = None) -> list[FormPart]:
        return [p for p in self.form
                if p.filename is not None and (name is None or p.name == name)]

    def sent_fields(self) -> set[str]:
        """Every field name the client sent (JSON keys or multipart part names)."""
        if isinstance(self.json, dict):
            return set(self.json)
        return {p.name for p in self.form}


class FakeUpstream:
    """Base of the fake upstream servers (tests and bench/ use them over real HTTP)."""

    def __init__(self, *, api_key: str = "sk-fake", latency: float = 0.0) -> None:
        self.api_key = api_key
        self.latency = latency
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.submissions = 0
        self._faults: list[Fault] = []
        self._files: dict[str, tuple[bytes, str]] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> str:
        """Bind (port 0: any free port) and return the base URL `http://127.0.0.1:PORT`."""
        app = web.Application(client_max_size=1024 * 1024 * 1024)
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers so the runner can finish
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # ------------------------------------------------------------------ dialect hooks

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/files/{name}", self._serve_file)]

    def error_body(self, status: int, message: str | None = None,
                   code: str | None = None) -> Any:
        """The dialect's error body for `status` (subclasses implement their seed's)."""
        return {"error": {"message": message or f"HTTP {status}", "code": code}}

    def error_headers(self, status: int) -> dict[str, str]:
        """Headers the dialect sends with an error status by default (e.g. Retry-After)."""
        return {"Retry-After": "1"} if status == 429 else {}

    # ------------------------------------------------------------------ faults

    def fail_next(self, status: int = 500, body: Any = None, *, times: int = 1,
                  headers: dict[str, str] | None = None, kind: str = "http") -> None:
        if kind not in ("http", "drop", "hang"):
            raise ValueError(f"unknown fault kind {kind!r}")
        fault_kind: FaultKind = "http" if kind == "http" else "drop" if kind == "drop" else "hang"
        self._faults.append(Fault(status, body, dict(headers or {}), times, fault_kind))

    def take_fault(self) -> Fault | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self._faults.pop(0)
        return fault

    async def fault_response(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.kind == "hang":
            await self._stopping.wait()
            return web.Response(status=503)
        if fault.kind == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            await self._stopping.wait()
            return web.Response(status=503)
        body = fault.body if fault.body is not None else self.error_body(fault.status)
        headers = {**self.error_headers(fault.status), **fault.headers}
        return self.json_response(body, status=fault.status, headers=headers)

    # ------------------------------------------------------------------ helpers for handlers

    async def begin(self, request: web.Request, *, submit: bool = True) -> (
        tuple[RecordedRequest, web.StreamResponse | None]
    ):
        """Record the request, check auth, apply a planned fault (submit endpoints only).

        Returns the record and, when the request must not go on, the response to send."""
        record = await self.record(request)
        if not self.authorized(request):
            return record, self.json_response(self.error_body(401), status=401)
        if submit:
            fault = self.take_fault()
            if fault is not None:
                return record, await self.fault_response(request, fault)
        return record, None

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    async def record(self, request: web.Request) -> RecordedRequest:
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
        )
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):  # nested multipart: unused
                    continue
                record.form.append(FormPart(
                    name=part.name or "",
                    data=bytes(await part.read()),
                    filename=part.filename,
                    content_type=part.headers.get("Content-Type"),
                ))
        elif request.can_read_body:
            raw = await request.read()
            try:
                record.json = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                record.json = None
        self.requests.append(record)
        return record

    async def delay(self) -> None:
        if self.latency > 0:
            try:
                async with asyncio.timeout(self.latency):
                    await self._stopping.wait()
            except TimeoutError:
                pass

    @staticmethod
    def json_response(body: Any, *, status: int = 200,
                      headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                            content_type="application/json")

    def png(self, width: int, height: int, seed: str) -> bytes:
        """A real PNG of exactly width x height, its colour taken from `seed`."""
        digest = hashlib.sha256(seed.encode()).digest()
        image = pyvips.Image.black(width, height, bands=3) + list(digest[:3])
        return bytes(image.cast("uchar").copy(interpretation="srgb").pngsave_buffer(
            compression=1, filter=pyvips.enums.ForeignPngFilter.NONE))

    def store_file(self, data: bytes, content_type: str = "image/png") -> str:
        """Serve `data` at a new `/files/<id>.png` path of this server; returns the path."""
        name = f"f{next(self._ids)}.png"
        self._files[name] = (data, content_type)
        return f"/files/{name}"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        found = self._files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=found[0], content_type=found[1])

