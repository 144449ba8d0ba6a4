"""Evolink callbacks (CALLBACK_URL): the request handler, served on the bot's HTTP listener.

Callbacks are unsigned, so one is only a hint: a POST to `<anything>/<task number>/<token>` whose token
matches the task makes the task due now, and the poller's own query decides what happened. The body is not
read. The bot serves the handler on its one HTTP listener (bot/listener.py, HTTP_LISTEN); the operator's TLS
proxy (or tunnel) serves CALLBACK_URL in front of it.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.numbers import whole_number
from bot.tasks import TaskService

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # a task query answer is a few hundred bytes
_WARN_EVERY = 60.0


class CallbackHints:
    """Turns a callback POST into TaskService.hint(); counts what it accepted and refused."""

    def __init__(self, tasks: TaskService) -> None:
        self.tasks = tasks
        self.accepted = 0
        self.rejected = 0
        self._warned_at = float("-inf")

    async def handle(self, request: web.Request) -> web.Response:
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
