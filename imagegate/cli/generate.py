"""`imagegate generate`: images through a running server, by way of `imagegate.client`, with a
progress bar; the files are saved where `--out` says."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    model: Annotated[str, typer.Option(help="Model id (see GET /v1/models).")] = "gpt-image-2",
    size: Annotated[str, typer.Option(help="auto, a ratio like 16:9, or WxH.")] = "1:1",
    resolution: Annotated[str | None, typer.Option(help="1k, 2k or 4k.")] = None,
    n: Annotated[int, typer.Option("-n", help="Number of images.")] = 1,
    output_format: Annotated[str, typer.Option("--format", help="png, jpeg or webp.")] = "png",
    out: Annotated[Path, typer.Option(help="Directory to save the images in.")] = Path("."),
    base_url: Annotated[str, typer.Option(envvar="IMAGEGATE_URL", help="Server address.")]
    = "http://127.0.0.1:8000",
    api_key: Annotated[str, typer.Option(envvar="IMAGEGATE_API_KEY", help="API key.")] = "",
) -> None:
    """Generate images through a running server: submit, show progress, save the files."""
    import aiohttp
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from imagegate.client import ClientError, ImagegateClient

    if not api_key:
        Console(stderr=True).print("[red]an API key is needed:[/red] --api-key or "
                                   "$IMAGEGATE_API_KEY")
        raise typer.Exit(2)
    body: dict[str, object] = {"model": model, "prompt": prompt, "size": size, "n": n,
                               "output_format": output_format}
    if resolution:
        body["resolution"] = resolution

    async def run() -> list[Path]:
        async with ImagegateClient(base_url, api_key) as client:
            task_id, retry_after = await client.submit(body)
            with Progress(TextColumn("{task.description}"), BarColumn(),
                          TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                          console=Console(stderr=True)) as bar:
                row = bar.add_task(task_id, total=100)
                task = await client.wait(
                    task_id, first_wait=retry_after, interval=1.0,
                    on_progress=lambda t: bar.update(row, completed=t["progress"],
                                                     description=f"{task_id} {t['status']}"),
                )
            if task["status"] != "succeeded":
                raise ClientError(200, {"error": task.get("error") or {}})
            out.mkdir(parents=True, exist_ok=True)
            saved = []
            for i, item in enumerate(task["result"]["data"]):
                path = out / f"{task_id}_{i}.{task['result']['output_format']}"
                path.write_bytes(await client.download(item))
                saved.append(path)
            return saved

    try:
        for path in asyncio.run(run()):
            typer.echo(str(path))
    except (ClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
