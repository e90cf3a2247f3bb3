"""What `imagegate keys …` and `imagegate usage` share: running one action on the accounts
database (the server need not run; with SQLite it may, the file is shared safely), turning
every refusal (an unknown id, a bad amount, a bad date) into one red line and exit status 1,
never a traceback, and printing tables that are copied from and grepped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from imagegate.accounts.keys import KeyStore
from imagegate.accounts.usage import UsageReporter
from imagegate.config import Settings
from imagegate.errors import ImagegateError

T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    # soft_wrap: one line however narrow the terminal, so scripts can grep it.
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}",
                                               highlight=False, markup=True)
    return typer.Exit(1)


def run_on_accounts(settings: Settings,
                    action: Callable[[KeyStore, UsageReporter], Awaitable[T]]) -> T:
    """`action` on the configured database (migrated first), refusals as `fail`."""
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
        raise fail(exc.message) from None


def checked(fn: Callable[[], T]) -> T:
    """Input parsed before the database is opened, with the same one-line refusal."""
    try:
        return fn()
    except ImagegateError as exc:
        raise fail(exc.message) from None


def print_wide(table: Table) -> None:
    """Print without wrapping cells: ids are copied and output is grepped, so a narrow
    terminal gets long lines rather than ids broken in two or columns dropped."""
    console = Console()
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if needed > console.width:
        console = Console(width=needed)
    console.print(table)
