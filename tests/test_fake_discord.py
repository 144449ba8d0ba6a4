"""The real discord.py client (a commands.Bot with app commands) works against sandbox.fake_discord.

Everything runs in one event loop over 127.0.0.1 sockets; waits are on events, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from sandbox.fake_discord import FakeDiscord, FakeInteraction
from tests.helpers import start_client

MANAGE_GUILD = 1 << 5


class FakeTestBot(commands.Bot):
    """A tiny bot whose commands exercise each interaction path the project uses."""

    def __init__(self, guild_id: str) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(),
                         guild_ready_timeout=0.1)
        self.test_guild = discord.Object(int(guild_id))
        self.calls: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.errors: asyncio.Queue[BaseException] = asyncio.Queue()
        self.gate = asyncio.Event()
        self.slow_started = asyncio.Event()

    async def setup_hook(self) -> None:
        @app_commands.command(description="Echo text after deferring")
        async def echo(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.defer()
            await interaction.edit_original_response(content=text)
            self.calls.put_nowait(("echo", interaction))

        @app_commands.command(description="Defer, then post a task card and a private note as followups")
        async def card(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            shown = await interaction.followup.send("task card", wait=True)
            note = await interaction.followup.send("only you see this", ephemeral=True, wait=True)
            self.calls.put_nowait(("card", (interaction, shown, note)))

        @app_commands.command(description="Receive a clip")
        async def clip(interaction: discord.Interaction, video: discord.Attachment) -> None:
            self.calls.put_nowait(("clip", video))
            await interaction.response.send_message(f"got {video.filename}", ephemeral=True)

        @app_commands.command(description="Defer and hand the interaction to the test")
        async def hold(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            self.calls.put_nowait(("hold", interaction))

        @app_commands.command(description="Acknowledge only when the test says so")
        async def slow(interaction: discord.Interaction) -> None:
            self.slow_started.set()
            await self.gate.wait()
            await interaction.response.defer()

        quota = app_commands.Group(name="quota", description="Quota admin",
                                   default_permissions=discord.Permissions(manage_guild=True))

        @quota.command(name="set", description="Set a member's limit")
        async def quota_set(interaction: discord.Interaction, member: discord.Member, limit: int,
                            preset: str | None = None) -> None:
            self.calls.put_nowait(("quota set", (member, limit, preset, interaction.permissions)))
            await interaction.response.send_message(f"{member.name}: {limit}", ephemeral=True)

        @quota_set.autocomplete("preset")
        async def preset_choices(interaction: discord.Interaction,
                                 current: str) -> list[app_commands.Choice[str]]:
            presets = ("daily", "monthly")
            return [app_commands.Choice(name=p, value=p) for p in presets if p.startswith(current)]

        admin = app_commands.Group(name="admin", description="Admin")
        admin_quota = app_commands.Group(name="quota", description="Quota", parent=admin)

        @admin_quota.command(name="show", description="Show a role's quota")
        async def admin_quota_show(interaction: discord.Interaction, role: discord.Role) -> None:
            self.calls.put_nowait(("admin quota show", role))
            await interaction.response.send_message(role.name)

        @app_commands.command(description="Pick a scale")
        @app_commands.choices(scale=[app_commands.Choice(name=f"{n}x", value=n) for n in (1, 2, 4)])
        async def pick(interaction: discord.Interaction, scale: int) -> None:
            self.calls.put_nowait(("pick", scale))
            await interaction.response.send_message(f"{scale}x", ephemeral=True)

        @app_commands.command(description="Global ping, usable in DMs")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("pong")

        @self.tree.error
        async def on_tree_error(interaction: discord.Interaction,
                                error: app_commands.AppCommandError) -> None:
            self.errors.put_nowait(error)

        for command in (echo, card, clip, hold, slow, pick, quota, admin):
            self.tree.add_command(command, guild=self.test_guild)
        self.tree.add_command(ping)
        await self.tree.sync(guild=self.test_guild)
        await self.tree.sync()


@dataclass
class World:
    guild_id: str
    channel_id: str
    alice: str
    bob: str  # DMs closed
    mods: str  # a role with Manage Server


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild_id = fake.add_guild("Test Server")
    channel_id = fake.add_channel(guild_id, "general")
    mods = fake.add_role(guild_id, "mods", MANAGE_GUILD)
    alice = fake.add_member(guild_id, "alice")
    bob = fake.add_member(guild_id, "bob", dms_open=False, roles=[mods])
    return World(guild_id, channel_id, alice, bob, mods)


async def start_bot(fake: FakeDiscord, guild_id: str) -> tuple[FakeTestBot, asyncio.Task[None]]:
    """Start a bot against the fake and wait until it is ready (or raise what stopped it)."""
    bot = FakeTestBot(guild_id)
    return bot, await start_client(bot, fake.bot_token)


async def stop_bot(bot: FakeTestBot, task: asyncio.Task[None]) -> None:
    await bot.close()
    await asyncio.wait_for(task, 5)


@pytest.fixture
async def bot(fake: FakeDiscord, world: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTestBot]:
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    bot, task = await start_bot(fake, world.guild_id)
    try:
        yield bot
    finally:
        await stop_bot(bot, task)


async def slash(fake: FakeDiscord, world: World, name: str, **kwargs: Any) -> FakeInteraction:
    """/name run by alice in #general."""
    return await fake.slash(name, user_id=world.alice, channel_id=world.channel_id, guild_id=world.guild_id,
                            **kwargs)


