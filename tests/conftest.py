"""Fixtures: the loopback fakes, the database (SQLite, or PostgreSQL for tests marked `backends`), and the real bot
running against them (in-process or as its own process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from bot.client import UpscaleBot, point_discord_at
from sandbox.offline import SANDBOX_API_KEY, SANDBOX_BOT_TOKEN, Sandbox, sandbox
from sandbox.process import BotProcess
from storage import Storage, open_storage
from tests.postgres import PostgresSource, open_source, parametrize_backends, summary_line

pytest_plugins = ["pytester"]  # tests/test_postgres_cluster.py checks the backends parametrization in a pytest run


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_backends(metafunc)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say at the end of the run, in red, when tests did not run on PostgreSQL (counted over all xdist workers)."""
    line = summary_line(terminalreporter.stats)
    if line:
        terminalreporter.write_sep("!", line, red=True, bold=True)


class SecretWatch(logging.Handler):
    """Sees every log record of the whole suite at DEBUG and remembers any that shows a secret."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if SANDBOX_BOT_TOKEN in text or SANDBOX_API_KEY in text:
            self.leaks.append(text[:500])


@pytest.fixture(scope="session", autouse=True)
def secrets_never_logged() -> Iterator[None]:
    """Token and API key never appear in any log output at DEBUG during the whole suite."""
    watch = SecretWatch()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(watch)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(watch)
    root.setLevel(previous)
    assert not watch.leaks, f"secrets reached the log: {watch.leaks[:3]}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp client session for a test that makes its own requests."""
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture(scope="session")
def postgres_source() -> Iterator[PostgresSource]:
    """This worker's PostgreSQL server (TEST_DATABASE_URL or a throwaway cluster), started on first use only."""
    with open_source() as source:
        yield source


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The DATABASE_URL for this test: a SQLite file in tmp_path, or for the `[postgres]` case of a test marked
    `backends` a new empty database on the session's server (dropped after the test)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'bot.db'}"
        return
    source: PostgresSource = request.getfixturevalue("postgres_source")
    url = source.new_database()
    try:
        yield url
    finally:
        source.drop_database(url)


@pytest.fixture
def storage_url(database_url: str) -> str:
    """The DATABASE_URL for storage-level tests (one per backend under the `backends` marker)."""
    return database_url


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """An open, migrated Storage on `storage_url`, closed after the test."""
    store = await open_storage(storage_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with sandbox() as running:
        yield running


class BotRunner:
    """Starts the real UpscaleBot in this event loop and always closes it."""

    def __init__(self, box: Sandbox, database_url: str) -> None:
        self.box = box
        self.database_url = database_url
        self.bot: UpscaleBot | None = None
        self._runner: asyncio.Task[None] | None = None

    async def start(self, **overrides: object) -> UpscaleBot:
        settings = self.box.settings(self.database_url, **overrides)
        point_discord_at(settings)
        identified = self.box.discord.identify_count
        self.bot = UpscaleBot(settings, guild_ready_timeout=0.05)
        self._runner = asyncio.create_task(self.bot.start(settings.discord_token))
        # A start-up that fails changes nothing at the fake, so wait on the bot's task itself as well.
        identify = asyncio.create_task(self.box.discord.wait_for(lambda: self.box.discord.identify_count > identified))
        await asyncio.wait({identify, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        identify.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await identify
        if self._runner.done():
            self._runner.result()  # raise the start-up error
        await self.box.discord.wait_ready()
        return self.bot

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.close()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self.bot = None
        self._runner = None


@pytest.fixture
async def bot_runner(box: Sandbox, database_url: str) -> AsyncIterator[BotRunner]:
    runner = BotRunner(box, database_url)
    try:
        yield runner
    finally:
        await runner.stop()


@pytest.fixture
async def bot(bot_runner: BotRunner) -> UpscaleBot:
    return await bot_runner.start()


@pytest.fixture
async def bot_process(box: Sandbox, database_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., BotProcess]]:
    made: list[BotProcess] = []

    def make(**overrides: str) -> BotProcess:
        process = BotProcess(box.env(database_url, **overrides), tmp_path / "bot.log")
        made.append(process)
        return process

    try:
        yield make
    finally:
        for process in made:
            await process.kill()
            output = process.output()
            assert SANDBOX_BOT_TOKEN not in output and SANDBOX_API_KEY not in output, "a secret reached the log"
