"""`imagegate serve | worker | migrate | version`: running the server and its workers, and
the schema. Thin: each command builds settings, calls the same objects and prints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from imagegate import __version__
from imagegate.accounts.keys import KeyStore
from imagegate.cli.collector import tune_collector
from imagegate.cli.memory import trimming_heap
from imagegate.cli.options import ConfigOpt, DataDirOpt, cli_settings
from imagegate.cli.processes import STARTUP_FAILURE, child_command, spawner, watch_parent
from imagegate.cli.processes import notes as processes_notes
from imagegate.cli.processes import refusal as processes_refusal
from imagegate.cli.supervisor import Supervisor, SupervisorConfig
from imagegate.config import Settings, load_settings
from imagegate.domain.catalog import load_catalog
from imagegate.errors import BackendUnavailableError
from imagegate.logs import configure_logging
from imagegate.moderation.sources import global_sources
from imagegate.providers.factory import RoutePlan, plan_routes
from imagegate.reload import reload_on_sighup
from imagegate.wiring import build_backends, open_database, preflight

if TYPE_CHECKING:
    import uvicorn

T = TypeVar("T")


def _with_keys(settings: Settings, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    async def run() -> T:
        db = await open_database(settings)
        try:
            return await action(KeyStore(db))
        finally:
            await db.aclose()

    return asyncio.run(run())


def command(args: str) -> str:
    """A command line as the user will type it: through `uv run` when this process was
    started that way (uv sets `UV` in the environment of what it runs)."""
    return f"uv run imagegate {args}" if os.environ.get("UV") else f"imagegate {args}"


def webhook_base_warning(settings: Settings) -> str | None:
    """Webhook payloads have no request to take an origin from: without `public_base_url`
    their result URLs are relative, which a receiver cannot download."""
    if settings.url_mode == "absolute" and not settings.public_base_url:
        return ("public_base_url is not set: result URLs in webhook payloads will be relative "
                "paths (/p/img/…); set it to this server's public address")
    return None


def listen(settings: Settings, port: int | None = None, hint: str | None = None
           ) -> socket.socket:
    """The listening socket, bound before anything is created, so a port that is taken
    stops the start with a hint (and, on a first start, before the first key exists)."""
    port = settings.port if port is None else port
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, port))
    except OSError as exc:
        sock.close()
        hint = hint or (f"Start on another port with `{command('serve --port 8001')}` "
                        "(or IMAGEGATE_PORT).")
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] cannot listen on {settings.host}:{port}: "
            f"{exc.strerror or exc}. Is another server running there? {hint}",
            highlight=False)
        raise typer.Exit(1) from None
    sock.set_inheritable(True)
    return sock


def check_setup(settings: Settings, *, api: bool) -> None:
    """`wiring.preflight` as a command reports it: one line naming the setting, no
    traceback; exit status 2 for a setting that is missing, 1 for a backend that does not
    answer (it may be back on the next try)."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        asyncio.run(preflight(settings, api=api))
    except ValueError as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except BackendUnavailableError as exc:
        err.print(f"[red]start-up error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def _blob_place(settings: Settings) -> str:
    if settings.blob_store == "local":
        return str(Path(settings.effective_blob_dir).resolve())
    if settings.blob_store == "s3":
        where = f" at {settings.s3_endpoint}" if settings.s3_endpoint else ""
        return f"s3://{settings.s3_bucket}/{settings.s3_prefix or ''}{where}"
    return "in memory (lost on restart)"


def _banner(settings: Settings, plan: RoutePlan, new_key: str | None,
            console: Console) -> None:
    catalog = load_catalog(settings.catalog_file)
    served = plan.describe(catalog)
    console.print(f"[bold]imagegate {__version__}[/bold]")
    console.print(f"  data directory : {settings.data_dir.resolve()}")
    console.print(f"  database       : {_redact(settings.effective_database_url)}")
    console.print(f"  result files   : {_blob_place(settings)}")
    console.print("  task events    : "
                  + (f"Redis {_redact(settings.redis_url)}" if settings.redis_url
                     else "in this process" if settings.processes == 1
                     else "in each process (no redis_url)"))
    console.print(f"  listening on   : http://{settings.host}:{settings.port}")
    if settings.processes > 1:
        console.print(f"  processes      : {settings.processes} on this port"
                      + (", each with its own workers" if settings.run_workers else ""))
    if not settings.run_workers:
        console.print("  workers        : none here (run_workers = false: `imagegate worker` "
                      "processes run the tasks)")
    console.print("  models         :")
    for model, provider in served.items():
        console.print(f"    {model:<26} -> {provider}")
    for model in catalog.names():
        if model not in served:
            console.print(f"    {model:<26} -> (not served: no channel)")
    for note in plan.notes:
        console.print(f"  [bold]{escape(note)}[/bold]")
    if "sandbox" in served.values():
        console.print(
            "\n[bold yellow]!!! SANDBOX: models served by 'sandbox' return generated "
            "PLACEHOLDER images (the prompt drawn on a colour field), not real "
            "generations. Configure an upstream to serve real images. !!![/bold yellow]\n"
        )
    if new_key:
        console.print("[bold green]First start: an API key was created. It is shown only "
                      "once; keep it:[/bold green]")
        console.print(f"\n    {new_key}\n")
        console.print(f"  Create more with `{command('keys create NAME')}`.\n")
    for note in processes_notes(settings):
        console.print(f"  [yellow]note: {escape(note)}[/yellow]")
    warning = webhook_base_warning(settings) if settings.run_workers else None
    if warning:
        console.print(f"  [yellow]note: {escape(warning)}[/yellow]")


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    processes: Annotated[int | None, typer.Option(
        help="Server processes on this host and port, each with its workers (PostgreSQL "
             "only; also $IMAGEGATE_PROCESSES).", show_default=False)] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    child_fd: Annotated[int | None, typer.Option(hidden=True)] = None,
    parent_pid: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Start the API server (with in-process workers unless run_workers = false)."""
    settings = cli_settings(config, host=host, port=port, data_dir=data_dir,
                            processes=processes)
    refused = None if child_fd is not None else processes_refusal(settings)
    if refused:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]configuration error:[/red] {escape(refused)}", highlight=False)
        raise typer.Exit(2)
    configure_logging(settings.log_level, settings.log_json)

    def reload_settings() -> Settings:
        # SIGHUP re-reads the config file's blocklist entries with the same sources.
        return load_settings(config, host=host, port=port, data_dir=data_dir)

    if child_fd is not None:  # one of the processes of `--processes N` (cli/processes.py)
        _serve_child(settings, reload_settings, socket.socket(fileno=child_fd),
                     parent_pid or os.getppid())
        return

    async def first_key(keys: KeyStore) -> str | None:
        if await keys.count() == 0:
            plaintext, _ = await keys.create("default")
            return plaintext
        return None

    try:  # a bad channel (unknown model, unreadable key file) stops here, before any change
        plan = plan_routes(settings, load_catalog(settings.catalog_file))
        global_sources(settings)  # and so does an unusable blocklist entry or file
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    sock = listen(settings)
    try:
        check_setup(settings, api=True)
        new_key = _with_keys(settings, first_key)
        _banner(settings, plan, new_key, Console())
        if settings.processes == 1:
            _server(settings, reload_settings).run(sockets=[sock])
            return
        command = child_command(sock.fileno(), config=config, host=host, port=port,
                                data_dir=data_dir)
        status = Supervisor(lambda _slot: spawner(sock, command),
                            SupervisorConfig(settings.processes)).run()
        if status:
            raise typer.Exit(status)
    finally:
        sock.close()


def _server(settings: Settings, reload_settings: Callable[[], Settings], *,
            parent: int | None = None) -> uvicorn.Server:
    """uvicorn serving the app. `parent`: this is a child of `--processes N`, which stops
    (gracefully, as on SIGTERM) when that parent process is gone."""
    import uvicorn

    from imagegate.app import build_app

    class Server(uvicorn.Server):
        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            tune_collector()
            async with trimming_heap():
                if parent is None:
                    return await super().serve(sockets)
                watcher = asyncio.create_task(
                    watch_parent(parent, lambda: setattr(self, "should_exit", True)))
                try:
                    await super().serve(sockets)
                finally:
                    watcher.cancel()

    return Server(uvicorn.Config(
        build_app(settings, reload_settings=reload_settings),
        log_config=None,
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
        # Forwarded headers are judged by imagegate itself (trusted_proxies, see
        # api/origin.py); uvicorn's handling would rewrite the peer address it checks.
        proxy_headers=False,
    ))


def _serve_child(settings: Settings, reload_settings: Callable[[], Settings],
                 sock: socket.socket, parent: int) -> None:
    """One server process of `--processes N`: serve the socket the parent bound. The parent
    already did the one-time start-up (checks, migrations, the first key, the banner)."""
    server = _server(settings, reload_settings, parent=parent)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:  # the lifespan failed (it logged why): the parent counts it
        raise typer.Exit(STARTUP_FAILURE)


class _ProbeServer:
    """uvicorn serving a worker's probe app (`metrics_port`) on the worker's own event loop.
    uvicorn's signal handling stays off: the worker command owns SIGINT and SIGTERM."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        import uvicorn

        class Embedded(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self._sock = sock
        self._server = Embedded(uvicorn.Config(app, log_config=None, access_log=False,
                                               lifespan="off"))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._sock.close()


def worker(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Run task workers only (distributed deployments; share the database and blob store)."""
    from imagegate.app import build_probe_app

    settings = cli_settings(config, data_dir=data_dir)
    configure_logging(settings.log_level, settings.log_json)
    sock = None
    if settings.metrics_port is not None:
        sock = listen(settings, settings.metrics_port,
                      "Give this worker another metrics_port (IMAGEGATE_METRICS_PORT).")
    try:
        check_setup(settings, api=False)
    except BaseException:
        if sock is not None:
            sock.close()
        raise

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        backends = await build_backends(settings, with_worker=True, with_api=False)
        # A `kill -HUP` sent to every imagegate process must not end the workers.
        hangup = reload_on_sighup(backends.moderation)
        probe = None if sock is None else _ProbeServer(build_probe_app(backends), sock)
        err = Console(stderr=True)
        try:
            if probe is not None:
                probe.start()
            where = (f"; /metrics and /readyz on http://{settings.host}:{settings.metrics_port}"
                     if probe is not None else "")
            err.print(f"imagegate worker {backends.worker.owner if backends.worker else ''} "
                      f"running{where}", highlight=False)
            warning = webhook_base_warning(settings)
            if warning:
                err.print(f"[yellow]note: {escape(warning)}[/yellow]")
            tune_collector()
            async with trimming_heap():
                await stop.wait()
        finally:
            hangup.close()
            if probe is not None:
                await probe.stop()
            await backends.aclose()

    asyncio.run(run())


def migrate(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create or upgrade the database schema (serve does this on start too)."""
    settings = cli_settings(config, data_dir=data_dir)

    async def run() -> None:
        db = await open_database(settings)
        await db.aclose()

    asyncio.run(run())
    typer.echo(f"database at head: {_redact(settings.effective_database_url)}")


def version() -> None:
    """Print the version."""
    typer.echo(__version__)
