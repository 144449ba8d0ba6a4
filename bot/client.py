"""UpscaleBot: the discord.py Bot that opens the database, logs in and syncs its commands, then starts the work.

Start-up against a failing Discord ends within DISCORD_CONNECT_TIMEOUT_SECONDS with one StartupError line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from types import SimpleNamespace

import aiohttp
import asyncpg
import discord
import yarl
from discord.ext import commands

from bot.alerts import OperatorAlerts
from bot.callbacks import CallbackHints
from bot.config import Settings
from bot.credits import CreditWatch
from bot.evolink import EvolinkClient
from bot.health import HealthCheck, stale_after
from bot.i18n import CatalogueTranslator
from bot.lifecycle import Lease
from bot.listener import HttpListener
from bot.messenger import DiscordMessenger
from bot.metrics import Metrics
from bot.notifier import Notifier
from bot.poller import TaskPoller
from bot.quota import QuotaService
from bot.single_process import SQLiteProcessLock
from bot.startup import database_failure, describe_answer, discord_failure, discord_timeout, host_of
from bot.tasks import TaskService
from storage import Storage, is_postgres, open_storage, sqlite_path

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.upscale", "cogs.context_menu", "cogs.quota", "cogs.members", "cogs.errors")


def point_discord_at(settings: Settings) -> None:
    """Send discord.py's REST and gateway traffic to the configured URLs (a proxy, or a loopback fake)."""
    if settings.discord_api_base_url:
        discord.http.Route.BASE = settings.discord_api_base_url
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


