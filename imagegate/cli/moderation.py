"""`imagegate moderation test "PROMPT" [--key ID]` says whether and why a prompt would be
refused; `imagegate moderation reload` re-reads the blocklists of a running server.

`test` asks the running server (`POST /admin/moderation/test`: the lists it has loaded, its
moderation model). With no server answering it judges from the configuration and the
database instead, and says so. Exit status: 0 allowed, 1 refused, 2 an error.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console

from imagegate.cli.options import ConfigOpt, DataDirOpt, JsonOpt, cli_settings
from imagegate.client import AdminClient, AdminError, ServerUnreachable
from imagegate.config import Settings
from imagegate.errors import ImagegateError
from imagegate.secret_files import read_admin_token

moderation_app = typer.Typer(help="Test prompts against content moderation; reload lists.",
                             no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(
    "--url", envvar="IMAGEGATE_URL",
    help="Server to ask; default http://<host>:<port> from the settings.")]


def _url(settings: Settings, url: str | None) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return url or f"http://{host}:{settings.port}"


def _error(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}",
                                               highlight=False)
    return typer.Exit(2)


async def _offline(settings: Settings, prompt: str, key_id: str | None,
                   mode: str) -> dict[str, Any]:
    """The verdict from the configuration and the database, without a server."""
    from imagegate.accounts.keys import KeyStore
    from imagegate.moderation.service import Moderation
    from imagegate.moderation.store import ModerationStore
    from imagegate.wiring import open_database

    db = await open_database(settings)
    moderation = Moderation(settings, store=ModerationStore(db, settings.retention_seconds))
    try:
        await moderation.reload()
        key = None if key_id is None else await KeyStore(db).require(key_id)
        return await moderation.explain(prompt, key, mode)
    finally:
        await moderation.aclose()
        await db.aclose()


def describe(verdict: dict[str, Any]) -> list[str]:
    """The verdict in a few plain lines."""
    if not verdict["refused"]:
        lines = ["allowed: no blocklist entry matches"]
        model = verdict.get("model")
        if model and "flagged" in model:
            lines.append("the moderation model flags nothing" + (
                " (moderation: low)" if model.get("low") else ""))
        return lines
    lines = [f"refused: {verdict['source']}, category {verdict['category']}"]
    rule = verdict.get("rule")
    if rule:
        lines.append(f"matched entry {rule['entry']!r} ({rule['list']} list, line/item "
                     f"{rule['line']})")
    model = verdict.get("model") or {}
    if "error" in model:
        lines.append(f"the moderation model failed ({model['error']}) and "
                     f"moderation_on_error is {model['on_error']}")
    elif model.get("top_scores"):
        scores = ", ".join(f"{k} {v:.3f}" for k, v in model["top_scores"].items())
        lines.append(f"model scores: {scores}")
    return lines


@moderation_app.command("test")
def test(
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help="The prompt to judge.")],
    key_id: Annotated[str | None, typer.Option("--key", help="Also the key's own list "
                                               "(and its allow_low_moderation).")] = None,
    low: Annotated[bool, typer.Option("--low", help="As a request with "
                                      "`moderation: low`.")] = False,
    url: UrlOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Say whether PROMPT would be refused, and why (the entry that matched, or the model's
    category)."""
    settings = cli_settings(config, data_dir=data_dir)
    mode = "low" if low else "auto"
    server = _url(settings, url)
    live = True

    async def ask() -> dict[str, Any]:
        async with AdminClient(server, read_admin_token(settings), timeout=30.0) as admin:
            return await admin.moderation_test(prompt, key_id, mode)

    try:
        verdict = asyncio.run(ask())
    except ServerUnreachable:
        live = False
        try:
            verdict = asyncio.run(_offline(settings, prompt, key_id, mode))
        except (ImagegateError, ValueError) as exc:
            raise _error(getattr(exc, "message", None) or str(exc)) from None
    except AdminError as exc:
        raise _error(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({**verdict, "live": live}, ensure_ascii=False))
    else:
        if not live:
            Console(stderr=True).print(f"[yellow]No server answered at {server}: judged from "
                                       "the configuration and the database.[/yellow]")
        typer.echo("\n".join(describe(verdict)))
    raise typer.Exit(1 if verdict["refused"] else 0)


@moderation_app.command("reload")
def reload(url: UrlOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Make the running server re-read its blocklists (like `kill -HUP`)."""
    settings = cli_settings(config, data_dir=data_dir)
    server = _url(settings, url)

    async def ask() -> dict[str, Any]:
        async with AdminClient(server, read_admin_token(settings), timeout=30.0) as admin:
            return await admin.moderation_reload()

    try:
        summary = asyncio.run(ask())
    except AdminError as exc:
        raise _error(str(exc)) from None
    typer.echo(f"reloaded: {summary['entries']} global blocklist entries")
