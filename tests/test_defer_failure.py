"""/upscale when Discord refuses the acknowledgement (the defer): nothing is bought, the reservation is given back.

The defer and the reservation run at the same time, so a failed defer leaves a reserved `submitting` row. The
paid POST must not follow (nobody could be told about the job), the row must be closed with its quota
released, and the bot must go on serving. Real Discord answers every later call on an interaction it does not
know (10062) the same way, so no reply reaches the member either: they see Discord's own "The application
did not respond".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from sandbox.offline import Sandbox
from tests.helpers import start_upscale

CALLBACK = r"^/interactions/\d+/[^/]+/callback$"


class LogWatch(logging.Handler):
    """Lets a test await a log line (the error handler's last step) instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, int, str]] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.levelno, record.getMessage()))
        self._changed.set()

    async def seen(self, text: str, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not any(text in line for _, _, line in self.lines):
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def log_watch() -> Any:
    watch = LogWatch()
    root = logging.getLogger()
    root.addHandler(watch)
    yield watch
    root.removeHandler(watch)


def _callbacks(box: Sandbox) -> list[int]:
    return [r.status for r in box.discord.find_requests("POST", CALLBACK)]


@pytest.mark.parametrize("failure", ["unknown-interaction", "server-error-past-the-deadline"])
async def test_a_failed_defer_buys_nothing_releases_the_quota_and_the_bot_serves_on(
        box: Sandbox, bot_runner: Any, log_watch: LogWatch, failure: str) -> None:
    bot = await bot_runner.start()  # the shipped defaults: one job at a time per member
    if failure == "unknown-interaction":
        # Discord no longer knows the interaction: the defer and the error reply after it both get 10062.
        box.discord.inject("POST", CALLBACK, 404, code=10062, message="Unknown interaction", times=2)
        expected = [404, 404]
    else:
        # A 5xx: discord.py retries the callback after 1 s; by then the 3 s deadline has passed (the fake's
        # clock is moved), so the retry and the error reply get 10062.
        box.discord.inject("POST", CALLBACK, 500, message="Internal Server Error")
        expected = [500, 404, 404]
    interaction = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options={"url": "https://example.com/a.mp4"})
    if failure != "unknown-interaction":
        await box.discord.wait_for(lambda: _callbacks(box) == [500])
        box.discord.advance(5)
    await box.discord.wait_for(lambda: _callbacks(box) == expected, what="the defer and the error reply")
    await log_watch.seen("could not send an error reply")

    assert box.evolink.requests == [], "no paid POST for a job nobody could be told about"
    [row] = await bot.storage.user_tasks(int(box.alice_id), 10)
    assert (row.status, row.error_code, row.quota_state) == ("failed", "abandoned", "released")
    assert row.next_poll_at is None and row.notified_at is not None, "nothing left to deliver"
    usage = await bot.quotas.usage(int(box.guild_id), int(box.alice_id))
    assert usage.user_concurrent_jobs == 0 and usage.user_daily_jobs == 0
    assert interaction.ack is None and interaction.followups == [], "no reply was possible"
    errors = [(name, message) for name, level, message in log_watch.lines if level >= logging.ERROR]
    assert errors == [("cogs.errors", "command /upscale failed")], "logged once, by the bot's own handler"

    # The bot goes on, and the released quota lets the member start a job under the 1-at-a-time limit.
    await start_upscale(box, url="https://example.com/b.mp4")
    assert box.evolink.submissions() == 1


async def test_a_defer_retried_in_time_after_a_5xx_starts_the_job_once(box: Sandbox, bot: Any) -> None:
    box.discord.inject("POST", CALLBACK, 502, message="Bad Gateway")
    _, task_id = await start_upscale(box, url="https://example.com/a.mp4")
    assert _callbacks(box) == [502, 200]
    assert box.evolink.submissions() == 1
    [row] = await bot.storage.user_tasks(int(box.alice_id), 10)
    assert row.upstream_id == task_id and row.status == "pending"
