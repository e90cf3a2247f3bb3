"""`imagegate keys …`: create, list, rotate, revoke and top up keys, straight on the database
(see accounts.py for how the commands reach it and refuse)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from imagegate.accounts.key_fields import key_json
from imagegate.accounts.keys import ApiKey, KeyStore
from imagegate.accounts.money import format_amount, parse_amount
from imagegate.accounts.usage import UsageReporter
from imagegate.accounts.when import format_when, parse_when
from imagegate.cli.accounts import checked, fail, print_wide, run_on_accounts
from imagegate.cli.options import ConfigOpt, DataDirOpt, JsonOpt, cli_settings
from imagegate.config import Settings
from imagegate.errors import InvalidRequestError

keys_app = typer.Typer(help="Create, list, rotate, revoke and top up API keys.",
                       no_args_is_help=True)

KeyIdArg = Annotated[str, typer.Argument(metavar="KEY_ID",
                                         help="The key id (key_…, from `keys list`).")]


def _check_models(settings: Settings, models: list[str] | None) -> None:
    from imagegate.domain.catalog import load_catalog

    if models is None:
        return
    catalog = load_catalog(settings.catalog_file)
    unknown = [m for m in models if catalog.get(m) is None]
    if unknown:
        raise InvalidRequestError(f"unknown model(s): {', '.join(unknown)} "
                                  f"(known: {', '.join(catalog.names())})", param="models")


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
    webhook_events: Annotated[str | None, typer.Option(
        help="Task events sent to the webhook, comma-separated: started, progress, "
             "completed (completed is always sent; default: completed only).")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a key and print it once (it is stored only as a hash)."""
    settings = cli_settings(config, data_dir=data_dir)
    label = name or name_arg
    if not label:
        raise fail("a name is needed: `imagegate keys create NAME`")
    model_list = None if models is None else [m.strip() for m in models.split(",")
                                              if m.strip()]
    micros = checked(lambda: None if balance is None
                      else parse_amount(balance, param="balance"))
    expires_at = checked(lambda: None if expires is None
                          else parse_when(expires, param="expires", span=1))
    checked(lambda: _check_models(settings, model_list))

    async def create(keys: KeyStore, _: UsageReporter) -> tuple[str, ApiKey, str | None]:
        plaintext, key = await keys.create(
            label, models=model_list, rpm=rpm, concurrency=concurrency, balance=micros,
            expires_at=expires_at, webhook_url=webhook_url,
            webhook_events=None if webhook_events is None
            else [e.strip() for e in webhook_events.split(",") if e.strip()])
        return plaintext, key, await keys.webhook_secret(key.id)

    plaintext, key, secret = run_on_accounts(settings, create)
    if as_json:
        typer.echo(json.dumps({**key_json(key), "key": plaintext, "webhook_secret": secret}))
        return
    typer.echo("\n".join([*_describe(key), f"key:         {plaintext}",
                          "The key is shown only now; store it safely."]))


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")]
              = False, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List keys: prefix, limits, balance, expiry and status (never the secrets)."""
    keys = run_on_accounts(cli_settings(config, data_dir=data_dir), lambda store, _: store.list())
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
    print_wide(table)


@keys_app.command("revoke")
def keys_revoke(key_id: KeyIdArg, config: ConfigOpt = None,
                data_dir: DataDirOpt = None) -> None:
    """Revoke a key; requests with it are refused (401) from then on."""
    settings = cli_settings(config, data_dir=data_dir)
    key = run_on_accounts(settings, lambda store, _: store.revoke(key_id))
    typer.echo(f"revoked {key.id} ({key.name})")


@keys_app.command("rotate")
def keys_rotate(key_id: KeyIdArg, as_json: JsonOpt = False, config: ConfigOpt = None,
                data_dir: DataDirOpt = None) -> None:
    """Give a key a new secret; the old one stops working. Id, limits and balance stay."""
    settings = cli_settings(config, data_dir=data_dir)
    plaintext, key = run_on_accounts(settings, lambda store, _: store.rotate(key_id))
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
    settings = cli_settings(config, data_dir=data_dir)
    micros = checked(lambda: parse_amount(amount))
    key = run_on_accounts(settings, lambda store, _: store.topup(key_id, micros, note))
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
    settings = cli_settings(config, data_dir=data_dir)
    micros = checked(lambda: parse_amount(amount, signed=True))
    key = run_on_accounts(settings, lambda store, _: store.adjust(key_id, micros, note))
    typer.echo(f"{key.id} ({key.name}): balance {format_amount(key.balance or 0)} "
               f"{settings.currency}")
