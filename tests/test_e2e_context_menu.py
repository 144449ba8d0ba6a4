"""End to end: the "Upscale video" message context menu, through the real bot, the fake Discord and the fake Evolink.

A member posts a message with an .mp4, uses the menu on it, sees the scale buttons privately and presses one; the job
then runs exactly as /upscale's: the same checks and words, the same quota, one paid POST, the same task card, and
the result delivered once by the unchanged notifier.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.client import UpscaleBot
from bot.config import LIMIT_NAMES
from sandbox.fake_discord import FakeInteraction
from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, embed_text, mentions, wait_told

pytestmark = pytest.mark.backends("sqlite", "postgres")

MENU = "Upscale video"
EPHEMERAL = 1 << 6
PRIMARY, SECONDARY, SUCCESS = 1, 2, 3
UNLIMITED: dict[str, int | None] = dict.fromkeys(LIMIT_NAMES)
RESULT = "https://cdn.evolink.ai/sample/context-menu-result.mp4"


def posts(box: Sandbox) -> int:
    """Paid submissions that reached the fake Evolink."""
    return len([r for r in box.evolink.requests if r.method == "POST"])


def scale_id(scale: int) -> str:
    return f"upscale-scale:{scale}"


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by label."""
    return {c["label"]: c for row in message["components"] for c in row["components"]}


def share(box: Sandbox, *attachments: dict[str, Any], author: str | None = None, content: str = "") -> dict[str, Any]:
    """A member posts a message in the sandbox channel."""
    return box.discord.post_user_message(box.channel_id, author or box.alice_id, content, attachments=list(attachments))


async def use_menu(box: Sandbox, message: dict[str, Any], user_id: str | None = None, *,
                   guild_id: str | None = "sandbox", channel_id: str | None = None) -> FakeInteraction:
    """Use the menu on `message`; wait for the bot's (immediate) answer."""
    interaction = await box.discord.message_command(
        MENU, user_id=user_id or box.alice_id, channel_id=channel_id or box.channel_id, message=message,
        guild_id=box.guild_id if guild_id == "sandbox" else guild_id)
    ack = await interaction.wait_ack()
    assert ack["type"] == 4 and ack["data"]["flags"] & EPHEMERAL, "the menu answers at once, privately"
    return interaction