async def next_call(bot: FakeTestBot, name: str) -> Any:
    got, value = await asyncio.wait_for(bot.calls.get(), 5)
    assert got == name
    return value


# ---- handshake -----------------------------------------------------------------------------------
async def test_handshake_sync_and_guild_cache(fake: FakeDiscord, world: World, bot: FakeTestBot) -> None:
    await fake.wait_ready()
    assert fake.identify_count == 1
    guild_commands = {c["name"] for c in fake.commands[world.guild_id]}
    assert guild_commands == {"echo", "card", "clip", "hold", "slow", "pick", "quota", "admin"}
    assert [c["name"] for c in fake.commands["global"]] == ["ping"]
    assert bot.application_id == int(fake.application_id)
    assert bot.user is not None and bot.user.id == int(fake.bot_user_id)
    guild = bot.get_guild(int(world.guild_id))
    assert guild is not None and guild.get_channel(int(world.channel_id)) is not None
    # Intents.default() has no members intent, so discord.py caches only the bot's own member.
    assert guild.me is not None and guild.member_count == 3
    assert guild.get_role(int(world.mods)) is not None
    paths = [(r.method, r.path) for r in fake.requests]
    assert ("GET", "/users/@me") in paths and ("GET", "/oauth2/applications/@me") in paths
    assert all(r.status < 400 for r in fake.requests), [str(r) for r in fake.requests]


async def test_json_content_type_auth_and_unmatched_routes(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base}/users/@me", headers={"Authorization": "Bot wrong"}) as resp:
            assert resp.status == 401
            assert resp.headers["Content-Type"] == "application/json"
            assert await resp.json() == {"message": "401: Unauthorized", "code": 0}
        async with http.get(f"{fake.api_base}/no/such/route?x=1") as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 0
    assert [(r.path, r.query, r.status) for r in fake.requests] == [
        ("/users/@me", {}, 401), ("/no/such/route", {"x": "1"}, 404)]


async def test_resume_is_refused_and_bad_token_closes_4004(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json&compress=zlib-stream") as ws:
            assert (await ws.receive_json(timeout=5))["op"] == 10
            await ws.send_json({"op": 6, "d": {"token": fake.bot_token, "session_id": "x", "seq": 1}})
            assert (await ws.receive_json(timeout=5)) == {"op": 9, "d": False, "s": None, "t": None}
        async with http.ws_connect(fake.gateway_url) as ws:
            await ws.receive_json(timeout=5)
            await ws.send_json({"op": 2, "d": {"token": "nope", "intents": 0, "properties": {}}})
            msg = await ws.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4004
    assert fake.identify_count == 0


async def test_abrupt_disconnect_is_tolerated(fake: FakeDiscord, world: World) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(fake.gateway_url)
        await ws.receive_json(timeout=5)
        await ws.send_json({"op": 2, "d": {"token": fake.bot_token, "intents": 0, "properties": {}}})
        await fake.wait_ready()
        ready = await ws.receive_json(timeout=5)
        assert ready["t"] == "READY" and ready["s"] == 1
        assert (await ws.receive_json(timeout=5))["t"] == "GUILD_CREATE"
        # Like a SIGKILLed process: the TCP connection just goes away, no close frame.
        ws._response.connection.transport.abort()  # type: ignore[union-attr]
        await fake.wait_for(lambda: fake._current is None and not fake._sessions, 5)
        ws._response.close()  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="wait_ready"):
        await fake.slash("echo", user_id=world.alice, channel_id=world.channel_id, guild_id=world.guild_id)