class UpscaleBot(commands.AutoShardedBot):
    """Owns the process-wide resources; the services are built here and used by the cogs."""

    storage: Storage
    http_session: aiohttp.ClientSession
    evolink: EvolinkClient
    tasks: TaskService
    alerts: OperatorAlerts
    credits: CreditWatch
    quotas: QuotaService
    messenger: DiscordMessenger
    notifier: Notifier
    poller: TaskPoller
    metrics: Metrics
    http_listener: HttpListener | None = None  # /healthz, /metrics and the callback path (HTTP_LISTEN)
    _process_lock: SQLiteProcessLock | None = None

    def __init__(self, settings: Settings, *, sync_only: bool = False, **options: object) -> None:
        options.setdefault("guild_ready_timeout", 2.0)
        # What Discord last answered with an error, so a start-up that runs out of time can say what it saw
        # (discord.py retries 500/502/504 for ~25 s inside one request).
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._saw_answer)
        trace.on_request_exception.append(self._saw_failure)
        options.setdefault("http_trace", trace)
        # The gateway shards this process holds (DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS); with neither set,
        # all of Discord's recommended count (GET /gateway/bot).
        options.setdefault("shard_count", settings.discord_shard_count)
        options.setdefault("shard_ids", list(settings.discord_shard_ids) or None)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.none() | discord.Intents(guilds=True),
            help_command=None,
            **options,  # type: ignore[arg-type]
        )
        self.settings = settings
        self.sync_only = sync_only
        self._api_host = host_of(settings.discord_api_base_url, "discord.com")
        self._stage = "logging in"
        self._last_answer: str | None = None
        self._login_task: asyncio.Task[object] | None = None
        self._ready_watch: asyncio.Task[None] | None = None

    @property
    def holds_shard_zero(self) -> bool:
        """The process that syncs the slash commands at start (others leave it to it, or to `sync`)."""
        return not self.settings.discord_shard_ids or 0 in self.settings.discord_shard_ids

    async def setup_hook(self) -> None:
        """Nothing: login() does the set-up itself, so the database opens before Discord is asked anything and
        does not count against the Discord deadline (discord.py would call this between its REST login and us)."""

    async def login(self, token: str) -> None:
        """Open the database and load the cogs; log in and sync the commands within
        DISCORD_CONNECT_TIMEOUT_SECONDS; then start the work. Failures are one-line StartupErrors."""
        self._login_task = asyncio.current_task()
        # discord.py makes its loop-bound objects (the sharded client's event queue among them) inside its own
        # login; make them now, so a close() after a failed start-up (a database, a port) finds them.
        await self._async_setup_hook()
        try:
            await self._open_services()
            seconds = self.settings.discord_connect_timeout_seconds
            try:
                async with asyncio.timeout(seconds) as deadline:
                    with self._discord_stage("logging in"):
                        await super().login(token)
                    if self.sync_only or self.holds_shard_zero:
                        await self.sync_app_commands()  # once for the bot, not by every process
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise discord_timeout(self._api_host, self._stage, seconds, self._last_answer) from None
            if not self.sync_only:
                await self._start_work()
                self._ready_watch = asyncio.create_task(self._warn_without_ready(seconds), name="ready-watch")
        finally:
            self._login_task = None

    @contextlib.contextmanager
    def _discord_stage(self, stage: str) -> Iterator[None]:
        """Name the step in progress, and turn an HTTP error or a connection failure into one line about it."""
        self._stage = stage
        try:
            yield
        except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
            raise discord_failure(error, self._api_host, stage, syncing=stage.startswith("syncing")) from error

    async def _saw_answer(self, _session: object, _context: object, params: SimpleNamespace) -> None:
        status = params.response.status
        self._last_answer = describe_answer(status, params.response.reason) if status >= 400 else None

    async def _saw_failure(self, _session: object, _context: object, params: SimpleNamespace) -> None:
        error = params.exception
        if isinstance(error, Exception):  # not a cancellation (our own deadline)
            self._last_answer = str(error) or type(error).__name__

    async def _warn_without_ready(self, seconds: float) -> None:
        """Say once, in one line, when the gateway is slow to give READY; discord.py keeps trying meanwhile."""
        try:
            await asyncio.wait_for(self.wait_until_ready(), seconds)
        except TimeoutError:
            gateway = host_of(self.settings.discord_gateway_url, "gateway.discord.gg")
            log.warning("no READY from the Discord gateway (%s) within %g s of logging in; still trying. Slash "
                        "commands wait for it, results are still delivered. Check the network, DISCORD_GATEWAY_URL "
                        "and https://discordstatus.com", gateway, seconds)

    async def _open_services(self) -> None:
        """The database, the HTTP session, the services and the cogs: everything that needs no Discord.

        `sync` needs only the command definitions, so it opens (and creates) no database."""
        settings = self.settings
        # Command names, descriptions, options and choices in every language with a catalogue.
        await self.tree.set_translator(CatalogueTranslator())
        if self.sync_only:
            for name in EXTENSIONS:
                await self.load_extension(name)
            return
        try:
            if not is_postgres(settings.database_url):
                lock = SQLiteProcessLock(sqlite_path(settings.database_url))
                lock.acquire()  # before anything is written: a second process stops here
                self._process_lock = lock
            self.storage = await open_storage(settings.database_url, pool_size=settings.database_pool_size)
        except (OSError, TimeoutError, sqlite3.OperationalError, asyncpg.PostgresError,
                asyncpg.InterfaceError) as error:
            raise database_failure(error, settings.database_url, settings.secrets()) from error
        self.metrics = Metrics()  # this bot's own registry: several bots in one process (tests) count apart
        self.http_session = aiohttp.ClientSession()
        self.evolink = EvolinkClient(self.http_session, settings.evolink_base_url, settings.evolink_api_key,
                                     request_timeout=settings.evolink_timeout_seconds,
                                     backoff_base=min(1.0, settings.poll_min_seconds), metrics=self.metrics)
        self.quotas = QuotaService(self.storage, settings.default_limits)
        self.alerts = OperatorAlerts(self, settings.alert_channel_id, storage=self.storage)
        self.credits = CreditWatch(self.evolink, self.storage, self.alerts, alert_below=settings.credits_alert_below,
                                   check_seconds=settings.credits_check_seconds)
        self.evolink.on_submitted = self.credits.after_submit
        lease = Lease(seconds=settings.lease_seconds)
        self.tasks = TaskService(self.storage, self.evolink, self.quotas, poll_min=settings.poll_min_seconds,
                                 poll_max=settings.poll_max_seconds, on_change=self._wake_poller, metrics=self.metrics,
                                 on_operator_error=self.alerts.upstream_error,
                                 callback_url=settings.callback_url, callback_poll=settings.callback_poll_seconds,
                                 lease=lease, submit_timeout=settings.evolink_timeout_seconds)
        self.messenger = DiscordMessenger(self, edit_window=settings.interaction_edit_window_seconds,
                                          metrics=self.metrics)
        self.notifier = Notifier(self.storage, self.messenger, metrics=self.metrics,
                                 card_edit_seconds=settings.card_edit_seconds,
                                 retry_min=settings.poll_min_seconds, retry_max=settings.poll_max_seconds,
                                 lease=lease)
        self.poller = TaskPoller(self.storage, self.tasks, self.notifier, self.evolink, metrics=self.metrics,
                                 concurrency=settings.poll_concurrency, idle_wait=settings.poll_max_seconds,
                                 slack=min(1.0, settings.poll_min_seconds / 5), lease=lease)
        for name in EXTENSIONS:
            await self.load_extension(name)
        await self._open_http_listener()

    async def _open_http_listener(self) -> None:
        """/healthz and /metrics, and the callback path when CALLBACK_URL is set. Opened before Discord is asked
        anything: a port in use stops start-up at once (exit 2), and a health check sees a starting bot as
        unhealthy (503, "not connected yet") rather than absent."""
        settings = self.settings
        health = HealthCheck(self, self.storage, self.poller, stale_after=stale_after(settings.poll_max_seconds))
        self.http_listener = HttpListener(
            *settings.http_listen, setting=settings.http_listen_name, health=health, metrics=self.metrics,
            count_active=self.storage.count_active,
            callbacks=CallbackHints(self.tasks) if settings.callback_url else None)
        await self.http_listener.start()

    async def _start_work(self) -> None:
        """Resolve what a crash left behind and start the poller (the HTTP listener is already open)."""
        settings = self.settings
        # Alone on its SQLite file, this process knows every `submitting` row is a dead run's. With PostgreSQL
        # another process may be mid-POST: the poller takes such rows only once their window has passed.
        if not is_postgres(settings.database_url):
            interrupted = await self.tasks.resolve_interrupted_submissions()
            if interrupted:
                log.warning("%d task(s) were interrupted mid-submission; their members will be told",
                            len(interrupted))
        if settings.callback_url:
            # Callbacks sent while we were down are lost (Evolink gives up after ~7 s): query the running
            # tasks that should have ended by now soon, spread over POLL_MAX_SECONDS; the rest keep their
            # safety-net query.
            await self.storage.poll_ending_within(self.tasks.clock(), settings.poll_max_seconds)
        self.poller.start()
        self.credits.start()

    def _wake_poller(self) -> None:
        if hasattr(self, "poller"):
            self.poller.wake()

    async def sync_app_commands(self) -> None:
        """Sync to DISCORD_GUILD_IDS (instant) or globally when none are set."""
        if self.settings.discord_guild_ids:
            for guild_id in self.settings.discord_guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                with self._discord_stage(f"syncing the slash commands to guild {guild_id}"):
                    synced = await self.tree.sync(guild=guild)
                log.info("synced %d command(s) to guild %s", len(synced), guild_id)
        else:
            with self._discord_stage("syncing the slash commands"):
                synced = await self.tree.sync()
            log.info("synced %d command(s) globally (may take up to an hour to appear)", len(synced))

    async def on_ready(self) -> None:
        log.info("connected as %s (%s) in %d guild(s)", self.user, getattr(self.user, "id", "?"), len(self.guilds))

    async def close(self) -> None:
        """Stop a start-up in progress, then the poller so nothing is half-written, then session and database."""
        login = self._login_task
        if login is not None and login is not asyncio.current_task() and not login.done():
            login.cancel()  # else it would go on opening what this is about to close
            await asyncio.wait({login}, timeout=10)
        if self._ready_watch is not None:
            self._ready_watch.cancel()
        if self.http_listener is not None:
            await self.http_listener.close()
        if hasattr(self, "poller"):
            await self.poller.stop()
        # Let commands being answered finish (they write to the database and reply through REST).
        # discord.py runs each app command in a task it names "CommandTree-invoker".
        handlers = [t for t in asyncio.all_tasks()
                    if t.get_name() == "CommandTree-invoker" and t is not asyncio.current_task()]
        if handlers:
            await asyncio.wait(handlers, timeout=10)
        if hasattr(self, "credits"):
            await self.credits.stop()
        if hasattr(self, "alerts"):
            await self.alerts.close()
        self._cancel_pending_ready()
        await super().close()
        self._cancel_pending_ready()  # in case a READY arrived while the gateway was closing
        if hasattr(self, "http_session"):
            await self.http_session.close()
        if hasattr(self, "storage"):
            await self.storage.close()
        if self._process_lock is not None:
            self._process_lock.release()
            self._process_lock = None

    def _cancel_pending_ready(self) -> None:
        """Stop discord.py's READY task, which Client.close() leaves running.

        That task waits `guild_ready_timeout` for the last GUILD_CREATE and then dispatches `ready`; after
        close() has unset the client's loop, the dispatch builds the handler coroutine, fails to schedule it,
        and the coroutine is never awaited ("coroutine 'Client._run_event' was never awaited"). Cancelled, it
        skips the dispatch.
        """
        pending = [getattr(self._connection, "_ready_task", None)]
        pending += list(getattr(self._connection, "_ready_tasks", {}).values())  # the sharded client's, per shard
        for ready in pending:
            if ready is not None and not ready.done():
                ready.cancel()
