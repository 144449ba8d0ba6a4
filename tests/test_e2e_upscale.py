"""End to end: the real bot (discord.py client) against the loopback fake Discord and fake Evolink."""

from __future__ import annotations

import pytest

from bot.client import UpscaleBot
from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, embed_text, mentions, start_upscale, wait_told

pytestmark = pytest.mark.backends("sqlite", "postgres")

RESULT = "https://cdn.evolink.ai/sample/topaz-upscaled-video.mp4"


async def test_attachment_upscale_ends_in_one_channel_post_and_one_dm(box: Sandbox, bot: UpscaleBot) -> None:
    watch = DeliveryWatch(bot)
    video = box.discord.make_attachment("holiday.mp4", size=12_000_000)
    interaction, task_id = await start_upscale(box, video=video, scale=4)

    assert interaction.ack["type"] == 5, "the bot defers first"
    assert interaction.ack_latency < 3
    submitted = box.evolink.tasks[task_id]
    assert submitted.video_url == video["url"]
    assert submitted.scale == "4"
    card = embed_text(interaction.original)
    for expected in (task_id, "Queued", "4×", "28.8", "holiday.mp4", "Estimated time"):
        assert expected in card, expected

    box.evolink.set_progress(task_id, 40)
    await box.discord.wait_for(lambda: "40%" in embed_text(interaction.original))

    box.evolink.complete(task_id, RESULT)
    post, dm = await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)
    assert "24 hours" in post["content"] and "24 hours" in dm["content"]
    assert "couldn't DM" not in post["content"]
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1
    assert len(box.discord.dm_messages(box.alice_id)) == 1
    assert "Completed" in embed_text(interaction.original)


async def test_url_upscale_with_default_scale_and_result_data_shape(box: Sandbox, bot: UpscaleBot) -> None:
    watch = DeliveryWatch(bot)
    link = "https://videos.example.com/a/clip.MP4?sig=abc&ex=1"
    interaction, task_id = await start_upscale(box, url=link)
    assert box.evolink.tasks[task_id].video_url == link
    assert box.evolink.tasks[task_id].scale == "2"
    assert "videos.example.com" in embed_text(interaction.original)

    box.evolink.complete(task_id, RESULT, shape="result_data")
    await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)


async def test_failed_task_is_told_once_in_words_a_member_understands(box: Sandbox, bot: UpscaleBot) -> None:
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/broken.mp4")
    box.evolink.fail(task_id, "video_probe_failed")
    post, dm = await wait_told(box, box.alice_id, "failed")
    await watch.told(task_id)
    for message in (post, dm):
        assert "could not read the video" in message["content"]
        assert "https://cdn" not in message["content"]
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1
    assert len(box.discord.dm_messages(box.alice_id)) == 1
    task = await bot.storage.get_task_by_upstream_id(task_id)
    assert task is not None and task.status == "failed" and task.notified_at is not None


@pytest.mark.parametrize(("end", "word"), [("cancel", "cancelled"), ("canceled", "cancelled"), ("expire", "expired")])
async def test_cancelled_and_expired_tasks_are_final_and_told(box: Sandbox, bot: UpscaleBot, end: str,
                                                               word: str) -> None:
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    if end == "expire":
        box.evolink.expire(task_id)
    else:
        box.evolink.cancel(task_id, spelling="canceled" if end == "canceled" else "cancelled")
    await wait_told(box, box.alice_id, word)
    await watch.told(task_id)
    task = await bot.storage.get_task_by_upstream_id(task_id)
    assert task is not None and task.status == word
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1


async def test_closed_dms_fall_back_to_the_channel_post(box: Sandbox, bot: UpscaleBot) -> None:
    watch = DeliveryWatch(bot)
    box.discord.set_dms_open(box.alice_id, False)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.evolink.complete(task_id, RESULT)
    await watch.told(task_id)
    [post] = mentions(box, box.channel_id, box.alice_id)
    assert RESULT in post["content"]
    assert "I couldn't DM you; enable DMs from server members to get them" in post["content"]
    assert box.discord.dm_messages(box.alice_id) == []


async def test_a_deleted_channel_leaves_the_dm_alone(box: Sandbox, bot: UpscaleBot) -> None:
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.discord.delete_channel(box.channel_id)
    box.evolink.complete(task_id, RESULT)
    await watch.told(task_id)
    [dm] = box.discord.dm_messages(box.alice_id)
    assert RESULT in dm["content"]
    task = await bot.storage.get_task_by_upstream_id(task_id)
    assert task is not None and task.channel_state == "gone" and task.dm_state == "sent"


async def test_upstream_faults_while_polling_still_end_in_exactly_one_delivery(box: Sandbox,
                                                                                bot: UpscaleBot) -> None:
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.evolink.inject("rate_limit", retry_after=0.3, task_id=task_id)
    box.evolink.inject("server_error", status=502, task_id=task_id, times=2)
    box.evolink.inject("timeout", task_id=task_id)
    box.evolink.inject("malformed_json", task_id=task_id)
    box.evolink.inject("html_error", task_id=task_id)
    box.evolink.inject("unknown_status", task_id=task_id, times=2)
    queries_before = box.evolink.queries(task_id)
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)
    assert box.evolink.queries(task_id) - queries_before >= 8, "every fault was met and survived"
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1
    assert len(box.discord.dm_messages(box.alice_id)) == 1


async def test_tasks_and_task_show_only_the_callers_jobs(box: Sandbox, bot: UpscaleBot) -> None:
    _, alice_task = await start_upscale(box, url="https://example.com/alice.mp4")
    _, bob_task = await start_upscale(box, user_id=box.bob_id, url="https://example.com/bob.mp4")

    listing = await box.discord.slash("tasks", user_id=box.bob_id, channel_id=box.channel_id,
                                      guild_id=box.guild_id)
    ack = await listing.wait_ack()
    assert ack["type"] == 4 and ack["data"]["flags"] & 64, "the list is private"
    text = embed_text(ack["data"])
    assert bob_task in text and alice_task not in text

    peek = await box.discord.slash("task", user_id=box.bob_id, channel_id=box.channel_id, guild_id=box.guild_id,
                                   options={"id": alice_task})
    ack = await peek.wait_ack()
    assert ack["data"]["flags"] & 64
    assert alice_task not in embed_text(ack["data"]) and "None of your jobs" in embed_text(ack["data"])

    own = await box.discord.slash("task", user_id=box.alice_id, channel_id=box.channel_id,
                                  guild_id=box.guild_id, options={"id": alice_task})
    assert alice_task in embed_text((await own.wait_ack())["data"])

    choices = await box.discord.autocomplete("task", user_id=box.alice_id, channel_id=box.channel_id,
                                             guild_id=box.guild_id, options={"id": "task"}, focused="id")
    assert [c["value"] for c in choices] == [alice_task]


async def test_tasks_with_no_jobs_says_how_to_start(box: Sandbox, bot: UpscaleBot) -> None:
    listing = await box.discord.slash("tasks", user_id=box.bob_id, channel_id=box.channel_id,
                                      guild_id=box.guild_id)
    ack = await listing.wait_ack()
    assert "/upscale" in ack["data"]["content"] and ack["data"]["flags"] & 64
