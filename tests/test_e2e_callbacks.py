"""End to end with callbacks: the real bot's listener, the fake Evolink calling it, the fake Discord told once."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bot.client import UpscaleBot
from sandbox.offline import Sandbox
from storage import open_storage
from tests.conftest import BotRunner
from tests.helpers import DeliveryWatch, mentions, start_upscale, wait_told

PUBLIC = "https://callbacks.example.com/evolink"
RESULT = "https://cdn.evolink.ai/sample/called-back.mp4"


async def _start(box: Sandbox, runner: BotRunner, *, safety: float = 600.0) -> UpscaleBot:
    """The bot with callbacks on, its listener on a free port (the sandbox's default), and the fake routing PUBLIC
    to it."""
    bot = await runner.start(callback_url=PUBLIC, callback_poll_seconds=safety)
    assert bot.http_listener is not None
    box.evolink.route_callbacks(PUBLIC, f"http://127.0.0.1:{bot.http_listener.port}/evolink")
    return bot


async def test_a_callback_ends_the_task_with_one_confirming_query(box: Sandbox, bot_runner: BotRunner) -> None:
    bot = await _start(box, bot_runner)
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    sent = box.evolink.tasks[task_id].callback_url
    assert sent is not None and sent.startswith(PUBLIC + "/")
    assert box.evolink.queries(task_id) == 0, "with a callback coming, nothing is polled for 600 s"

    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)
    assert [c.status for c in box.evolink.callbacks_for(task_id)] == [204]
    assert box.evolink.queries(task_id) == 1, "the callback is confirmed with exactly one query"
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1
    assert len(box.discord.dm_messages(box.alice_id)) == 1
    task = await bot.storage.get_task_by_upstream_id(task_id)
    assert task is not None and task.status == "completed" and task.next_poll_at is None


async def test_a_failed_task_is_told_through_its_callback(box: Sandbox, bot_runner: BotRunner) -> None:
    bot = await _start(box, bot_runner)
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/broken.mp4")
    box.evolink.fail(task_id, "video_probe_failed")
    await wait_told(box, box.alice_id, "could not read the video")
    await watch.told(task_id)
    assert box.evolink.queries(task_id) == 1
    task = await bot.storage.get_task_by_upstream_id(task_id)
    assert task is not None and task.quota_state == "released"


async def test_forged_callbacks_never_end_a_task(box: Sandbox, bot_runner: BotRunner) -> None:
    bot = await _start(box, bot_runner)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    row = await bot.storage.get_task_by_upstream_id(task_id)
    assert row is not None
    forged = {"id": task_id, "status": "completed", "results": ["https://evil.example.com/x.mp4"]}
    wrong = f"{PUBLIC}/{row.id}/not-the-token"
    assert await box.evolink.send_callback(task_id, forged, url=wrong) == 404
    assert box.evolink.queries(task_id) == 0, "a wrong token costs nothing"

    # With the right token (say, a replay) the body is still not believed: the bot asks Evolink.
    assert await box.evolink.send_callback(task_id, forged) == 204
    await box.evolink.wait_for(lambda: box.evolink.queries(task_id) == 1)
    step = bot.poller._in_flight.get(row.id)  # the poller's work on this task: its answer being applied
    if step is not None:
        await step
    after = await bot.storage.get_task(row.id)
    assert after is not None and after.status in ("pending", "processing") and after.result_url is None
    assert after.next_poll_at is not None and after.next_poll_at > time.time() + 60, "back on the safety net"
    assert mentions(box, box.channel_id, box.alice_id) == []
    assert box.discord.dm_messages(box.alice_id) == []


async def test_a_retried_callback_is_taken_once(box: Sandbox, bot_runner: BotRunner) -> None:
    bot = await _start(box, bot_runner)
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.evolink.drop_callbacks(1)
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)
    attempts = box.evolink.callbacks_for(task_id)
    assert [c.status for c in attempts] == [None, 204]
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1


async def test_a_lost_callback_is_caught_by_the_safety_net(box: Sandbox, bot_runner: BotRunner) -> None:
    bot = await _start(box, bot_runner, safety=1.0)
    watch = DeliveryWatch(bot)
    box.evolink.callbacks_enabled = False
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)
    assert box.evolink.callbacks_for(task_id) == []


async def test_a_task_that_ended_while_the_bot_was_down_is_queried_on_start(box: Sandbox,
                                                                              bot_runner: BotRunner) -> None:
    bot = await _start(box, bot_runner)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    row = await bot.storage.get_task_by_upstream_id(task_id)
    assert row is not None
    await bot_runner.stop()
    # Make the row look like a job whose estimate has passed (the fake estimates 600 s).
    store = await open_storage(bot_runner.database_url)
    try:
        assert row.submitted_at is not None
        await store.update_task(row.id, {"submitted_at": row.submitted_at - 600})
    finally:
        await store.close()
    box.evolink.callbacks_enabled = False  # sent while the bot was down: lost
    box.evolink.complete(task_id, RESULT)

    bot = await _start(box, bot_runner)  # the sandbox polls at least every POLL_MAX_SECONDS (0.3 s)
    watch = DeliveryWatch(bot)
    await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1


async def test_a_callback_port_in_use_stops_start_up_with_one_line(box: Sandbox, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EVOLINK_", "CALLBACK_"))}
        env.update(box.env(tmp_path / "bot.db", CALLBACK_URL=PUBLIC, CALLBACK_LISTEN=f"127.0.0.1:{port}"))
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=tmp_path, env=env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    lines = stderr.decode().strip().splitlines()
    assert proc.returncode == 2, lines
    assert lines[-1].startswith("upscale-bot: configuration error: ")
    assert f"CALLBACK_LISTEN 127.0.0.1:{port} cannot be opened" in lines[-1]
    assert not any("Traceback" in line for line in lines)
