"""`python -m imagegate.testing.upstreams <dialect> [--port N] [--api-key K] [--latency S]`:
run one fake upstream in the foreground until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import importlib

from imagegate.testing.upstreams import DIALECTS
from imagegate.testing.upstreams.common import FakeUpstream


def _load(dialect: str) -> type[FakeUpstream]:
    module_name, _, class_name = DIALECTS[dialect].partition(":")
    cls: type[FakeUpstream] = getattr(importlib.import_module(module_name), class_name)
    return cls


async def _serve(args: argparse.Namespace) -> None:
    fake = _load(args.dialect)(api_key=args.api_key, latency=args.latency)
    url = await fake.start(port=args.port)
    print(f"fake {args.dialect} upstream at {url} (key {args.api_key!r}); Ctrl-C stops it",
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m imagegate.testing.upstreams")
    parser.add_argument("dialect", choices=sorted(DIALECTS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="sk-fake")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
