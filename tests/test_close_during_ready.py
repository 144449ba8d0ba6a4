"""Closing the bot while discord.py still waits to dispatch READY leaves nothing behind.

discord.py dispatches `ready` from a task that first waits `guild_ready_timeout` for the last GUILD_CREATE, and
Client.close() does not stop it. Left running, it dispatched after close() had unset the client's loop: the
handler coroutine was built but never scheduled ("coroutine 'Client._run_event' was never awaited") and the
task itself ended in an AttributeError.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bot.client import UpscaleBot, point_discord_at
from sandbox.offline import Sandbox


async def test_close_before_ready_stops_the_pending_ready_dispatch(box: Sandbox, tmp_path: Path) -> None:
    settings = box.settings(tmp_path / "bot.db")
    point_discord_at(settings)
    # Long enough that READY is still pending when close() runs.
    bot = UpscaleBot(settings, guild_ready_timeout=30.0)
    guild_seen = asyncio.Event()

    async def on_socket_event_type(event: str) -> None:
        # The sharded client announces guilds only once READY is dispatched; the raw GUILD_CREATE comes first
        # (READY, and so the pending READY task, before it).
        if event == "GUILD_CREATE":
            guild_seen.set()

    bot.add_listener(on_socket_event_type, "on_socket_event_type")
    runner = asyncio.create_task(bot.start(settings.discord_token))
    try:
        await asyncio.wait_for(guild_seen.wait(), 10)
        ready_task = bot._connection._ready_task
        assert ready_task is not None and not ready_task.done(), "READY should still be pending here"
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
    # Ended by close(), without dispatching (which would raise AttributeError on the unset loop). Not
    # asyncio.wait_for: its timeout cancels the task, which then ends quietly and would pass.
    done, _ = await asyncio.wait({ready_task}, timeout=5)
    assert ready_task in done, "discord.py's READY task outlived close()"
    assert ready_task.cancelled() or ready_task.exception() is None, "it ended without dispatching"
