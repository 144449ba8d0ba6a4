"""The fake Discord's languages reach the real bot: a member's client language (`locale` in each interaction) and
the server's preferred locale (`guild_locale`, GUILD_CREATE, GUILD_UPDATE and GET /guilds/{id}), as discord.py
parses them in the real UpscaleBot. Waits are on events (discord.py's own or the fake's), never sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import discord
import pytest

from bot.client import UpscaleBot
from sandbox.fake_discord import FakeInteraction
from sandbox.offline import Sandbox
from tests.conftest import BotRunner

KOREAN, JAPANESE = discord.Locale.korean, discord.Locale.japanese
US, UK = discord.Locale.american_english, discord.Locale.british_english


async def parsed(bot: UpscaleBot, act: Callable[[], Awaitable[Any]]) -> tuple[discord.Interaction, Any]:
    """The discord.Interaction the bot built from the INTERACTION_CREATE that `act()` dispatches, and what act()
    returned. discord.py's wait_for registers at once, so the interaction cannot slip past it."""
    seen = bot.wait_for("interaction", timeout=5)
    try:
        sent = await act()
    except BaseException:
        seen.close()
        raise
    return await seen, sent


async def dms_seen(box: Sandbox, bot: UpscaleBot, user_id: str,
                   **kwargs: Any) -> tuple[discord.Interaction, FakeInteraction]:
    """Run the bot's real /dms as `user_id` in the sandbox channel: (the interaction as the bot saw it, as sent)."""
    async def act() -> FakeInteraction:
        return await box.discord.slash("dms", user_id=user_id, channel_id=box.channel_id, guild_id=box.guild_id,
                                       **kwargs)
    interaction, sent = await parsed(bot, act)
    assert interaction.id == int(sent.id)
    assert (await sent.wait_ack())["type"] == 4, "the bot answered"
    return interaction, sent


async def dms(box: Sandbox, bot: UpscaleBot, user_id: str, **kwargs: Any) -> discord.Interaction:
    return (await dms_seen(box, bot, user_id, **kwargs))[0]


async def test_member_locale_reaches_interaction_locale(box: Sandbox, bot: UpscaleBot) -> None:
    fake = box.discord
    first = await dms(box, bot, box.alice_id)
    assert (first.locale, first.guild_locale) == (US, US), "English until a member or server says otherwise"

    fake.set_user_locale(box.alice_id, "ko")
    korean = await dms(box, bot, box.alice_id)
    assert korean.locale == KOREAN and korean.guild_locale == US, "the member's language, not the server's"
    assert (await dms(box, bot, box.bob_id)).locale == US, "another member keeps their own language"

    switched = await dms(box, bot, box.alice_id, locale="ja")
    assert switched.locale == JAPANESE, "locale= overrides the member's language for one interaction"
    assert (await dms(box, bot, box.alice_id)).locale == KOREAN, "and only for that one"

    completing, choices = await parsed(bot, lambda: fake.autocomplete(
        "task", user_id=box.alice_id, channel_id=box.channel_id, guild_id=box.guild_id, options={"id": ""},
        focused="id"))
    assert completing.type == discord.InteractionType.autocomplete and choices == []
    assert completing.locale == KOREAN

    video = fake.make_attachment("clip.mp4")
    posted = fake.post_user_message(box.channel_id, box.alice_id, attachments=[video])
    menu, used = await parsed(bot, lambda: fake.message_command(
        "Upscale video", user_id=box.alice_id, channel_id=box.channel_id, guild_id=box.guild_id, message=posted,
        locale="en-GB"))
    assert menu.type == discord.InteractionType.application_command and menu.locale == UK
    await used.wait_ack()
    assert used.original is not None
    button = next(c["custom_id"] for row in used.original["components"] for c in row["components"])
    pressed, sent = await parsed(bot, lambda: fake.press_button(used.original, button, user_id=box.alice_id,
                                                                locale="ja"))
    assert pressed.type == discord.InteractionType.component and pressed.locale == JAPANESE
    assert sent.payload["locale"] == "ja" and sent.payload["guild_locale"] == "en-US"
    await sent.wait_ack()