async def prompt_for(box: Sandbox, message: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Use the menu and return its private prompt (the live message: it follows the bot's edits)."""
    interaction = await use_menu(box, message, **kwargs)
    assert interaction.original is not None and buttons(interaction.original), "the prompt has the scale buttons"
    return interaction.original


async def press(box: Sandbox, prompt: dict[str, Any], scale: int, user_id: str | None = None,
                **kwargs: Any) -> FakeInteraction:
    interaction = await box.discord.press_button(prompt, scale_id(scale), user_id=user_id or box.alice_id, **kwargs)
    await interaction.wait_ack()
    return interaction


async def card_of(box: Sandbox, pressed: FakeInteraction) -> tuple[str, dict[str, Any]]:
    """Wait for the job a press started: (upstream task id, the task card)."""
    task_id = await box.discord.wait_for(lambda: next(iter(box.evolink.tasks), None))
    await box.discord.wait_for(lambda: task_id in embed_text(pressed.original))
    assert pressed.original is not None
    return task_id, pressed.original


async def refusal(box: Sandbox, pressed: FakeInteraction) -> str:
    """The private reason a press got after its public 'thinking' reply (as /upscale's refusals)."""
    reply = await box.discord.wait_for(lambda: next((m for m in pressed.followups if m["flags"] & EPHEMERAL), None))
    assert pressed.original is None, "the public 'thinking' reply was removed"
    return reply["content"]


async def test_the_menu_is_synced_as_a_message_command(box: Sandbox, bot: UpscaleBot) -> None:
    [menu] = [c for c in box.discord.commands[box.guild_id] if c["type"] == 3]
    assert (menu["name"], menu["description"]) == (MENU, "")
    assert {"upscale", "tasks", "task"} <= {c["name"] for c in box.discord.commands[box.guild_id] if c["type"] == 1}


async def test_scale_buttons_then_4x_runs_the_job_to_one_delivery(box: Sandbox, bot: UpscaleBot) -> None:
    watch = DeliveryWatch(bot)
    video = box.discord.make_attachment("holiday.mp4", size=12_000_000)
    prompt = await prompt_for(box, share(box, video, content="look at this"))
    assert "holiday.mp4" in prompt["content"] and prompt["id"] not in {
        m["id"] for m in box.discord.channel_messages(box.channel_id)}, "the prompt is private"
    shown = buttons(prompt)
    assert list(shown) == ["1×", "2×", "4×"]
    assert [shown[label]["style"] for label in shown] == [SECONDARY, PRIMARY, SECONDARY], "2× is highlighted"
    assert posts(box) == 0 and await bot.storage.user_tasks(int(box.alice_id), 10) == [], "nothing before a press"

    pressed = await press(box, prompt, 4)
    assert pressed.ack["type"] == 5 and pressed.ack_latency < 3, "acknowledged at once, as /upscale"
    task_id, card = await card_of(box, pressed)
    submitted = box.evolink.tasks[task_id]
    assert (submitted.video_url, submitted.scale) == (video["url"], "4") and posts(box) == 1
    assert not card["flags"] & EPHEMERAL, "the card is public, as /upscale's"
    assert card["id"] in {m["id"] for m in box.discord.channel_messages(box.channel_id)}
    for expected in (task_id, "Queued", "4×", "holiday.mp4"):
        assert expected in embed_text(card), expected
    await box.discord.wait_for(lambda: "Started at **4×**" in prompt["content"])
    assert all(b["disabled"] for b in buttons(prompt).values()) and buttons(prompt)["4×"]["style"] == SUCCESS

    box.evolink.set_progress(task_id, 40)
    await box.discord.wait_for(lambda: "40%" in embed_text(card))
    assert box.discord.find_requests("PATCH", rf"/webhooks/\d+/{pressed.token}/messages/@original"), \
        "the card is edited through the press's interaction while its token is fresh"
    box.evolink.complete(task_id, RESULT)
    post, dm = await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)
    assert "24 hours" in post["content"] and "24 hours" in dm["content"]
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1 and len(box.discord.dm_messages(box.alice_id)) == 1
    await box.discord.wait_for(lambda: "Completed" in embed_text(card))
    assert posts(box) == 1


async def test_the_card_is_edited_with_the_bot_token_once_the_interaction_is_old(box: Sandbox,
                                                                                  bot_runner: Any) -> None:
    """Why the card is public: an ephemeral card could not be edited with the bot token."""
    bot = await bot_runner.start(interaction_edit_window_seconds=0.001)
    watch = DeliveryWatch(bot)
    prompt = await prompt_for(box, share(box, box.discord.make_attachment("clip.mp4")))
    pressed = await press(box, prompt, 2)
    task_id, card = await card_of(box, pressed)
    box.evolink.complete(task_id, RESULT)
    await watch.told(task_id)
    await box.discord.wait_for(lambda: "Completed" in embed_text(card))
    assert box.discord.find_requests("PATCH", rf"/channels/{box.channel_id}/messages/{card['id']}$")


async def test_a_daily_limit_of_one_counts_menu_and_upscale_alike(box: Sandbox, bot_runner: Any) -> None:
    await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 1})
    first = await press(box, await prompt_for(box, share(box, box.discord.make_attachment("one.mp4"))), 2)
    await card_of(box, first)

    prompt = await prompt_for(box, share(box, box.discord.make_attachment("two.mp4")))
    assert "1 job(s) for today" in await refusal(box, await press(box, prompt, 2))
    await box.discord.wait_for(lambda: "Not started" in prompt["content"])

    slash = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id, guild_id=box.guild_id,
                                    options={"url": "https://example.com/three.mp4"})
    assert "1 job(s) for today" in await refusal(box, slash)
    assert posts(box) == 1


async def test_a_job_started_by_upscale_counts_against_the_menu(box: Sandbox, bot_runner: Any) -> None:
    await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 1})
    slash = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id, guild_id=box.guild_id,
                                    options={"url": "https://example.com/one.mp4"})
    await card_of(box, slash)
    prompt = await prompt_for(box, share(box, box.discord.make_attachment("two.mp4")))
    assert "1 job(s) for today" in await refusal(box, await press(box, prompt, 4))
    assert posts(box) == 1


REFUSED = [
    # (attachments as make_attachment keyword arguments, words the private reply must contain)
    ([], "no attachment"),
    ([{"filename": "photo.png", "content_type": "image/png"}], "Only .mp4 videos are supported"),
    ([{"filename": "huge.mp4", "size": 50_000_001}], "too big"),
    ([{"filename": "fake.mp4", "content_type": "image/png"}], "doesn't look like a video"),
    ([{"filename": "a.mp4", "size": 50_000_001}, {"filename": "b.mp4", "size": 0}], "None of the 2 .mp4 files"),
]


