"""`imagegate usage`: spend, refunds and holds per key and model, read from the ledger (see
accounts.py for how the command reaches the database and refuses)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from imagegate.accounts.keys import ApiKey, KeyStore
from imagegate.accounts.money import format_amount
from imagegate.accounts.usage import UsageReporter, UsageRow, check_range
from imagegate.accounts.when import format_when, iso, parse_when
from imagegate.cli.accounts import checked, print_wide, run_on_accounts
from imagegate.cli.options import ConfigOpt, DataDirOpt, JsonOpt, cli_settings


def usage_command(
    key_id: Annotated[str | None, typer.Option("--key", help="Only this key id.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    since: Annotated[str | None, typer.Option(help="Start: 7d, 24h, a date or epoch "
                                              "(default: the beginning).")] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive; default: now).")] = None,
    as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Usage per key and model: tasks, images, spend, refunds, holds, refusals.

    Money comes from the ledger; `refused` counts requests refused for their content."""
    settings = cli_settings(config, data_dir=data_dir)
    start, end = checked(lambda: check_range(
        None if since is None else parse_when(since, param="since", span=-1),
        None if until is None else parse_when(until, param="until", span=-1)))

    async def report(keys: KeyStore, usage: UsageReporter
                     ) -> tuple[ApiKey | None, list[UsageRow]]:
        key = None if key_id is None else await keys.require(key_id)
        return key, await usage.report(start, end, key_id=key_id, model=model)

    key, rows = run_on_accounts(settings, report)
    if as_json:
        typer.echo(json.dumps({"currency": settings.currency, "since": iso(start),
                               "until": iso(end), "data": [r.to_json() for r in rows]}))
        return
    if key is not None:
        balance = "postpaid" if key.balance is None else format_amount(key.balance)
        typer.echo(f"{key.id} ({key.name}): balance {balance}")
    table = Table("key", "name", "model", "tasks", "images", "spend", "refunds", "held",
                  "refused",
                  title=f"usage {format_when(start)} → {format_when(end)} UTC "
                        f"({settings.currency})")
    for r in rows:
        table.add_row(r.key_id, r.key_name or "?", r.model or "-", str(r.tasks),
                      str(r.images), format_amount(r.spend), format_amount(r.refunds),
                      format_amount(r.held), str(r.refused))
    table.add_section()
    table.add_row("total", "", "", str(sum(r.tasks for r in rows)),
                  str(sum(r.images for r in rows)), format_amount(sum(r.spend for r in rows)),
                  format_amount(sum(r.refunds for r in rows)),
                  format_amount(sum(r.held for r in rows)),
                  str(sum(r.refused for r in rows)))
    print_wide(table)
