"""What the client commands (generate, batch, tasks) share: where to connect, and how a
failure ends the command — one line on stderr and a documented exit code, never a traceback.

Connection settings, first found wins: a flag (`--url`, `--api-key`, `--dialect`); the
profile named by `--profile` (or `$IMAGEGATE_PROFILE`); the environment (`$IMAGEGATE_URL`,
`$IMAGEGATE_API_KEY`); the file's default profile; http://127.0.0.1:8000. Profiles live in
`~/.config/imagegate/client.toml` (imagegate/client/profiles.py).

Exit codes: 0 done; 1 a task failed or was cancelled (or, for a batch, some line did);
2 usage: the command, its inputs or its key are wrong, or the server refused the request
(4xx other than 429); 3 the server or the network failed (unreachable, 5xx, 429 after
retries, a wait that timed out); 130 interrupted with Ctrl-C (the task keeps running).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, NoReturn

import typer

from imagegate.client import (
    APIConnectionError,
    APIError,
    AsyncClient,
    Client,
    ClientError,
    InputError,
    RateLimitError,
    TaskFailedError,
    TaskTimeoutError,
    UnsupportedError,
)
from imagegate.client.profiles import Profile, load_profiles, profile_named
from imagegate.client.settings import DEFAULT_URL, KEY_ENV, PROFILE_ENV, URL_ENV

OK, TASK_FAILED, USAGE, SERVER, INTERRUPTED = 0, 1, 2, 3, 130

UrlOpt = Annotated[str | None, typer.Option(
    "--url", "--base-url", metavar="URL",
    help="Server address (else the profile, $IMAGEGATE_URL, http://127.0.0.1:8000).")]
ApiKeyOpt = Annotated[str | None, typer.Option(
    "--api-key", metavar="KEY", help="API key (else the profile or $IMAGEGATE_API_KEY).")]
ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", metavar="NAME",
    help="A profile of ~/.config/imagegate/client.toml (also $IMAGEGATE_PROFILE).")]
DialectOpt = Annotated[str | None, typer.Option(
    "--dialect", metavar="NAME",
    help="imagegate (default), dimilinks, apimart or openai: the service's API.")]


@dataclass(frozen=True)
class Connection:
    url: str
    api_key: str | None
    dialect: str
    # What was given on the command line, to repeat in a command that resumes this one.
    flags: tuple[str, ...] = ()

    def client(self) -> Client:
        return Client(self.url, self.api_key, dialect=self.dialect)

    def async_client(self) -> AsyncClient:
        return AsyncClient(self.url, self.api_key, dialect=self.dialect)


def connection(url: str | None, api_key: str | None, profile: str | None,
               dialect: str | None) -> Connection:
    """The settings to connect with (see the module's docstring for the order)."""
    with failures():
        named = profile or os.environ.get(PROFILE_ENV) or None
        chosen: Profile | None = profile_named(named) if named else None
        default_name, profiles = (None, {}) if chosen else load_profiles()
        fallback = profiles.get(default_name) if default_name else None
        if default_name and fallback is None:
            raise InputError(f"the default profile {default_name!r} is not defined")
        env_url = os.environ.get(URL_ENV) or None
        env_key = os.environ.get(KEY_ENV) or None
        found_url = _first(url, _get(chosen, "url"), env_url, _get(fallback, "url"))
        found_key = _first(api_key, _get(chosen, "api_key"), env_key,
                           _get(fallback, "api_key"))
        found_dialect = _first(dialect, _get(chosen, "dialect"),
                               _get(fallback, "dialect")) or "imagegate"
    flags: list[str] = []
    for name, value in (("--profile", profile), ("--url", url), ("--dialect", dialect)):
        if value:
            flags += [name, value]
    return Connection(found_url or DEFAULT_URL, found_key, found_dialect, tuple(flags))


def need_key(conn: Connection) -> None:
    if not conn.api_key:
        fail(USAGE, "an API key is needed: --api-key, $IMAGEGATE_API_KEY or a profile's "
                    "api_key (see docs/client.md)")


def keyed_connection(url: str | None, api_key: str | None, profile: str | None,
                     dialect: str | None) -> Connection:
    """`connection`, for the commands that call the API (all but `profile`): a missing key
    stops them before anything is sent."""
    conn = connection(url, api_key, profile, dialect)
    need_key(conn)
    return conn


def resume_command(conn: Connection, *args: str) -> str:
    return shlex.join(["imagegate", *args, *conn.flags])


def fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def exit_code(exc: ClientError) -> int:
    if isinstance(exc, TaskFailedError):
        return TASK_FAILED
    if isinstance(exc, InputError | UnsupportedError):
        return USAGE
    if isinstance(exc, APIError) and 400 <= exc.status < 500 \
            and not isinstance(exc, RateLimitError):
        return USAGE
    return SERVER


def describe(exc: ClientError) -> str:
    """One line: the error, and where it helps, what to do about it."""
    text = " ".join(str(exc).split())
    if isinstance(exc, APIConnectionError):
        return f"{text} (is the server running? --url, $IMAGEGATE_URL or a profile sets it)"
    if isinstance(exc, TaskTimeoutError):
        return f"{text}; it keeps running"
    return text


@contextmanager
def failures(on_error: Callable[[ClientError], None] | None = None) -> Iterator[None]:
    """Turn the client's errors into one line and an exit code."""
    try:
        yield
    except ClientError as exc:
        if on_error is not None:
            on_error(exc)
        fail(exit_code(exc), describe(exc))


def _get(profile: Profile | None, name: str) -> str | None:
    value: str | None = getattr(profile, name) if profile is not None else None
    return value


def _first(*values: str | None) -> str | None:
    return next((v for v in values if v), None)
