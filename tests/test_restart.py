"""The bot as its own process (`python -m bot`), SIGKILLed and started again: every member is told exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.offline import Sandbox
from sandbox.process import BotProcess
from tests.helpers import mentions, start_upscale, stored_task, wait_told

pytestmark = pytest.mark.backends("sqlite", "postgres")

RESULT = "https://cdn.evolink.ai/sample/after-restart.mp4"


async def _started(box: Sandbox, process: BotProcess) -> None:
    await process.start_connected(box.discord)


async def test_sigkill_after_submitting_then_restart_tells_the_member_exactly_once(
        box: Sandbox, bot_process: Callable[..., BotProcess], database_url: str) -> None:
    first = bot_process()
    await _started(box, first)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    await first.kill()

    box.evolink.complete(task_id, RESULT)
    second = bot_process()
    await _started(box, second)
    await wait_told(box, box.alice_id, RESULT)
    assert await second.terminate() == 0, second.output()

    row = await stored_task(database_url, task_id)
    assert row.status == "completed" and row.notified_at is not None and row.next_poll_at is None
    assert (row.dm_state, row.channel_state) == ("sent", "sent")
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1
    assert len(box.discord.dm_messages(box.alice_id)) == 1


async def test_sigkill_during_the_paid_post_resolves_the_row_on_start(
        box: Sandbox, bot_process: Callable[..., BotProcess], database_url: str) -> None:
    """SQLite: at the next start. PostgreSQL (where another process might still be mid-POST): once the row's
    window, the POST timeout plus LEASE_SECONDS, has passed."""
    first = bot_process(EVOLINK_TIMEOUT_SECONDS="4")
    await _started(box, first)
    box.evolink.inject("timeout", on="submit")
    interaction = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options={"url": "https://example.com/a.mp4"})
    await interaction.wait_ack()
    await box.evolink.wait_for(lambda: any(r.method == "POST" for r in box.evolink.requests))
    await first.kill()
    assert (await stored_task(database_url, user_id=box.alice_id)).status == "submitting"

    second = bot_process()
    await _started(box, second)
    post, _ = await wait_told(box, box.alice_id, "Please start it again")
    assert "restarted" in post["content"]
    assert await second.terminate() == 0, second.output()
    row = await stored_task(database_url, user_id=box.alice_id)
    assert row.status == "failed" and row.error_code == "bot_restarted" and row.notified_at is not None
    assert row.quota_state == "released", "the interrupted job gives its quota back"
    assert len(box.discord.dm_messages(box.alice_id)) == 1
    assert box.evolink.submissions() <= 1, "the paid POST was not sent again"


@pytest.mark.backends("sqlite")  # reads the SQLite file's bytes
async def test_secrets_never_reach_the_log_or_the_database(
        box: Sandbox, bot_process: Callable[..., BotProcess], tmp_path: Path) -> None:
    process = bot_process(LOG_LEVEL="DEBUG")
    await _started(box, process)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    assert await process.terminate() == 0
    output = process.output()
    assert "DEBUG" in output and task_id in output, "the log was written at DEBUG"
    database = b"".join(p.read_bytes() for p in tmp_path.glob("bot.db*"))
    for secret in (box.discord.bot_token, box.evolink.api_key):
        assert secret not in output
        assert secret.encode() not in database


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_sigterm_and_ctrl_c_stop_cleanly_with_exit_0(
        box: Sandbox, bot_process: Callable[..., BotProcess], signum: int) -> None:
    process = bot_process()
    await _started(box, process)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.evolink.set_progress(task_id, 30)
    assert process.proc is not None
    process.proc.send_signal(signum)
    assert await asyncio.wait_for(process.proc.wait(), 20) == 0, process.output()
    output = process.output()
    for sign_of_a_dirty_stop in ("Unclosed", "Task was destroyed", "Traceback", "never awaited"):
        assert sign_of_a_dirty_stop not in output, output
    assert "stopping" in output