async def test_message_events_follow_the_identified_intents(fake: FakeDiscord, world: World) -> None:
    """Like Discord: no MESSAGE_CREATE for guild messages without GUILD_MESSAGES; DMs need DIRECT_MESSAGES."""
    auth = {"Authorization": f"Bot {fake.bot_token}"}
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(fake.gateway_url)
        await ws.receive_json(timeout=5)
        await ws.send_json({"op": 2, "d": {"token": fake.bot_token, "intents": 1 << 12, "properties": {}}})
        await fake.wait_ready()
        assert (await ws.receive_json(timeout=5))["t"] == "READY"
        assert (await ws.receive_json(timeout=5))["t"] == "GUILD_CREATE"
        async with http.post(f"{fake.api_base}/channels/{world.channel_id}/messages", json={"content": "guild"},
                             headers=auth) as resp:
            assert resp.status == 200
        async with http.post(f"{fake.api_base}/users/@me/channels", json={"recipient_id": world.alice},
                             headers=auth) as resp:
            dm_channel = (await resp.json())["id"]
        async with http.post(f"{fake.api_base}/channels/{dm_channel}/messages", json={"content": "direct"},
                             headers=auth) as resp:
            assert resp.status == 200
        event = await ws.receive_json(timeout=5)
        assert (event["t"], event["d"]["content"]) == ("MESSAGE_CREATE", "direct"), "the guild message sent none"
        await ws.close()


async def test_restarted_bot_identifies_again(fake: FakeDiscord, world: World, bot: FakeTestBot) -> None:
    second, task = await start_bot(fake, world.guild_id)
    try:
        assert fake.identify_count == 2
        inter = await fake.slash("echo", user_id=world.alice, channel_id=world.channel_id,
                                 guild_id=world.guild_id, options={"text": "from the new one"})
        await fake.wait_for(lambda: inter.original and inter.original["content"] == "from the new one")
    finally:
        await stop_bot(second, task)


# ---- interactions --------------------------------------------------------------------------------
async def test_slash_defer_then_edit_fills_original(fake: FakeDiscord, world: World,
                                                    bot: FakeTestBot) -> None:
    inter = await slash(fake, world, "echo", options={"text": "hello"})
    ack = await inter.wait_ack()
    assert ack["type"] == 5
    assert inter.ack_latency is not None and inter.ack_latency < fake.ack_timeout
    original = await fake.wait_for(lambda: inter.original if inter.original["content"] == "hello" else None)
    assert original["flags"] == 0 and original["_edits"] == 1 and original["_via"] == "interaction"
    [message] = fake.channel_messages(world.channel_id)
    assert message["id"] == original["id"] and message["content"] == "hello"
    assert message["author"]["id"] == fake.bot_user_id and message["author"]["bot"] is True
    assert inter.messages() == [original]
    interaction: discord.Interaction = await next_call(bot, "echo")
    await interaction.delete_original_response()
    assert inter.original is None and inter.original_deleted
    assert fake.channel_messages(world.channel_id) == []


async def test_followup_fills_defer_and_bot_token_edits_after_expiry(fake: FakeDiscord, world: World,
                                                                     bot: FakeTestBot) -> None:
    inter = await slash(fake, world, "card")
    _interaction, shown, note = await next_call(bot, "card")
    assert inter.original is not None and inter.original["id"] == str(shown.id)
    assert inter.original["content"] == "task card" and inter.original["flags"] == 0
    assert [f["id"] for f in inter.followups] == [str(note.id)] and inter.followups[0]["flags"] & 64
    assert [m["content"] for m in fake.channel_messages(world.channel_id)] == ["task card"]
    fake.advance(fake.token_ttl + 1)
    with pytest.raises(discord.HTTPException) as expired:
        await shown.edit(content="via the interaction token")
    assert expired.value.code == 50027
    channel = bot.get_channel(int(world.channel_id))
    assert isinstance(channel, discord.TextChannel)
    await channel.get_partial_message(shown.id).edit(content="task card: done")
    [message] = fake.channel_messages(world.channel_id)
    assert message["content"] == "task card: done" and message["_edits"] == 1
    assert message["edited_timestamp"] is not None


