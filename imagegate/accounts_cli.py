"""`imagegate keys …` and `imagegate usage`: keys, balances and usage, straight on the database
(the server need not run; with SQLite it may, the file is shared safely).

Every refusal (an unknown id, a bad amount, a bad date) is one red line and exit status 1,
never a traceback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from imagegate.accounts.key_fields import key_json
from imagegate.accounts.keys import ApiKey, KeyStore
from imagegate.accounts.money import format_amount, parse_amount
from imagegate.accounts.usage import UsageReporter, UsageRow, check_range
from imagegate.accounts.when import format_when, iso, parse_when
from imagegate.cli_options import ConfigOpt, DataDirOpt, JsonOpt, cli_settings
from imagegate.config import Settings
from imagegate.errors import ImagegateError, InvalidRequestError

T = TypeVar("T")

keys_app = typer.Typer(help="Create, list, rotate, revoke and top up API keys.",
                       no_args_is_help=True)

KeyIdArg = Annotated[str, typer.Argument(metavar="KEY_ID",
                                         help="The key id (key_…, from `keys list`).")]


def _settings(config: Path | None, data_dir: Path | None) -> Settings:
    return cli_settings(config, data_dir=data_dir)


def _fail(message: str) -> typer.Exit:
    # soft_wrap: one line however narrow the terminal, so scripts can grep it.
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}",
                                               highlight=False, markup=True)
    return typer.Exit(1)


def _run(settings: Settings,
         action: Callable[[KeyStore, UsageReporter], Awaitable[T]]) -> T:
    from imagegate.wiring import open_database

    async def run() -> T:
        db = await open_database(settings)
        try:
            return await action(KeyStore(db), UsageReporter(db, settings.currency))
        finally:
            await db.aclose()

    try:
        return asyncio.run(run())
    except ImagegateError as exc:
        raise _fail(exc.message) from None


def _checked(fn: Callable[[], T]) -> T:
    """Input parsed before the database is opened, with the same one-line refusal."""
    try:
        return fn()
    except ImagegateError as exc:
        raise _fail(exc.message) from None


def _check_models(settings: Settings, models: list[str] | None) -> None:
    from imagegate.domain.catalog import load_catalog

    if models is None:
        return
    catalog = load_catalog(settings.catalog_file)
    unknown = [m for m in models if catalog.get(m) is None]
    if unknown:
        raise InvalidRequestError(f"unknown model(s): {', '.join(unknown)} "
                                  f"(known: {', '.join(catalog.names())})", param="models")


def _print_wide(table: Table) -> None:
    """Print without wrapping cells: ids are copied and output is grepped, so a narrow
    terminal gets long lines rather than ids broken in two or columns dropped."""
    console = Console()
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if needed > console.width:
        console = Console(width=needed)
    console.print(table)


def _describe(key: ApiKey) -> list[str]:
    models = ", ".join(key.allowed_models) if key.allowed_models else "all"
    balance = "postpaid" if key.balance is None else format_amount(key.balance)
    return [f"id:          {key.id}", f"name:        {key.name}", f"models:      {models}",
            f"rpm:         {key.rpm or 'unlimited'}",
            f"concurrency: {key.concurrency or 'unlimited'}",
            f"balance:     {balance}", f"expires:     {format_when(key.expires_at)}",
            f"webhook:     {key.webhook_url or '-'}"]


@keys_app.command("create")
def keys_create(
    name_arg: Annotated[str | None, typer.Argument(metavar="NAME", help="A label.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="A label (or as argument).")]
    = None,
    models: Annotated[str | None, typer.Option(help="Allowed models, comma-separated "
                                               "(default: all).")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.", min=1)] = None,
    concurrency: Annotated[int | None, typer.Option(help="Tasks queued or running at "
                                                    "once.", min=1)] = None,
    balance: Annotated[str | None, typer.Option(help="Prepaid balance, e.g. 10.00 "
                                                "(default: postpaid).")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry: a date (2026-12-31, UTC), "
                                                "epoch seconds, or a span (30d, 12h).")]
    = None,
    webhook_url: Annotated[str | None, typer.Option(help="Where finished tasks are "
                                                    "POSTed.")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a key and print it once (it is stored only as a hash)."""
    settings = _settings(config, data_dir)
    label = name or name_arg
    if not label:
        raise _fail("a name is needed: `imagegate keys create NAME`")
    model_list = None if models is None else [m.strip() for m in models.split(",")
                                              if m.strip()]
    micros = _checked(lambda: None if balance is None
                      else parse_amount(balance, param="balance"))
    expires_at = _checked(lambda: None if expires is None
                          else parse_when(expires, param="expires", span=1))
    _checked(lambda: _check_models(settings, model_list))

    async def create(keys: KeyStore, _: UsageReporter) -> tuple[str, ApiKey, str | None]:
        plaintext, key = await keys.create(
            label, models=model_list, rpm=rpm, concurrency=concurrency, balance=micros,
            expires_at=expires_at, webhook_url=webhook_url)
        return plaintext, key, await keys.webhook_secret(key.id)

    plaintext, key, secret = _run(settings, create)
    if as_json:
        typer.echo(json.dumps({**key_json(key), "key": plaintext, "webhook_secret": secret}))
        return
    typer.echo("\n".join([*_describe(key), f"key:         {plaintext}",
                          "The key is shown only now; store it safely."]))


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")]
              = False, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List keys: prefix, limits, balance, expiry and status (never the secrets)."""
    keys = _run(_settings(config, data_dir), lambda store, _: store.list())
    if as_json:
        for k in keys:
            typer.echo(json.dumps(key_json(k)))
        return
    table = Table("id", "name", "prefix", "models", "rpm", "conc.", "balance", "expires",
                  "status", box=box.SIMPLE_HEAD)
    for k in keys:
        view = key_json(k)
        table.add_row(k.id, k.name, k.prefix,
                      ", ".join(k.allowed_models) if k.allowed_models else "all",
                      str(k.rpm or "-"), str(k.concurrency or "-"),
                      view["balance"] or "postpaid", format_when(k.expires_at)[:10],
                      view["status"])
    _print_wide(table)


@keys_app.command("revoke")
def keys_revoke(key_id: KeyIdArg, config: ConfigOpt = None,
                data_dir: DataDirOpt = None) -> None:
    """Revoke a key; requests with it are refused (401) from then on."""
    key = _run(_settings(config, data_dir), lambda store, _: store.revoke(key_id))
    typer.echo(f"revoked {key.id} ({key.name})")


@keys_app.command("rotate")
def keys_rotate(key_id: KeyIdArg, as_json: JsonOpt = False, config: ConfigOpt = None,
                data_dir: DataDirOpt = None) -> None:
    """Give a key a new secret; the old one stops working. Id, limits and balance stay."""
    plaintext, key = _run(_settings(config, data_dir), lambda store, _: store.rotate(key_id))
    if as_json:
        typer.echo(json.dumps({**key_json(key), "key": plaintext}))
        return
    typer.echo(f"id:   {key.id}\nname: {key.name}\nkey:  {plaintext}\n"
               "The new key is shown only now; the old one no longer works.")


# ignore_unknown_options: "-3" reaches the amount check (a clear refusal, exit 1) instead of
# being taken for an unknown option.
@keys_app.command("topup", context_settings={"ignore_unknown_options": True})
def keys_topup(
    key_id: KeyIdArg,
    amount: Annotated[str, typer.Argument(metavar="AMOUNT",
                                          help="Amount to add, e.g. 10 or 2.50.")],
    note: Annotated[str | None, typer.Option(help="Kept in the ledger.")] = None,
    as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Add to a key's balance (a postpaid key becomes prepaid)."""
    settings = _settings(config, data_dir)
    micros = _checked(lambda: parse_amount(amount))
    key = _run(settings, lambda store, _: store.topup(key_id, micros, note))
    if as_json:
        typer.echo(json.dumps(key_json(key)))
        return
    typer.echo(f"{key.id} ({key.name}): +{format_amount(micros)} {settings.currency}, "
               f"balance {format_amount(key.balance or 0)} {settings.currency}")


