"""CallbackReceiver: the HTTP listener Evolink posts to when a task ends (CALLBACK_URL, CALLBACK_LISTEN).

Callbacks are unsigned, so one is only a hint: a POST to `<anything>/<task number>/<token>` whose token
matches the task makes the task due now, and the poller's own query decides what happened. The body is not
read. The listener speaks plain HTTP; the operator's TLS proxy (or tunnel) serves CALLBACK_URL in front of it.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.config import ConfigError
from bot.numbers import whole_number
from bot.tasks import TaskService

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # a task query answer is a few hundred bytes
_WARN_EVERY = 60.0


class CallbackReceiver:
    def __init__(self, tasks: TaskService, host: str, port: int) -> None:
        self.tasks = tasks
        self.host = host
        self.port = port
        self.accepted = 0
        self.rejected = 0
        self._runner: web.AppRunner | None = None
        self._warned_at = float("-inf")

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/{tail:.*}", self._handle)
        # No access log: the paths carry the tokens.
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as error:
            await runner.cleanup()
            raise ConfigError(f"CALLBACK_LISTEN {self.host}:{self.port} cannot be opened: "
                              f"{error.strerror or error}") from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])  # the real port when 0 asked for any free one
        log.info("listening for Evolink callbacks on %s:%s", self.host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        parts = [part for part in request.path.split("/") if part]
        number, token = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", "")
        task_id = whole_number(number)
        if task_id is None or not 0 < len(token) <= 64:
            return self._reject("a malformed path")
        try:
            known = await self.tasks.hint(task_id, token)
        except Exception:
            log.exception("callback for task %s could not be handled; the safety-net poll will catch it", number)
            return web.Response(status=503)  # Evolink retries
        if known is None:
            return self._reject(f"task {number} with a wrong token, or an unknown task")
        self.accepted += 1
        log.debug("callback for task %s (%s)", number, "querying now" if known else "already ended")
        return web.Response(status=204)

    def _reject(self, what: str) -> web.Response:
        """404, and a warning at most once a minute (anyone can post here; the log must not flood)."""
        self.rejected += 1
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("refused a callback for %s (%d refused so far)", what, self.rejected)
        return web.Response(status=404)
