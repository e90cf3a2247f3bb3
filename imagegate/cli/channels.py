"""`imagegate channels`: each upstream channel's health, breaker, in-flight calls, recent
error rate and latency, asked of the running server's `/admin/channels`.

With no server to ask it still shows what the configuration says (which channels serve which
models), and says that live state needs a running server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from imagegate.cli.options import ConfigOpt, DataDirOpt, JsonOpt, cli_settings
from imagegate.client import AdminClient, AdminError, ServerUnreachable
from imagegate.config import Settings
from imagegate.secret_files import read_admin_token

channels_app = typer.Typer(help="Show upstream channels and their live health.",
                           invoke_without_command=True)


async def _live_rows(url: str, token: str | None) -> list[dict[str, Any]]:
    # 5 s: a server on this host answers at once; past that, fall back to the configuration.
    async with AdminClient(url, token, timeout=5.0) as admin:
        return await admin.channels()


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
        rows = asyncio.run(_live_rows(url, read_admin_token(settings)))
    except ServerUnreachable:
        _offline(settings, url, as_json, console, err)
        return
    except AdminError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
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
