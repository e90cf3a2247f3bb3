"""`imagegate channels`: each upstream channel's health, breaker, in-flight calls, recent
error rate and latency, asked of the running server's `/admin/channels`.

With no server to ask it still shows what the configuration says (which channels serve which
models), and says that live state needs a running server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import aiohttp
import typer
from rich.console import Console
from rich.table import Table

from imagegate.cli_options import ConfigOpt, DataDirOpt, JsonOpt, cli_settings
from imagegate.config import Settings

channels_app = typer.Typer(help="Show upstream channels and their live health.",
                           invoke_without_command=True)



class Unreachable(Exception):
    """No server answered at the URL."""


def local_admin_token(settings: Settings) -> str | None:
    """The admin token the server on this host uses; never creates one (unlike the server)."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path = settings.data_dir / "admin.token"
    return path.read_text().strip() if path.is_file() else None


async def fetch_channels(url: str, token: str | None, timeout: float = 5.0
                         ) -> list[dict[str, Any]]:
    """`GET {url}/admin/channels`. Raises Unreachable, or RuntimeError with the server's
    message on any other failure (a wrong token, say)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.get(url.rstrip("/") + "/admin/channels", headers=headers) as resp:
                body: Any = await resp.json(content_type=None)
                status = resp.status
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise Unreachable(str(exc) or type(exc).__name__) from None
    except (aiohttp.ClientError, ValueError) as exc:
        raise RuntimeError(f"unexpected answer from {url}: {exc}") from None
    if status != 200 or not isinstance(body, list):
        message = body.get("error", {}).get("message") if isinstance(body, dict) else body
        raise RuntimeError(f"{url} answered {status}: {message}")
    return body


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def live_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("channel", "adapter", "host", "models", "prio/weight", "health", "breaker",
                  "in flight", "errors", "p50", "last error", title="channels (live)")
    colour = {"ok": "green", "degraded": "yellow", "probing": "yellow", "down": "red"}
    for r in rows:
        limit = r.get("concurrency")
        p50 = r.get("p50_seconds")
        table.add_row(
            r["name"] + (" (official)" if r.get("official") else ""),
            r["adapter"], r["host"], ", ".join(r["models"]),
            f"{r['priority']}/{r['weight']}",
            f"[{colour.get(r['health'], 'white')}]{r['health']}[/]",
            r["breaker"],
            f"{r['in_flight']}/{limit}" if limit else str(r["in_flight"]),
            f"{_pct(r['error_rate'])} of {r['requests']}",
            "-" if p50 is None else f"{p50:.2f}s",
            (r.get("last_error") or "")[:60],
        )
    return table


def configured_rows(settings: Settings) -> tuple[str, list[dict[str, Any]]]:
    """What the configuration says: (mode, channels as plain dicts, no keys)."""
    from imagegate.api.metrics import host_of
    from imagegate.domain.catalog import load_catalog
    from imagegate.providers.factory import plan_routes

    plan = plan_routes(settings, load_catalog(settings.catalog_file))
    return plan.mode, [
        {"name": c.name, "adapter": c.adapter, "host": host_of(c.base_url),
         "models": list(c.models), "priority": c.priority, "weight": c.weight,
         "official": c.official, "concurrency": c.concurrency}
        for c in plan.channels
    ]


@channels_app.callback()
def channels(
    url: Annotated[str | None, typer.Option(
        "--url", envvar="IMAGEGATE_URL",
        help="Server to ask; default http://<host>:<port> from the settings.")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show each channel's health, breaker state, in-flight calls and recent error rate."""
    settings = cli_settings(config, data_dir=data_dir)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = url or f"http://{host}:{settings.port}"
    console, err = Console(), Console(stderr=True)
    try:
        rows = asyncio.run(fetch_channels(url, local_admin_token(settings)))
    except RuntimeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except Unreachable:
        _offline(settings, url, as_json, console, err)
        return
    if as_json:
        typer.echo(json.dumps({"live": True, "url": url, "channels": rows}, indent=2))
    elif not rows:
        console.print("No upstream channels: the sandbox serves every model.")
    else:
        console.print(live_table(rows))


def _offline(settings: Settings, url: str, as_json: bool, console: Console,
             err: Console) -> None:
    try:
        mode, rows = configured_rows(settings)
    except ValueError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({"live": False, "url": url, "mode": mode, "channels": rows},
                              indent=2))
        return
    err.print(f"[yellow]No server answered at {url}: showing the configuration only; health, "
              "breaker, in-flight and error rates need a running server.[/yellow]")
    if mode == "sandbox":
        console.print("No upstream channels configured: the sandbox serves every model.")
        return
    table = Table("channel", "adapter", "host", "models", "prio/weight", "official",
                  "concurrency", title=f"channels (configured; {mode})")
    for r in rows:
        table.add_row(r["name"], r["adapter"], r["host"], ", ".join(r["models"]),
                      f"{r['priority']}/{r['weight']}", "yes" if r["official"] else "",
                      str(r["concurrency"] or "-"))
    console.print(table)
