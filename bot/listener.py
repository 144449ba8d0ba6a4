"""HttpListener: the process's one HTTP listener on HTTP_LISTEN (CALLBACK_LISTEN is its older name).

- `GET /healthz`: 200 with a small JSON body when this process can do its work, else 503 with the reasons
  (bot/health.py says what is checked and why).
- `GET /metrics`: the Prometheus text format of this bot's own registry (bot/metrics.py).
- `POST <anything>/<task number>/<token>`: an Evolink callback, only when CALLBACK_URL is set (bot/callbacks.py).
Anything else is 404 (405 for a GET on a callback-like path while callbacks are on: that route takes any path).

It speaks plain HTTP and writes no access log (the callback paths carry tokens). The operator's TLS proxy
should forward only the callback path from the internet; /healthz and /metrics are for the local network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.callbacks import MAX_BODY, CallbackHints
from bot.config import ConfigError
from bot.health import HealthCheck
from bot.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

ACTIVE_COUNT_SECONDS = 2.0


class HttpListener:
    """One aiohttp site serving whichever of health, metrics and callbacks it was given."""

    def __init__(self, host: str, port: int, *, setting: str = "HTTP_LISTEN", health: HealthCheck | None = None,
                 metrics: Metrics | None = None, count_active: Callable[[], Awaitable[int]] | None = None,
                 callbacks: CallbackHints | None = None) -> None:
        self.host = host
        self.port = port
        self.setting = setting  # the setting named when the port cannot be opened
        self.health = health
        self.metrics = metrics
        self.count_active = count_active
        self.callbacks = callbacks
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; a port in use (or a host not ours) is a ConfigError naming the setting: exit 2."""
        app = web.Application(client_max_size=MAX_BODY)
        if self.health is not None:
            app.router.add_get("/healthz", self._healthz, allow_head=True)
        if self.metrics is not None:
            app.router.add_get("/metrics", self._metrics, allow_head=True)
        if self.callbacks is not None:
            app.router.add_post("/{tail:.*}", self.callbacks.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)  # no access log: paths carry tokens
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as error:
            await runner.cleanup()
            older = " (the older name of HTTP_LISTEN)" if self.setting != "HTTP_LISTEN" else ""
            raise ConfigError(f"{self.setting} {self.host}:{self.port} cannot be opened: "
                              f"{error.strerror or error}{older}") from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])  # the real port when 0 asked for any free one
        serving = [name for name, on in (("/healthz", self.health), ("/metrics", self.metrics),
                                         ("Evolink callbacks", self.callbacks)) if on is not None]
        log.info("HTTP listener on %s:%s: %s", self.host, self.port, ", ".join(serving))

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        assert self.health is not None
        healthy, body = await self.health.check()
        return web.json_response(body, status=200 if healthy else 503, headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        if self.count_active is not None:
            try:
                async with asyncio.timeout(ACTIVE_COUNT_SECONDS):
                    self.metrics.set_active(await self.count_active())
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the gauge keeps its last value; /healthz says what is wrong
                log.debug("metrics: counting active tasks failed (%s)", type(error).__name__)
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})
