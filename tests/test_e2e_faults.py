"""End to end: Discord failures on posts and DMs, and operator alerts, each with a defined outcome."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import LIMIT_NAMES
from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, mentions, start_upscale, wait_told

RESULT = "https://cdn.evolink.ai/sample/faults.mp4"


async def _upscale_refused(box: Sandbox) -> None:
    interaction = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options={"url": "https://example.com/a.mp4"})
    await interaction.wait_ack()
    await box.discord.wait_for(lambda: any(m["flags"] & 64 for m in interaction.followups))


async def test_bad_key_and_no_credits_alert_the_operator_at_most_once_per_10_minutes(
        box: Sandbox, bot_runner: Any) -> None:
    ops = box.discord.add_channel(box.guild_id, "ops")
    bot = await bot_runner.start(alert_channel_id=int(ops), default_limits=dict.fromkeys(LIMIT_NAMES))
    now = [1000.0]
    bot.alerts.clock = lambda: now[0]
    for fault in ("unauthorized", "unauthorized", "no_credits"):
        box.evolink.inject(fault, on="submit")
        await _upscale_refused(box)
    alerts = await box.discord.wait_for(lambda: box.discord.channel_messages(ops))
    assert len(alerts) == 1 and "EVOLINK_API_KEY" in alerts[0]["content"]

    now[0] += 601
    box.evolink.inject("no_credits", on="submit")
    await _upscale_refused(box)
    alerts = await box.discord.wait_for(lambda: (m := box.discord.channel_messages(ops)) and len(m) == 2 and m)
    assert "out of credits" in alerts[1]["content"]
    assert all(box.evolink.api_key not in m["content"] for m in alerts)


async def test_no_permission_in_the_channel_leaves_the_dm(box: Sandbox, bot: Any) -> None:
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/a.mp4")
    box.discord.inject("POST", rf"^/channels/{box.channel_id}/messages$", 403, code=50013,
                       message="Missing Permissions")
    box.evolink.complete(task_id, RESULT)
    await watch.told(task_id)
    [dm] = box.discord.dm_messages(box.alice_id)
    assert RESULT in dm["content"]
    task = await bot.storage.get_task_by_upstream_id(task_id)
    assert task is not None and (task.dm_state, task.channel_state) == ("sent", "gone")


@pytest.mark.parametrize(("target", "status"), [("channel", 503), ("channel", 429), ("dm", 503), ("dm", 502)])
async def test_discord_errors_on_sends_are_retried_and_land_once(box: Sandbox, bot: Any, target: str,
                                                                 status: int) -> None:
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/a.mp4")
    channel = box.channel_id if target == "channel" else box.discord.dm_channel_id(box.alice_id)
    box.discord.inject("POST", rf"^/channels/{channel}/messages$", status, times=2, retry_after=0.05)
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1
    assert len(box.discord.dm_messages(box.alice_id)) == 1
    failed = [r for r in box.discord.requests if r.status == status and r.path == f"/channels/{channel}/messages"]
    assert len(failed) == 2
