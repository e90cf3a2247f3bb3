"""The `imagegate` command. This module only assembles the typer app; each command group is a
module of its own (server, keys, usage, channels, moderation, generate, batch, tasks), thin:
it builds settings, calls the same objects the server uses (or, for the client commands, the
client) and prints. `main` is the console-script entry point."""

from __future__ import annotations

import typer

from imagegate.cli import batch, channels, generate, keys, moderation, server, tasks, usage

cli = typer.Typer(help="imagegate: an image-generation API gateway.", no_args_is_help=True,
                  add_completion=False)
# Registered in this order because `imagegate --help` lists commands in it.
cli.add_typer(keys.keys_app, name="keys")
cli.add_typer(channels.channels_app, name="channels")
cli.add_typer(moderation.moderation_app, name="moderation")
cli.command("usage")(usage.usage_command)
cli.command()(server.serve)
cli.command()(server.worker)
cli.command()(server.migrate)
cli.command()(server.version)
cli.command()(generate.generate)
cli.command()(batch.batch)
cli.add_typer(tasks.tasks_app, name="tasks")


def main() -> None:
    cli()