@pytest.mark.parametrize(("attachments", "words"), REFUSED, ids=["none", "png", "oversized", "not-video", "two-bad"])
async def test_a_message_without_a_usable_mp4_is_refused_privately(box: Sandbox, bot: UpscaleBot,
                                                                   attachments: list[dict[str, Any]],
                                                                   words: str) -> None:
    message = share(box, *[box.discord.make_attachment(**a) for a in attachments], content="hello")
    interaction = await use_menu(box, message)
    assert words in interaction.ack["data"]["content"]
    assert not interaction.ack["data"].get("components"), "no buttons"
    assert posts(box) == 0 and await bot.storage.user_tasks(int(box.alice_id), 10) == []


async def test_with_several_attachments_the_first_usable_mp4_is_used_and_named(box: Sandbox, bot: UpscaleBot) -> None:
    notes = box.discord.make_attachment("notes.txt", content_type="text/plain")
    big = box.discord.make_attachment("big.mp4", size=60_000_000)
    good = box.discord.make_attachment("good.mp4")
    prompt = await prompt_for(box, share(box, notes, big, good))
    assert "good.mp4" in prompt["content"] and "first usable one of 2 .mp4 files" in prompt["content"]
    task_id, _ = await card_of(box, await press(box, prompt, 1))
    assert (box.evolink.tasks[task_id].video_url, box.evolink.tasks[task_id].scale) == (good["url"], "1")


async def test_someone_else_pressing_the_buttons_is_refused_privately(box: Sandbox, bot: UpscaleBot) -> None:
    prompt = await prompt_for(box, share(box, box.discord.make_attachment("clip.mp4")))
    stranger = await press(box, prompt, 4, user_id=box.bob_id, strict=False)  # Discord itself would not show it
    assert stranger.ack["type"] == 4 and stranger.ack["data"]["flags"] & EPHEMERAL
    assert "aren't yours" in stranger.ack["data"]["content"]
    assert posts(box) == 0 and not any(b["disabled"] for b in buttons(prompt).values())
    task_id, _ = await card_of(box, await press(box, prompt, 2))  # the member's own press still works
    assert box.evolink.tasks[task_id].scale == "2" and posts(box) == 1


async def test_a_double_press_starts_one_job(box: Sandbox, bot: UpscaleBot) -> None:
    prompt = await prompt_for(box, share(box, box.discord.make_attachment("clip.mp4")))
    # Both presses reach the bot before it disabled anything (a double click).
    first = await box.discord.press_button(prompt, scale_id(2), user_id=box.alice_id)
    second = await box.discord.press_button(prompt, scale_id(4), user_id=box.alice_id)
    await first.wait_ack()
    again = await second.wait_ack()
    assert again["type"] == 4 and again["data"]["flags"] & EPHEMERAL and "already" in again["data"]["content"]
    task_id, _ = await card_of(box, first)
    await box.discord.wait_for(lambda: "Started" in prompt["content"])
    with pytest.raises(AssertionError, match="disabled"):
        await box.discord.press_button(prompt, scale_id(4), user_id=box.alice_id)
    assert posts(box) == 1 and len(await bot.storage.user_tasks(int(box.alice_id), 10)) == 1
    assert box.evolink.tasks[task_id].scale == "2"


async def test_the_buttons_expire(box: Sandbox, bot: UpscaleBot) -> None:
    bot.get_cog("ContextMenuCog").prompt_seconds = 0.2  # type: ignore[union-attr]
    prompt = await prompt_for(box, share(box, box.discord.make_attachment("clip.mp4")))
    await box.discord.wait_for(lambda: "expired" in prompt["content"])
    assert all(b["disabled"] for b in buttons(prompt).values())
    assert posts(box) == 0


async def dm_menu(box: Sandbox) -> FakeInteraction:
    dm = box.discord.dm_channel_id(box.alice_id)
    message = box.discord.post_user_message(dm, box.alice_id, attachments=[box.discord.make_attachment("dm.mp4")])
    return await use_menu(box, message, guild_id=None, channel_id=dm)


async def test_in_a_dm_the_menu_is_refused_by_default(box: Sandbox, bot_runner: Any) -> None:
    await bot_runner.start(discord_guild_ids=())
    interaction = await dm_menu(box)
    assert "Upscale video works in servers" in interaction.ack["data"]["content"]
    assert posts(box) == 0


async def test_in_a_dm_the_menu_works_when_allowed(box: Sandbox, bot_runner: Any) -> None:
    await bot_runner.start(discord_guild_ids=(), allow_dm_upscale=True, default_limits=UNLIMITED)
    interaction = await dm_menu(box)
    assert interaction.original is not None
    pressed = await press(box, interaction.original, 2)
    _, card = await card_of(box, pressed)
    assert card["channel_id"] == box.discord.dm_channel_id(box.alice_id) and posts(box) == 1
