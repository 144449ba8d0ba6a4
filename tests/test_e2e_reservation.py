"""End to end: quota reservation is atomic with the row, and jobs that fail give their quota back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.config import LIMIT_NAMES
from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, embed_text, start_upscale, wait_told

pytestmark = pytest.mark.backends("sqlite", "postgres")

UNLIMITED = dict.fromkeys(LIMIT_NAMES)


async def _outcome(box: Sandbox, interaction: Any) -> str:
    """'card' when the task card was shown, else the private refusal text."""
    await interaction.wait_ack()
    return await box.discord.wait_for(
        lambda: "card" if "Upscale task-" in embed_text(interaction.original)
        else next((m["content"] for m in interaction.followups if m["flags"] & 64), None), timeout=20)


async def test_ten_concurrent_upscales_with_a_daily_limit_of_two_start_exactly_two(box: Sandbox,
                                                                                    bot_runner: Any) -> None:
    await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 2})
    interactions = await asyncio.gather(*(
        box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id, guild_id=box.guild_id,
                          options={"url": f"https://example.com/clip{i}.mp4"}) for i in range(10)))
    outcomes = await asyncio.gather(*(_outcome(box, i) for i in interactions))
    assert outcomes.count("card") == 2
    refusals = [o for o in outcomes if o != "card"]
    assert len(refusals) == 8
    assert all("2 job(s) for today" in r and "<t:" in r for r in refusals), refusals
    assert box.evolink.submissions() == 2
    assert len([r for r in box.evolink.requests if r.method == "POST"]) == 2


async def test_a_failed_task_gives_its_job_back(box: Sandbox, bot_runner: Any) -> None:
    bot = await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 1})
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/a.mp4")
    box.evolink.fail(task_id, "service_error")
    await wait_told(box, box.alice_id, "failed")
    await watch.told(task_id)
    usage = await bot.quotas.usage(int(box.guild_id), int(box.alice_id))
    assert usage.user_daily_jobs == 0 and usage.user_monthly_credits == 0
    await start_upscale(box, url="https://example.com/b.mp4")
    assert box.evolink.submissions() == 2


async def test_a_rejected_submission_gives_its_job_back(box: Sandbox, bot_runner: Any) -> None:
    bot = await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 1})
    box.evolink.inject("no_credits", on="submit")
    interaction = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options={"url": "https://example.com/a.mp4"})
    assert "out of credits" in await _outcome(box, interaction)
    usage = await bot.quotas.usage(int(box.guild_id), int(box.alice_id))
    assert usage.user_daily_jobs == 0 and usage.user_concurrent_jobs == 0
    await start_upscale(box, url="https://example.com/b.mp4")


async def test_completed_task_settles_credits_to_the_final_charge(box: Sandbox, bot_runner: Any) -> None:
    bot = await bot_runner.start(default_limits=UNLIMITED)
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/a.mp4")
    usage = await bot.quotas.usage(int(box.guild_id), int(box.alice_id))
    assert usage.user_monthly_credits == 28.8 and usage.user_concurrent_jobs == 1, "reserved at submission"
    box.evolink.complete(task_id, "https://cdn.evolink.ai/r.mp4", credits_used=12.5)
    await watch.told(task_id)
    usage = await bot.quotas.usage(int(box.guild_id), int(box.alice_id))
    assert usage.user_monthly_credits == 12.5 and usage.user_concurrent_jobs == 0
