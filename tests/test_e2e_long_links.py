"""End to end: long result links reach the member whole (posts, DMs, the card, /task, /tasks), a link
Discord cannot show is explained, and a refused post falls back to a minimal one.

The fake Discord refuses what Discord refuses (content over 2,000 characters, embed limits), so before this
was handled a 1,990-character link made the post and the DM fail with 400 50035 and the member got nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.client import UpscaleBot
from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, embed_text, mentions, start_upscale, upscale_to_the_end

HEAD = "https://cdn.evolink.ai/results/upscaled.mp4?X-Amz-Credential=abc&X-Amz-Signature="


def _link(length: int) -> str:
    return HEAD + "f" * (length - len(HEAD))


def _whole_in(url: str, message: dict[str, Any]) -> bool:
    """The link stands whole on a line of its own (so Discord makes it clickable) in the text or an embed."""
    return url in embed_text(message).splitlines()


async def _slash_reply(box: Sandbox, name: str, **options: Any) -> dict[str, Any]:
    interaction = await box.discord.slash(name, user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options=options)
    ack = await interaction.wait_ack()
    assert ack["type"] == 4 and ack["data"]["flags"] & 64, ack
    return ack["data"]


@pytest.mark.parametrize("length", [1200, 1990, 2000])
async def test_a_long_link_reaches_the_member_whole_everywhere(box: Sandbox, bot: UpscaleBot, length: int) -> None:
    url = _link(length)
    interaction, task_id, post, dm = await upscale_to_the_end(box, bot, url)
    assert _whole_in(url, post) and _whole_in(url, dm)
    refused = [r for r in box.discord.requests if r.status == 400]
    assert refused == [], f"Discord refused: {[(r.path, r.json) for r in refused][:2]}"
    await box.discord.wait_for(lambda: "Completed" in embed_text(interaction.original))
    assert url in embed_text(interaction.original), "the final card shows the link"

    assert url in embed_text(await _slash_reply(box, "task", id=task_id))
    listing = embed_text(await _slash_reply(box, "tasks"))
    assert url in listing or f"/task id:#{(await bot.storage.get_task_by_upstream_id(task_id)).id}" in listing


async def test_tasks_lists_every_job_when_all_have_long_links(box: Sandbox, bot: UpscaleBot) -> None:
    await bot.quotas.set_limit(int(box.guild_id), 1, "user_concurrent_jobs", None)
    await bot.quotas.set_limit(int(box.guild_id), 1, "user_daily_jobs", None)
    await bot.quotas.set_limit(int(box.guild_id), 1, "user_monthly_credits", None)
    watch = DeliveryWatch(bot)
    ids = []
    for n in range(4):
        _, task_id = await start_upscale(box, url=f"https://example.com/clip{n}.mp4")
        box.evolink.complete(task_id, _link(1700))
        await watch.told(task_id)
        ids.append(task_id)
    listing = embed_text(await _slash_reply(box, "tasks"))
    assert all(task_id in listing for task_id in ids)
    assert listing.count(HEAD) == 2, "links while they fit in 4,096 characters, /task for the others"


async def test_a_link_too_long_for_discord_is_explained_and_logged(box: Sandbox, bot: UpscaleBot,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    watch = DeliveryWatch(bot)
    url = _link(2600)
    interaction, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    with caplog.at_level(logging.WARNING, logger="bot.notifier"):
        box.evolink.complete(task_id, url)
        await watch.told(task_id)
    [post] = mentions(box, box.channel_id, box.alice_id)
    [dm] = box.discord.dm_messages(box.alice_id)
    for message in (post, dm):
        assert "2,600 characters" in message["content"] and "operator" in message["content"]
    await box.discord.wait_for(lambda: "Completed" in embed_text(interaction.original))
    assert "operator" in embed_text(interaction.original)
    record = await bot.storage.get_task_by_upstream_id(task_id)
    assert record is not None and record.result_url == url, "the link is kept for the operator"
    assert any("2600 characters" in r.getMessage() and str(record.id) in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("target", ["channel", "dm"])
async def test_a_refused_post_falls_back_to_a_minimal_message(box: Sandbox, bot: UpscaleBot, target: str) -> None:
    watch = DeliveryWatch(bot)
    url = "https://cdn.evolink.ai/results/short.mp4"
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    channel = box.channel_id if target == "channel" else box.discord.dm_channel_id(box.alice_id)
    box.discord.inject("POST", rf"^/channels/{channel}/messages$", 400, code=50035, message="Invalid Form Body")
    box.evolink.complete(task_id, url)
    await watch.told(task_id)
    record = await bot.storage.get_task_by_upstream_id(task_id)
    assert record is not None
    messages = mentions(box, channel, box.alice_id) if target == "channel" else box.discord.dm_messages(box.alice_id)
    [message] = messages
    assert f"your upscale #{record.id} is ready:\n{url}" in message["content"]
    assert (record.dm_state, record.channel_state) == ("sent", "sent")
    attempts = [r for r in box.discord.requests if r.method == "POST" and r.path == f"/channels/{channel}/messages"]
    assert [r.status for r in attempts] == [400, 200]
    assert attempts[0].json["nonce"] != attempts[1].json["nonce"], "the fallback is a message of its own"


async def test_upstream_ids_near_200_characters_fit_the_card_the_posts_and_autocomplete(bot_runner: Any,
                                                                                      box: Sandbox) -> None:
    box.evolink.task_id_prefix = "task-" + "x" * 170  # ids of 195 characters (the bot accepts up to 200)
    bot = await bot_runner.start()
    watch = DeliveryWatch(bot)
    interaction, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    assert len(task_id) > 190
    box.evolink.complete(task_id, _link(1990))
    await watch.told(task_id)
    assert [r for r in box.discord.requests if r.status == 400] == []
    await box.discord.wait_for(lambda: "Completed" in embed_text(interaction.original))
    choices = await box.discord.autocomplete("task", user_id=box.alice_id, channel_id=box.channel_id,
                                             guild_id=box.guild_id, options={"id": ""}, focused="id")
    record = await bot.storage.get_task_by_upstream_id(task_id)
    assert record is not None
    assert [c["value"] for c in choices] == [f"#{record.id}"], "our own number stands in for a long id"
    assert all(len(c["name"]) <= 100 for c in choices)
    shown = await _slash_reply(box, "task", id=choices[0]["value"])
    assert task_id in embed_text(shown)


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for row in message.get("components") or [] for item in row.get("components") or []]


@pytest.mark.parametrize(("length", "button"), [(80, True), (512, True), (513, False), (1990, False)])
async def test_the_result_post_keeps_the_link_in_the_text_and_adds_a_button_when_it_fits(
        box: Sandbox, bot: UpscaleBot, length: int, button: bool) -> None:
    url = _link(length)
    _, _, post, dm = await upscale_to_the_end(box, bot, url)
    for message in (post, dm):
        assert _whole_in(url, message), "the link itself stays in the message (Discord's player preview)"
        expected = [{"type": 2, "style": 5, "label": "Download", "url": url}] if button else []
        assert [{k: b.get(k) for k in ("type", "style", "label", "url")} for b in _buttons(message)] == expected
