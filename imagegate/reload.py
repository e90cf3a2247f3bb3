"""`SIGHUP` reloads the moderation blocklists (the config's entries, the blocklist file and
the admin list) without a restart, the way daemons re-read their files on a hang-up.

Installed by the app's lifespan on the running loop, so it exists exactly while a server
serves (and by `imagegate worker`); uvicorn handles only SIGINT and SIGTERM, and an unhandled
SIGHUP would end the process. Where a loop cannot take signal handlers (a server run in a
thread, as some tests do, or a platform without SIGHUP) nothing is installed: the admin
API's `POST /admin/moderation/reload` does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading

from imagegate.moderation.service import Moderation

log = logging.getLogger("imagegate.reload")


class SighupReload:
    def __init__(self, moderation: Moderation) -> None:
        self._moderation = moderation
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> SighupReload:
        hangup = getattr(signal, "SIGHUP", None)
        if hangup is None or threading.current_thread() is not threading.main_thread():
            return self
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(hangup, self._fire)
        except (NotImplementedError, RuntimeError, ValueError):
            # No signal handlers on this loop (Windows' proactor, an embedded loop): the
            # reload is then reached through the admin API only.
            return self
        self._loop = loop
        return self

    def _fire(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload(), name="imagegate-sighup")
        self._running.add(task)  # held, so the task is not collected while it runs
        task.add_done_callback(self._running.discard)

    async def _reload(self) -> None:
        try:
            sources = await self._moderation.reload()
        except Exception as exc:  # a bad file must not take the server down
            log.error("SIGHUP: the moderation lists were not reloaded (the previous ones "
                      "stay): %s", exc)
            return
        log.info("SIGHUP: moderation lists reloaded, %d entries", len(sources.rules))

    def close(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_signal_handler(signal.SIGHUP)
            self._loop = None
        for task in self._running:
            task.cancel()


def reload_on_sighup(moderation: Moderation) -> SighupReload:
    return SighupReload(moderation).install()
