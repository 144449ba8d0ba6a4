"""The fake Discord's message context menus and message components, driven by the real discord.py client.

A member posts a message with attachments, runs a message command on it, and presses buttons or picks from a select
on the (ephemeral) reply; each callback type Discord allows for a component interaction (4, 5, 6, 7) lands where
Discord puts it. Waits are on events, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from sandbox.fake_discord import FakeDiscord, FakeInteraction
from sandbox.fake_discord_commands import check_callback
from sandbox.fake_discord_models import DiscordError

EPHEMERAL = 1 << 6


class Panel(discord.ui.View):
    """One button per way of answering a component interaction, and a select."""

    def __init__(self, calls: asyncio.Queue[tuple[str, Any]]) -> None:
        super().__init__(timeout=60)
        self.calls = calls

    @discord.ui.button(label="Update", custom_id="update", style=discord.ButtonStyle.primary)
    async def update(self, interaction: discord.Interaction, button: discord.ui.Button[Panel]) -> None:
        button.disabled = True
        await interaction.response.edit_message(content="updated", view=self)  # 7
        self.calls.put_nowait(("update", interaction))

    @discord.ui.button(label="Quiet", custom_id="quiet")
    async def quiet(self, interaction: discord.Interaction, button: discord.ui.Button[Panel]) -> None:
        await interaction.response.defer()  # 6
        await interaction.edit_original_response(content="edited after a deferred update")
        self.calls.put_nowait(("quiet", interaction))

    @discord.ui.button(label="Card", custom_id="card")
    async def card(self, interaction: discord.Interaction, button: discord.ui.Button[Panel]) -> None:
        await interaction.response.defer(thinking=True)  # 5: a new, public message
        message = await interaction.edit_original_response(content="task card")
        self.calls.put_nowait(("card", (interaction, message)))

    @discord.ui.button(label="Say", custom_id="say")
    async def say(self, interaction: discord.Interaction, button: discord.ui.Button[Panel]) -> None:
        await interaction.response.send_message(f"pressed by {interaction.user.id}", ephemeral=True)  # 4
        self.calls.put_nowait(("say", interaction))

    @discord.ui.select(custom_id="scale", options=[discord.SelectOption(label=f"{n}x", value=str(n))
                                                   for n in (1, 2, 4)])
    async def scale(self, interaction: discord.Interaction, select: discord.ui.Select[Panel]) -> None:
        await interaction.response.send_message(f"scale {select.values[0]}", ephemeral=True)
        self.calls.put_nowait(("scale", select.values))


class MenuBot(commands.Bot):
    def __init__(self, guild_id: str) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.none(),
                         guild_ready_timeout=0.1)
        self.test_guild = discord.Object(int(guild_id))
        self.calls: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def setup_hook(self) -> None:
        @app_commands.context_menu(name="Inspect clip")
        async def inspect(interaction: discord.Interaction, message: discord.Message) -> None:
            self.calls.put_nowait(("inspect", message))
            await interaction.response.send_message(f"{len(message.attachments)} attachment(s)", view=Panel(self.calls),
                                                    ephemeral=True)

        self.tree.add_command(inspect, guild=self.test_guild)
        self.tree.add_command(inspect)  # the global copy answers in DMs
        await self.tree.sync(guild=self.test_guild)
        await self.tree.sync()


@dataclass
class World:
    guild_id: str
    channel_id: str
    alice: str
    bob: str


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as running:
        yield running


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild_id = fake.add_guild()
    channel_id = fake.add_channel(guild_id)
    return World(guild_id, channel_id, fake.add_member(guild_id, "alice"), fake.add_member(guild_id, "bob"))


@pytest.fixture
async def bot(fake: FakeDiscord, world: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MenuBot]:
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    bot = MenuBot(world.guild_id)
    task = asyncio.create_task(bot.start(fake.bot_token))
    try:
        await fake.wait_ready()
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, 5)


async def next_call(bot: MenuBot, name: str) -> Any:
    got, value = await asyncio.wait_for(bot.calls.get(), 5)
    assert got == name
    return value


async def menu_on_clip(fake: FakeDiscord, world: World, bot: MenuBot) -> tuple[FakeInteraction, dict[str, Any]]:
    """alice posts clip.mp4 and runs "Inspect clip" on it; returns the interaction and its ephemeral reply."""
    posted = fake.post_user_message(world.channel_id, world.alice, "look",
                                    attachments=[fake.make_attachment("clip.mp4", size=1234)])
    inter = await fake.message_command("Inspect clip", user_id=world.alice, channel_id=world.channel_id,
                                       guild_id=world.guild_id, message=posted)
    await inter.wait_ack()
    await next_call(bot, "inspect")
    assert inter.original is not None
    return inter, inter.original


async def test_a_message_command_is_synced_and_receives_the_message_with_its_attachments(
        fake: FakeDiscord, world: World, bot: MenuBot) -> None:
    [synced] = fake.commands[world.guild_id]
    assert (synced["name"], synced["type"], synced["description"]) == ("Inspect clip", 3, "")
    posted = fake.post_user_message(world.channel_id, world.alice, "look",
                                    attachments=[fake.make_attachment("clip.mp4", size=1234)])
    assert [m["id"] for m in fake.channel_messages(world.channel_id)] == [posted["id"]]
    inter = await fake.message_command("Inspect clip", user_id=world.alice, channel_id=world.channel_id,
                                       guild_id=world.guild_id, message=posted)
    data = inter.payload["data"]
    assert (data["type"], data["target_id"]) == (3, posted["id"])
    message: discord.Message = await next_call(bot, "inspect")
    assert message.id == int(posted["id"]) and message.author.id == int(world.alice)
    assert [(a.filename, a.size) for a in message.attachments] == [("clip.mp4", 1234)]
    ack = await inter.wait_ack()
    assert ack["type"] == 4 and ack["data"]["flags"] & EPHEMERAL
    reply = inter.original
    assert reply is not None and reply["type"] == 23, "a context menu command's response"
    assert reply["interaction_metadata"]["target_message_id"] == posted["id"]
    assert [c["custom_id"] for row in reply["components"] for c in row["components"]] == [
        "update", "quiet", "card", "say", "scale"]
    assert reply["id"] not in [m["id"] for m in fake.channel_messages(world.channel_id)], "ephemeral"


async def test_what_discord_s_client_cannot_send_is_refused(fake: FakeDiscord, world: World, bot: MenuBot) -> None:
    elsewhere = fake.add_channel(world.guild_id, "other")
    posted = fake.post_user_message(elsewhere, world.alice, "hi")
    with pytest.raises(AssertionError, match="where it is used"):
        await fake.message_command("Inspect clip", user_id=world.alice, channel_id=world.channel_id,
                                   guild_id=world.guild_id, message=posted)
    with pytest.raises(AssertionError, match="not synced"):
        await fake.message_command("Nope", user_id=world.alice, channel_id=elsewhere, guild_id=world.guild_id,
                                   message=posted)
    with pytest.raises(AssertionError, match="empty"):
        fake.post_user_message(world.channel_id, world.alice)
    _, reply = await menu_on_clip(fake, world, bot)
    with pytest.raises(AssertionError, match="ephemeral"):
        await fake.message_command("Inspect clip", user_id=world.alice, channel_id=world.channel_id,
                                   guild_id=world.guild_id, message=reply)
    with pytest.raises(AssertionError, match="no component"):
        await fake.press_button(reply, "missing", user_id=world.alice)
    with pytest.raises(AssertionError, match="only user"):
        await fake.press_button(reply, "say", user_id=world.bob)
    with pytest.raises(AssertionError, match="cannot pick"):
        await fake.select(reply, "scale", ["3"], user_id=world.alice)


async def test_update_message_edits_the_ephemeral_reply_and_disabled_buttons_cannot_be_pressed(
        fake: FakeDiscord, world: World, bot: MenuBot) -> None:
    _, reply = await menu_on_clip(fake, world, bot)
    press = await fake.press_button(reply, "update", user_id=world.alice)
    assert press.payload["type"] == 3 and press.payload["message"]["id"] == reply["id"]
    assert (await press.wait_ack())["type"] == 7
    await next_call(bot, "update")
    assert press.original is reply and reply["content"] == "updated" and reply["flags"] & EPHEMERAL
    assert reply["components"][0]["components"][0]["disabled"] is True
    with pytest.raises(AssertionError, match="disabled"):
        await fake.press_button(reply, "update", user_id=world.alice)


async def test_deferred_update_then_edit_original_edits_the_component_message(
        fake: FakeDiscord, world: World, bot: MenuBot) -> None:
    _, reply = await menu_on_clip(fake, world, bot)
    press = await fake.press_button(reply, "quiet", user_id=world.alice)
    assert (await press.wait_ack())["type"] == 6
    await next_call(bot, "quiet")
    assert press.original is reply and reply["content"] == "edited after a deferred update"


async def test_a_thinking_defer_makes_a_public_message_editable_with_the_bot_token(
        fake: FakeDiscord, world: World, bot: MenuBot) -> None:
    """A button on an ephemeral message may answer with a new public message (type 5 without the flag)."""
    _, reply = await menu_on_clip(fake, world, bot)
    press = await fake.press_button(reply, "card", user_id=world.alice)
    assert (await press.wait_ack())["type"] == 5
    _interaction, message = await next_call(bot, "card")
    card = press.original
    assert card is not None and card is not reply and card["content"] == "task card" and not card["flags"]
    assert card["interaction_metadata"]["interacted_message_id"] == reply["id"]
    assert card["id"] in [m["id"] for m in fake.channel_messages(world.channel_id)]
    fake.advance(fake.token_ttl + 1)
    channel = bot.get_channel(int(world.channel_id))
    assert isinstance(channel, discord.TextChannel)
    await channel.get_partial_message(message.id).edit(content="task card: done")
    assert card["content"] == "task card: done"


async def test_a_channel_message_reply_and_a_select(fake: FakeDiscord, world: World, bot: MenuBot) -> None:
    _, reply = await menu_on_clip(fake, world, bot)
    press = await fake.press_button(reply, "say", user_id=world.alice)
    ack = await press.wait_ack()
    assert ack["type"] == 4 and ack["data"]["content"] == f"pressed by {world.alice}"
    await next_call(bot, "say")
    picked = await fake.select(reply, "scale", ["4"], user_id=world.alice)
    assert picked.payload["data"] == {"custom_id": "scale", "component_type": 3, "values": ["4"]}
    assert await next_call(bot, "scale") == ["4"]


async def test_strict_false_lets_someone_else_press_an_ephemeral_button(fake: FakeDiscord, world: World,
                                                                       bot: MenuBot) -> None:
    _, reply = await menu_on_clip(fake, world, bot)
    press = await fake.press_button(reply, "say", user_id=world.bob, strict=False)
    assert (await press.wait_ack())["data"]["content"] == f"pressed by {world.bob}"


async def test_a_member_s_message_cannot_be_edited_by_the_bot(fake: FakeDiscord, world: World, bot: MenuBot) -> None:
    posted = fake.post_user_message(world.channel_id, world.alice, "mine")
    channel = bot.get_channel(int(world.channel_id))
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.Forbidden) as refused:
        await channel.get_partial_message(int(posted["id"])).edit(content="theirs")
    assert refused.value.code == 50005


async def test_a_message_command_in_a_dm_uses_the_global_command(fake: FakeDiscord, world: World,
                                                                  bot: MenuBot) -> None:
    dm = fake.dm_channel_id(world.alice)
    posted = fake.post_user_message(dm, world.alice, attachments=[fake.make_attachment("dm.mp4")])
    inter = await fake.message_command("Inspect clip", user_id=world.alice, channel_id=dm, message=posted)
    assert "guild_id" not in inter.payload["data"] and inter.channel_id == dm
    message: discord.Message = await next_call(bot, "inspect")
    assert [a.filename for a in message.attachments] == ["dm.mp4"]
    assert (await inter.wait_ack())["data"]["flags"] & EPHEMERAL


@pytest.mark.parametrize(("interaction_type", "callback", "allowed"), [
    (3, 4, True), (3, 5, True), (3, 6, True), (3, 7, True), (3, 8, False), (2, 6, False), (2, 7, False)])
def test_callback_types_follow_the_interaction_type(interaction_type: int, callback: int, allowed: bool) -> None:
    """Deferred update (6) and update message (7) exist only for components (and modals); commands cannot use them."""
    body = {"type": callback, "data": {"content": "x"} if callback in (4, 7) else None}
    if allowed:
        check_callback(body, interaction_type=interaction_type)
        return
    with pytest.raises(DiscordError) as refused:
        check_callback(body, interaction_type=interaction_type)
    assert refused.value.code == 50035