async def test_second_acknowledgement_is_rejected(fake: FakeDiscord, world: World, bot: FakeTestBot) -> None:
    inter = await slash(fake, world, "echo", options={"text": "x"})
    await inter.wait_ack()
    async with aiohttp.ClientSession() as http:
        url = f"{fake.api_base}/interactions/{inter.id}/{inter.token}/callback"
        async with http.post(url, json={"type": 4, "data": {"content": "again"}}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 40060


async def test_attachment_option_arrives_as_attachment(fake: FakeDiscord, world: World,
                                                       bot: FakeTestBot) -> None:
    att = fake.make_attachment("clip.mp4", size=4242)
    assert att["url"].startswith("https://cdn.discordapp.com/attachments/") and "&hm=" in att["url"]
    inter = await slash(fake, world, "clip", options={"video": att})
    video = await next_call(bot, "clip")
    assert isinstance(video, discord.Attachment)
    assert (str(video.id), video.filename, video.size, video.url, video.content_type) == (
        att["id"], "clip.mp4", 4242, att["url"], "video/mp4")
    await inter.wait_ack()
    assert inter.original is not None and inter.original["flags"] & 64  # ephemeral
    assert fake.channel_messages(world.channel_id) == []


async def test_subcommands_user_role_options_and_autocomplete(fake: FakeDiscord, world: World,
                                                              bot: FakeTestBot) -> None:
    choices = await fake.autocomplete("quota", user_id=world.bob, channel_id=world.channel_id,
                                      guild_id=world.guild_id, options={"preset": "da"}, focused="preset",
                                      subcommand=["set"])
    assert choices == [{"name": "daily", "value": "daily"}]
    await fake.slash("quota", subcommand=["set"], user_id=world.bob, channel_id=world.channel_id,
                     guild_id=world.guild_id, options={"member": world.alice, "limit": 3, "preset": "daily"})
    member, limit, preset, permissions = await next_call(bot, "quota set")
    assert isinstance(member, discord.Member) and member.id == int(world.alice) and member.name == "alice"
    assert (limit, preset) == (3, "daily")
    assert permissions.manage_guild  # from bob's "mods" role
    await fake.slash("admin", subcommand=["quota", "show"], user_id=world.alice, channel_id=world.channel_id,
                     guild_id=world.guild_id, options={"role": world.mods})
    role = await next_call(bot, "admin quota show")
    assert isinstance(role, discord.Role) and role.id == int(world.mods)
    with pytest.raises(AssertionError, match="not synced"):
        await fake.slash("nope", user_id=world.alice, channel_id=world.channel_id, guild_id=world.guild_id)
    with pytest.raises(AssertionError, match="required"):
        await fake.slash("quota", subcommand=["set"], user_id=world.alice, channel_id=world.channel_id,
                         guild_id=world.guild_id, options={"limit": 1})
    with pytest.raises(AssertionError, match="choices"):
        await slash(fake, world, "pick", options={"scale": 3})
    inter = await slash(fake, world, "pick", options={"scale": 3}, strict=False)
    assert await next_call(bot, "pick") == 3
    await inter.wait_ack()


async def test_dm_interaction_uses_global_command(fake: FakeDiscord, world: World, bot: FakeTestBot) -> None:
    inter = await fake.slash("ping", user_id=world.alice, channel_id=fake.dm_channel_id(world.alice))
    await fake.wait_for(lambda: inter.original)
    assert [m["content"] for m in fake.dm_messages(world.alice)] == ["pong"]


async def test_late_ack_fails_with_10062(fake: FakeDiscord, world: World, bot: FakeTestBot) -> None:
    inter = await slash(fake, world, "slow")
    await asyncio.wait_for(bot.slow_started.wait(), 5)
    fake.advance(fake.ack_timeout + 0.5)
    bot.gate.set()
    error = await asyncio.wait_for(bot.errors.get(), 5)
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, discord.NotFound) and error.original.code == 10062
    assert inter.ack is None
    assert fake.find_requests("POST", r"/callback$")[-1].status == 404


