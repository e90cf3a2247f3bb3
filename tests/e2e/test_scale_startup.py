"""Starting distributed processes with a bad setup: `imagegate serve` and `imagegate worker`
refuse at once with one line naming the setting to fix (no traceback, no secret), and
`imagegate migrate` run by several processes at once on a fresh PostgreSQL all succeed."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.contracts.conftest import fresh_postgres
from tests.support.cluster import Cluster
from tests.support.e2e import IMAGEGATE, base_env, free_port
from tests.support.s3 import SECRET_KEY, S3Server

pytestmark = pytest.mark.e2e

SECRETS = {"IMAGEGATE_SIGNING_SECRET": "s" * 40, "IMAGEGATE_ADMIN_TOKEN": "a" * 40}


def start(command: str, env: dict[str, str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    args = [IMAGEGATE, command, "--data-dir", str(data_dir)]
    if command == "serve":
        args += ["--port", str(free_port())]
    return subprocess.run(args, env=base_env(env), capture_output=True, text=True, timeout=90,
                          check=False)


def refused(res: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    out = res.stdout + res.stderr
    assert res.returncode == code, out
    assert "Traceback" not in out, out
    for word in words:
        assert word in out, (word, out)
    assert SECRET_KEY not in out
    return out


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_missing_bucket_is_named(command: str, tmp_path: Path, s3_server: S3Server) -> None:
    res = start(command, {**s3_server.settings("no-such-bucket"), **SECRETS}, tmp_path)
    out = refused(res, 1, "start-up error", "s3_bucket", "'no-such-bucket' does not exist")
    assert len(out.strip().splitlines()) <= 3  # one message, not pages of debug output


def test_refused_credentials_are_named(tmp_path: Path, s3_server: S3Server,
                                       s3_bucket: str) -> None:
    with s3_server.require_auth():
        res = start("serve", {**s3_server.settings(s3_bucket), **SECRETS}, tmp_path)
    refused(res, 1, "AWS_ACCESS_KEY_ID", "InvalidAccessKeyId")


def test_an_unreachable_endpoint_is_named(tmp_path: Path, s3_server: S3Server,
                                          s3_bucket: str) -> None:
    env = {**s3_server.settings(s3_bucket), **SECRETS,
           "IMAGEGATE_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    refused(start("worker", env, tmp_path), 1, "s3_endpoint", "cannot reach")


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_refusing_redis_is_named(command: str, tmp_path: Path) -> None:
    env = {"IMAGEGATE_REDIS_URL": f"redis://:topsecret@127.0.0.1:{free_port()}/0"}
    out = refused(start(command, env, tmp_path), 1, "redis_url", "cannot connect to Redis")
    assert "topsecret" not in out


def test_secrets_that_must_be_shared_are_required(tmp_path: Path, s3_server: S3Server,
                                                  s3_bucket: str) -> None:
    out = refused(start("serve", s3_server.settings(s3_bucket), tmp_path), 2,
                  "configuration error", "IMAGEGATE_SIGNING_SECRET", "IMAGEGATE_ADMIN_TOKEN")
    assert not (tmp_path / "signing.key").exists()
    # A worker serves no admin API: the signing secret alone is asked for.
    out = refused(start("worker", s3_server.settings(s3_bucket), tmp_path), 2,
                  "IMAGEGATE_SIGNING_SECRET")
    assert "ADMIN_TOKEN" not in out


def test_migrate_from_several_processes_at_once(tmp_path: Path) -> None:
    with fresh_postgres() as url:
        cluster = Cluster({"IMAGEGATE_DATABASE_URL": url}, tmp_path)
        runs = [cluster.spawn_run("migrate") for _ in range(4)]
        outputs = [run.communicate(timeout=120)[0] for run in runs]
        assert [run.returncode for run in runs] == [0] * 4, outputs
        assert all("database at head" in out for out in outputs)
        assert asyncio.run(_versions(url)) == 1


async def _versions(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM alembic_version")
        return count
    finally:
        await conn.close()
