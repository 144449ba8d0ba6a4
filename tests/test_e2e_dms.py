"""End to end: a member turns result DMs off and on for themself with /dms; results always reach the channel."""

from __future__ import annotations

import pytest

from bot.client import UpscaleBot
from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, mentions, send_attempts, start_upscale, stored_task, wait_told

pytestmark = pytest.mark.backends("sqlite", "postgres")
RESULT = "https://cdn.evolink.ai/sample/dms.mp4"


async def _dms(box: Sandbox, user_id: str, **options: str) -> str:
    interaction = await box.discord.slash("dms", user_id=user_id, channel_id=box.channel_id, guild_id=box.guild_id,
                                          options=options)
    ack = await interaction.wait_ack()
    assert ack["type"] == 4 and ack["data"]["flags"] & 64, "a private answer"
    return ack["data"]["content"]


async def test_result_dms_off_then_on(box: Sandbox, bot: UpscaleBot, database_url: str) -> None:
    watch = DeliveryWatch(bot)
    assert "**on**" in await _dms(box, box.alice_id), "on until the member says otherwise"
    assert "**off**" in await _dms(box, box.alice_id, results="off")
    assert "**off**" in await _dms(box, box.alice_id), "remembered"

    _, first = await start_upscale(box, url="https://example.com/one.mp4")
    box.evolink.complete(first, RESULT)
    await watch.told(first)
    [post] = mentions(box, box.channel_id, box.alice_id)
    assert RESULT in post["content"] and "couldn't DM" not in post["content"]
    assert box.discord.dm_messages(box.alice_id) == []
    row = await stored_task(database_url, first)
    assert row.dm_state == "off" and row.channel_state == "sent"
    assert send_attempts(box)[(row.id, "d")] == 0, "not even tried"

    assert "**on**" in await _dms(box, box.alice_id, results="on")
    _, second = await start_upscale(box, url="https://example.com/two.mp4")
    box.evolink.complete(second, RESULT + "?2")
    await wait_told(box, box.alice_id, RESULT + "?2")
    await watch.told(second)


async def test_one_members_choice_does_not_change_anothers(box: Sandbox, bot: UpscaleBot) -> None:
    watch = DeliveryWatch(bot)
    await _dms(box, box.alice_id, results="off")
    _, task_id = await start_upscale(box, user_id=box.bob_id, url="https://example.com/bob.mp4")
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.bob_id, RESULT)
    await watch.told(task_id)
    assert "**on**" in await _dms(box, box.bob_id)