@keys_app.command("adjust", context_settings={"ignore_unknown_options": True})
def keys_adjust(
    key_id: KeyIdArg,
    amount: Annotated[str, typer.Argument(metavar="AMOUNT",
                                          help="Signed correction, e.g. -1.50 or 2.")],
    note: Annotated[str, typer.Option(help="Why (kept in the ledger).")],
    config: ConfigOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Correct a balance by a signed amount; never below zero."""
    settings = _settings(config, data_dir)
    micros = _checked(lambda: parse_amount(amount, signed=True))
    key = _run(settings, lambda store, _: store.adjust(key_id, micros, note))
    typer.echo(f"{key.id} ({key.name}): balance {format_amount(key.balance or 0)} "
               f"{settings.currency}")


def usage_command(
    key_id: Annotated[str | None, typer.Option("--key", help="Only this key id.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    since: Annotated[str | None, typer.Option(help="Start: 7d, 24h, a date or epoch "
                                              "(default: the beginning).")] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive; default: now).")] = None,
    as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Usage per key and model from the ledger: tasks, images, spend, refunds, holds."""
    settings = _settings(config, data_dir)
    start, end = _checked(lambda: check_range(
        None if since is None else parse_when(since, param="since", span=-1),
        None if until is None else parse_when(until, param="until", span=-1)))

    async def report(keys: KeyStore, usage: UsageReporter
                     ) -> tuple[ApiKey | None, list[UsageRow]]:
        key = None if key_id is None else await keys.require(key_id)
        return key, await usage.report(start, end, key_id=key_id, model=model)

    key, rows = _run(settings, report)
    if as_json:
        typer.echo(json.dumps({"currency": settings.currency, "since": iso(start),
                               "until": iso(end), "data": [r.to_json() for r in rows]}))
        return
    if key is not None:
        balance = "postpaid" if key.balance is None else format_amount(key.balance)
        typer.echo(f"{key.id} ({key.name}): balance {balance}")
    table = Table("key", "name", "model", "tasks", "images", "spend", "refunds", "held",
                  title=f"usage {format_when(start)} → {format_when(end)} UTC "
                        f"({settings.currency})")
    for r in rows:
        table.add_row(r.key_id, r.key_name or "?", r.model or "-", str(r.tasks),
                      str(r.images), format_amount(r.spend), format_amount(r.refunds),
                      format_amount(r.held))
    table.add_section()
    table.add_row("total", "", "", str(sum(r.tasks for r in rows)),
                  str(sum(r.images for r in rows)), format_amount(sum(r.spend for r in rows)),
                  format_amount(sum(r.refunds for r in rows)),
                  format_amount(sum(r.held for r in rows)))
    _print_wide(table)
