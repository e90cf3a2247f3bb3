"""The secrets kept in the data directory (the URL signing key and the admin token), and the
owner-only modes of everything imagegate creates there.

A configured value always wins. Without one, the server generates the secret on first use and
keeps it in a file only its owner can read (0600), so that restarts keep handing out valid
links and `imagegate` commands on the same host (`imagegate channels`) find the admin token
without it being configured twice. Each file name is spelled here and nowhere else.

The data directory also holds the database (API key hashes, webhook signing secrets) and
every image. So each folder imagegate creates is made 0700 and each file 0600
(`private_dir`, `private_file`), set explicitly rather than left to the process umask, which
would give 0755 and 0644 on most systems. Folders and files that already exist keep their
mode: an operator may have made them, for reasons of their own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from imagegate.config import Settings

SIGNING_KEY_FILE = "signing.key"
ADMIN_TOKEN_FILE = "admin.token"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` and its missing parents, each 0700 whatever the umask."""
    try:  # the common case (a task's folder in an existing root): one mkdir, no walk
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except (FileExistsError, FileNotFoundError):
        pass
    else:
        os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode passes through the umask
        return
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # another process made it a moment ago, with the same mode
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode passes through the umask


def private_file(path: Path) -> None:
    """Create `path` empty and 0600 (whatever the umask) unless it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)


def unshared_secrets(settings: Settings, *, api: bool) -> list[str]:
    """The secrets this setup must be given but was not: with `blob_store = "s3"` imagegate
    runs on several hosts, and a secret generated into one host's data directory would be
    unknown to the others (a URL signed by one API process refused by the next, the admin
    token accepted by one process only). Workers sign result URLs too (webhook payloads);
    only API processes (`api`) check the admin token."""
    if settings.blob_store != "s3":
        return []
    missing = [] if _configured(settings.signing_secret) else ["signing_secret"]
    if api and _configured(settings.admin_token) is None:
        missing.append("admin_token")
    return missing


def require_shared_secrets(settings: Settings, *, api: bool) -> None:
    """ValueError naming every secret `unshared_secrets` finds missing, and how to set it."""
    missing = unshared_secrets(settings, api=api)
    if missing:
        names = " and ".join(missing)
        env = " and ".join(f"IMAGEGATE_{m.upper()}" for m in missing)
        raise ValueError(
            f'blob_store = "s3" runs imagegate processes on several hosts, which must share '
            f"{names}: set {env} to the same value on every process (e.g. from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`). A secret "
            "generated into one host's data directory would be unknown to the others.")


def signing_secret(settings: Settings) -> bytes:
    """The HMAC secret of signed result URLs: the configured one, or the kept one (created on
    first use)."""
    configured = _configured(settings.signing_secret)
    if configured is not None:
        return configured.encode()
    return _kept(settings.data_dir / SIGNING_KEY_FILE,
                 lambda: secrets.token_urlsafe(48)).encode()


def admin_token(settings: Settings) -> str:
    """The admin API's bearer token as the server uses it: the configured one, or the kept
    one (created on first use)."""
    configured = _configured(settings.admin_token)
    if configured is not None:
        return configured
    return _kept(settings.data_dir / ADMIN_TOKEN_FILE, lambda: "iga_" + secrets.token_urlsafe(32))


def read_admin_token(settings: Settings) -> str | None:
    """The admin token a server with these settings uses, for a client on the same host; None
    when none is configured and no server has created one yet. Never creates the file: only
    the server decides the token, a client that made one up would lock itself out."""
    configured = _configured(settings.admin_token)
    if configured is not None:
        return configured
    path = settings.data_dir / ADMIN_TOKEN_FILE
    return path.read_text().strip() if path.is_file() else None


def _configured(value: SecretStr | None) -> str | None:
    # An empty value counts as unset (the server has always treated it so); the CLI uses the
    # same rule so that both sides always agree on which token is in force.
    return value.get_secret_value() if value else None


def _kept(path: Path, fresh: Callable[[], str]) -> str:
    """The secret kept in `path`; on first use, `fresh()` written there, owner-only."""
    if not path.exists():
        private_dir(path.parent)
        # Written whole to a private temporary file, then linked into place: the link fails
        # if another process (a second server on the same data dir) got there first, so all
        # of them end up reading one secret, and no reader ever sees a half-written file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(fresh())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process created it first: theirs is the one kept
        finally:
            tmp.unlink()
    return path.read_text().strip()