async def test_server_locale_follows_guild_update(box: Sandbox, bot: UpscaleBot) -> None:
    fake = box.discord
    await bot.wait_until_ready()  # a GUILD_CREATE before on_ready is part of READY, not a join
    guild = bot.get_guild(int(box.guild_id))
    assert guild is not None and guild.preferred_locale == US
    members, channel = guild.member_count, guild.get_channel(int(box.channel_id))

    updated = bot.wait_for("guild_update", check=lambda before, after: after.id == guild.id, timeout=5)
    fake.set_guild_locale(box.guild_id, "ko")
    # The fake's wait sees bot-side state: the heartbeat it asks for after the GUILD_UPDATE wakes it in time (without
    # it, wait_for would only look again at its deadline, and pass late).
    loop = asyncio.get_running_loop()
    started = loop.time()
    await fake.wait_for(lambda: bot.get_guild(guild.id).preferred_locale == KOREAN,  # type: ignore[union-attr]
                        timeout=5, what="discord.py's guild.preferred_locale to become ko")
    assert loop.time() - started < 4, "woken when the bot had read the GUILD_UPDATE, not at the deadline"
    before, after = await updated
    assert before.preferred_locale == US and after is guild and guild.preferred_locale == KOREAN
    assert guild.member_count == members and guild.get_channel(int(box.channel_id)) is channel, \
        "a GUILD_UPDATE changes the guild, not its members or channels"

    seen, sent = await dms_seen(box, bot, box.alice_id)
    assert seen.guild_locale == KOREAN and seen.locale == US, "the server's locale, the member's own language"
    assert sent.payload["guild"]["locale"] == sent.payload["guild_locale"] == "ko"
    fetched = await bot.fetch_guild(int(box.guild_id))
    assert fetched.preferred_locale == KOREAN and fetched.approximate_member_count == members

    joined = bot.wait_for("guild_join", timeout=5)
    other = fake.add_guild("서버", locale="ja")
    new = await joined
    assert new.id == int(other) and new.preferred_locale == JAPANESE, "a guild joined later, with its own locale"


async def test_guild_create_at_ready_carries_the_locale(box: Sandbox, bot_runner: BotRunner) -> None:
    box.discord.set_guild_locale(box.guild_id, "ko")  # no bot connected: nothing dispatched, READY will tell
    bot = await bot_runner.start()
    await bot.wait_until_ready()
    guild = bot.get_guild(int(box.guild_id))
    assert guild is not None and guild.preferred_locale == KOREAN
    assert (await dms(box, bot, box.alice_id)).guild_locale == KOREAN


async def test_unknown_locales_are_refused(box: Sandbox, bot: UpscaleBot) -> None:
    fake = box.discord
    for bad in ("kr", "ko-KR", "en", "EN-US", ""):
        with pytest.raises(ValueError, match="not a Discord locale"):
            fake.set_user_locale(box.alice_id, bad)
        with pytest.raises(ValueError, match="not a Discord locale"):
            fake.set_guild_locale(box.guild_id, bad)
    with pytest.raises(ValueError, match="not a Discord locale"):
        fake.add_guild("nowhere", locale="english")
    with pytest.raises(ValueError, match="not a Discord locale"):
        await fake.slash("dms", user_id=box.alice_id, channel_id=box.channel_id, guild_id=box.guild_id,
                         locale="xx")
    assert not fake._interactions, "nothing was dispatched"
    after = await dms(box, bot, box.alice_id)  # read after every frame the refusals could have sent
    assert (after.locale, after.guild_locale) == (US, US), "a refused locale changes nothing"
    assert [g.id for g in bot.guilds] == [int(box.guild_id)], "a refused guild is not created"