async def test_expired_token_fails_with_50027(fake: FakeDiscord, world: World, bot: FakeTestBot) -> None:
    inter = await slash(fake, world, "hold")
    interaction: discord.Interaction = await next_call(bot, "hold")
    assert inter.original is not None and inter.original["flags"] & 128  # "thinking"
    await interaction.edit_original_response(content="still fresh")
    fake.advance(fake.token_ttl + 1)
    with pytest.raises(discord.HTTPException) as failure:
        await interaction.edit_original_response(content="too late")
    assert failure.value.status == 401 and failure.value.code == 50027
    assert inter.original["content"] == "still fresh"


# ---- channel posts and DMs -----------------------------------------------------------------------
async def test_dm_to_closed_user_is_forbidden(fake: FakeDiscord, world: World, bot: FakeTestBot) -> None:
    alice = await bot.fetch_user(int(world.alice))
    await alice.send("your upscale is done")
    assert [m["content"] for m in fake.dm_messages(world.alice)] == ["your upscale is done"]
    bob = await bot.fetch_user(int(world.bob))
    with pytest.raises(discord.Forbidden) as failure:
        await bob.send("hi bob")
    assert failure.value.code == 50007
    assert fake.dm_messages(world.bob) == []


async def test_nonce_dedupes_channel_posts(fake: FakeDiscord, world: World, bot: FakeTestBot) -> None:
    channel = bot.get_channel(int(world.channel_id))
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("result ready", nonce="task-1-done")
    second = await channel.send("result ready", nonce="task-1-done")
    assert first.id == second.id
    assert len(fake.channel_messages(world.channel_id)) == 1
    posts = fake.find_requests("POST", r"/messages$")
    assert [p.json["enforce_nonce"] for p in posts] == [True, True]
    fake.advance(fake.nonce_window + 1)
    third = await channel.send("result ready", nonce="task-1-done")
    assert third.id != first.id and len(fake.channel_messages(world.channel_id)) == 2


async def test_injected_429_is_retried_and_lands_once(fake: FakeDiscord, world: World,
                                                      bot: FakeTestBot) -> None:
    fake.inject("POST", r"^/channels/\d+/messages$", 429, retry_after=0.05)
    channel = bot.get_channel(int(world.channel_id))
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("after a rate limit", file=discord.File(__file__, filename="proof.py"))
    assert [p.status for p in fake.find_requests("POST", r"/messages$")] == [429, 200]
    [message] = fake.channel_messages(world.channel_id)
    assert message["id"] == str(sent.id) and message["attachments"][0]["filename"] == "proof.py"
    assert fake.requests[-1].files[0]["filename"] == "proof.py"


async def test_edit_spacing_and_deleted_things(fake: FakeDiscord, world: World, bot: FakeTestBot) -> None:
    channel = bot.get_channel(int(world.channel_id))
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("progress 0%")
    fake.edit_min_interval = 0.05
    await message.edit(content="progress 10%")
    await message.edit(content="progress 20%")  # too soon: 429, discord.py waits and retries
    assert [p.status for p in fake.find_requests("PATCH", r"/messages/\d+$")] == [200, 429, 200]
    assert fake.channel_messages(world.channel_id)[0]["_edits"] == 2
    fake.delete_message(world.channel_id, str(message.id))
    with pytest.raises(discord.NotFound) as gone:
        await message.edit(content="progress 30%")
    assert gone.value.code == 10008
    fake.delete_channel(world.channel_id)
    with pytest.raises(discord.NotFound) as no_channel:
        await channel.send("anyone?")
    assert no_channel.value.code == 10003


async def test_wait_for_times_out_with_context(fake: FakeDiscord) -> None:
    with pytest.raises(TimeoutError, match="never"):
        await fake.wait_for(lambda: False, timeout=0.05, what="never")
    assert json.loads(json.dumps(fake.commands)) == {}
