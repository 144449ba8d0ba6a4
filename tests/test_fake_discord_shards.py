"""Sharding in sandbox.fake_discord: bot processes holding different gateway shards, driven by real discord.py.

Why: the bot is about to run as several processes, each holding some shards (AutoShardedBot with shard_count
and shard_ids). These tests prove the fake routes like Discord: READY and GUILD_CREATE per shard, a guild's
interactions and messages to the session holding (guild_id >> 22) % shard_count, DMs to shard 0.
Everything runs in one event loop over 127.0.0.1; waits are on events, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from sandbox.fake_discord import FakeDiscord, shard_of
from tests.helpers import start_client

GUILD_MESSAGES, DIRECT_MESSAGES = 1 << 9, 1 << 12


class ShardBot(commands.AutoShardedBot):
    """A bot process holding some shards; /where tells the test which process answered."""

    def __init__(self, *, shard_count: int | None, shard_ids: list[int] | None) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(),
                         guild_ready_timeout=0.1, shard_count=shard_count, shard_ids=shard_ids)
        self.calls: asyncio.Queue[discord.Interaction] = asyncio.Queue()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause between this process's IDENTIFYs: the fake does not enforce the identify rate limit."""

    async def setup_hook(self) -> None:
        @app_commands.command(description="Which process answered")
        async def where(interaction: discord.Interaction) -> None:
            self.calls.put_nowait(interaction)
            await interaction.response.send_message(f"shards {sorted(self.shards)}")

        self.tree.add_command(where)
        await self.tree.sync()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def point_at_fake(fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))


@dataclass
class World:
    """Two guilds with two shards: g0 on shard 0, g1 on shard 1, each with a channel; alice in both."""

    g0: str
    c0: str
    g1: str
    c1: str
    alice: str


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    g0, g1 = fake.add_guild("zero", shard=(0, 2)), fake.add_guild("one", shard=(1, 2))
    c0, c1 = fake.add_channel(g0), fake.add_channel(g1)
    alice = fake.add_member(g0, "alice")
    fake.add_member(g1, "alice", user_id=alice)
    return World(g0, c0, g1, c1, alice)


async def stop(bot: ShardBot, task: asyncio.Task[None]) -> None:
    await bot.close()
    await asyncio.wait_for(task, 5)


@pytest.fixture
async def processes(fake: FakeDiscord, world: World,
                    point_at_fake: None) -> AsyncIterator[tuple[ShardBot, ShardBot]]:
    """Two bot processes (two clients in one loop): shard 0 of 2 and shard 1 of 2."""
    bots = ShardBot(shard_count=2, shard_ids=[0]), ShardBot(shard_count=2, shard_ids=[1])
    started: list[tuple[ShardBot, asyncio.Task[None]]] = []
    try:
        for bot in bots:
            started.append((bot, await start_client(bot, fake.bot_token)))
        await fake.wait_ready(shards=[0, 1])
        yield bots
    finally:
        for bot, task in started:
            await stop(bot, task)


def ids(bot: ShardBot) -> set[str]:
    return {str(g.id) for g in bot.guilds}


# ---- real discord.py clients -----------------------------------------------------------------------
async def test_each_process_receives_only_its_shards_guilds(fake: FakeDiscord, world: World,
                                                            processes: tuple[ShardBot, ShardBot]) -> None:
    first, second = processes
    assert (fake.shard_count, fake.ready_shards(), fake.identify_count) == (2, [0, 1], 2)
    assert ids(first) == {world.g0} and ids(second) == {world.g1}
    # A guild joined later goes to the process holding its shard (its GUILD_CREATE, then its channel).
    joined = asyncio.create_task(second.wait_for("guild_join", timeout=5))
    late = fake.add_guild("late", shard=(1, 2))
    assert str((await joined).id) == late
    joined = asyncio.create_task(first.wait_for("guild_join", timeout=5))
    early = fake.add_guild("early", shard=(0, 2))
    assert str((await joined).id) == early
    assert ids(first) == {world.g0, early} and ids(second) == {world.g1, late}


async def test_slash_reaches_only_the_process_holding_the_guilds_shard(
        fake: FakeDiscord, world: World, processes: tuple[ShardBot, ShardBot]) -> None:
    first, second = processes
    inter = await fake.slash("where", user_id=world.alice, channel_id=world.c1, guild_id=world.g1)
    assert inter.shard_id == 1
    assert (await inter.wait_ack())["data"]["content"] == "shards [1]"
    got = await asyncio.wait_for(second.calls.get(), 5)
    assert got.guild is not None and got.guild.shard_id == 1
    inter = await fake.slash("where", user_id=world.alice, channel_id=world.c0, guild_id=world.g0)
    assert inter.shard_id == 0 and (await inter.wait_ack())["data"]["content"] == "shards [0]"
    await asyncio.wait_for(first.calls.get(), 5)
    assert first.calls.empty() and second.calls.empty()  # one delivery each, nothing to the other process


async def test_dm_interaction_reaches_shard_0(fake: FakeDiscord, world: World,
                                             processes: tuple[ShardBot, ShardBot]) -> None:
    first, second = processes
    inter = await fake.slash("where", user_id=world.alice, channel_id=fake.dm_channel_id(world.alice))
    assert inter.shard_id == 0 and inter.guild_id is None
    assert (await inter.wait_ack())["data"]["content"] == "shards [0]"
    assert (await asyncio.wait_for(first.calls.get(), 5)).guild_id is None
    assert second.calls.empty()


async def test_shard_count_none_connects_the_recommended_count(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscord(recommended_shards=3) as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        # Nothing listens there: the client must connect to the url GET /gateway/bot answered.
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL("ws://127.0.0.1:9/x"))
        guilds = [fake.add_guild(f"g{n}", shard=(n, 3)) for n in range(3)]
        channels = [fake.add_channel(g) for g in guilds]
        alice = fake.add_member(guilds[2], "alice")
        bot = ShardBot(shard_count=None, shard_ids=None)
        task = await start_client(bot, fake.bot_token)
        try:
            await fake.wait_ready(shards=[0, 1, 2])
            assert len(fake.find_requests("GET", r"^/gateway/bot$")) == 1
            assert bot.shard_count == 3 and sorted(bot.shards) == [0, 1, 2] and fake.identify_count == 3
            assert ids(bot) == set(guilds)
            inter = await fake.slash("where", user_id=alice, channel_id=channels[2], guild_id=guilds[2])
            assert inter.shard_id == 2 and (await inter.wait_ack())["data"]["content"] == "shards [0, 1, 2]"
        finally:
            await stop(bot, task)


async def test_shard_id_outside_the_count_is_refused_4010(fake: FakeDiscord, point_at_fake: None) -> None:
    bot = ShardBot(shard_count=2, shard_ids=[2])
    with pytest.raises(discord.ConnectionClosed) as info:
        await asyncio.wait_for(bot.start(fake.bot_token), 10)
    assert info.value.code == 4010 and fake.identify_count == 0
    await bot.close()


# ---- raw gateway sessions --------------------------------------------------------------------------
async def connect(http: aiohttp.ClientSession, fake: FakeDiscord, shard: list[Any] | None = None,
                  intents: int = 0) -> aiohttp.ClientWebSocketResponse:
    """A raw gateway session that sent HELLO's answer: IDENTIFY (with `shard` when given)."""
    ws = await http.ws_connect(fake.gateway_url)
    assert (await ws.receive_json(timeout=5))["op"] == 10
    d: dict[str, Any] = {"token": fake.bot_token, "intents": intents, "properties": {}}
    if shard is not None:
        d["shard"] = shard
    await ws.send_json({"op": 2, "d": d})
    return ws


async def dispatches(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next `count` dispatches (event name, data) on this session."""
    got = []
    while len(got) < count:
        frame = await ws.receive_json(timeout=5)
        if frame["op"] == 0:
            got.append((frame["t"], frame["d"]))
    return got


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int:
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    return int(msg.data)


async def test_ready_carries_the_shard_and_only_its_guilds(fake: FakeDiscord, world: World) -> None:
    async with aiohttp.ClientSession() as http:
        one = await connect(http, fake, [1, 2])
        await fake.wait_ready(shards=[1])
        (ready, data), (create, guild) = await dispatches(one, 2)
        assert (ready, data["shard"], [g["id"] for g in data["guilds"]]) == ("READY", [1, 2], [world.g1])
        assert (create, guild["id"]) == ("GUILD_CREATE", world.g1)
        assert fake._current is None, "nobody holds shard 0 yet"
        zero = await connect(http, fake, [0, 2])
        await fake.wait_ready(shards=[0, 1])
        (_, data), _ = await dispatches(zero, 2)
        assert data["shard"] == [0, 2] and [g["id"] for g in data["guilds"]] == [world.g0]
        await zero.close()
        await one.close()


async def test_unsharded_session_is_shard_0_of_1(fake: FakeDiscord, world: World) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await connect(http, fake)
        await fake.wait_ready()
        (_, ready), *creates = await dispatches(ws, 3)
        assert "shard" not in ready and {d["id"] for _, d in creates} == {world.g0, world.g1}
        assert (fake.shard_count, fake.ready_shards()) == (1, [0])
        await ws.close()


async def test_identify_refusals(fake: FakeDiscord, world: World) -> None:
    """4010 for a bad shard or a count the other shards disagree with, 4005 for a second IDENTIFY."""
    async with aiohttp.ClientSession() as http:
        for bad in ([2, 2], [-1, 2], [0, 0], [0], ["0", "2"], [0.0, 2]):
            assert await close_code(await connect(http, fake, bad)) == 4010, bad
        zero, one = await connect(http, fake, [0, 2]), await connect(http, fake, [1, 2])
        await fake.wait_ready(shards=[0, 1])
        assert await close_code(await connect(http, fake, [0, 3])) == 4010  # shard 1 is held with count 2
        assert await close_code(await connect(http, fake)) == 4010  # unsharded is shard 0 of 1: 1 != 2
        await zero.send_json({"op": 2, "d": {"token": fake.bot_token, "intents": 0, "properties": {}}})
        await dispatches(zero, 2)  # READY, GUILD_CREATE from the first IDENTIFY
        assert await close_code(zero) == 4005
        await one.close()
        await fake.wait_for(lambda: fake.shard_count is None and not fake._sessions)
        assert fake.identify_count == 2
        # With every shard gone, another count is fine (the bot restarted with more shards).
        ws = await connect(http, fake, [2, 3])
        await fake.wait_ready(shards=[2])
        await ws.close()


async def test_too_many_guilds_on_one_session_is_refused_4011() -> None:
    async with FakeDiscord(max_guilds_per_shard=1) as fake, aiohttp.ClientSession() as http:
        for shard in ([0, 2], [1, 2]):
            fake.add_guild("g", shard=(shard[0], 2))
        assert await close_code(await connect(http, fake)) == 4011
        ws = await connect(http, fake, [1, 2])
        await fake.wait_ready(shards=[1])
        await ws.close()


async def test_a_new_identify_for_a_held_shard_takes_it_over(fake: FakeDiscord, world: World) -> None:
    async with aiohttp.ClientSession() as http:
        old = await connect(http, fake, [1, 2])
        await fake.wait_ready(shards=[1])
        new = await connect(http, fake, [1, 2])
        await fake.wait_for(lambda: fake._shards.holders[1].ready and len(fake._sessions) == 2)
        await dispatches(new, 2)
        channel = fake.add_channel(world.g1, "later")
        (event, data), = await dispatches(new, 1)
        assert (event, data["id"]) == ("CHANNEL_CREATE", channel)
        assert fake.identify_count == 2
        await old.close()  # closing the replaced session leaves shard 1 with the new one
        await fake.wait_for(lambda: len(fake._sessions) == 1)
        assert fake.ready_shards() == [1]
        await new.close()


async def test_messages_go_to_the_guilds_shard_and_dms_to_shard_0(fake: FakeDiscord, world: World) -> None:
    """Per session: its shard's guild messages (with GUILD_MESSAGES), DMs on shard 0 (with DIRECT_MESSAGES)."""
    auth = {"Authorization": f"Bot {fake.bot_token}"}
    async with aiohttp.ClientSession() as http:
        async def post(channel_id: str, content: str) -> None:
            async with http.post(f"{fake.api_base}/channels/{channel_id}/messages", json={"content": content},
                                 headers=auth) as resp:
                assert resp.status == 200

        zero = await connect(http, fake, [0, 2], GUILD_MESSAGES | DIRECT_MESSAGES)
        one = await connect(http, fake, [1, 2], GUILD_MESSAGES | DIRECT_MESSAGES)
        await fake.wait_ready(shards=[0, 1])
        await dispatches(zero, 2)
        await dispatches(one, 2)
        await post(world.c1, "to one")
        await post(fake.dm_channel_id(world.alice), "direct")
        await post(world.c0, "to zero")
        await post(world.c1, "one again")
        assert [d["content"] for _, d in await dispatches(zero, 2)] == ["direct", "to zero"]
        assert [(d["content"], d["guild_id"]) for _, d in await dispatches(one, 2)] == [
            ("to one", world.g1), ("one again", world.g1)]
        await zero.close()
        await one.close()


async def test_slash_for_a_shard_nobody_holds_is_a_test_bug(fake: FakeDiscord, world: World) -> None:
    auth = {"Authorization": f"Bot {fake.bot_token}"}
    where = {"name": "where", "type": 1, "description": "Which process answered"}
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{fake.api_base}/applications/{fake.application_id}/commands", json=[where],
                            headers=auth) as resp:
            assert resp.status == 200
        one = await connect(http, fake, [1, 2])
        await fake.wait_ready()
        with pytest.raises(AssertionError, match=r"shard 0 of 2 .*DMs.*wait_ready\(shards=\[0\]\)"):
            await fake.slash("where", user_id=world.alice, channel_id=fake.dm_channel_id(world.alice))
        with pytest.raises(AssertionError, match=rf"shard 0 of 2 for guild {world.g0}"):
            await fake.slash("where", user_id=world.alice, channel_id=world.c0, guild_id=world.g0)
        fake.add_channel(world.g0, "dropped")  # its CHANNEL_CREATE has nowhere to go: dropped
        inter = await fake.slash("where", user_id=world.alice, channel_id=world.c1, guild_id=world.g1)
        assert inter.shard_id == 1 and inter.session_id == fake._shards.holders[1].session_id
        assert [t for t, _ in await dispatches(one, 3)] == ["READY", "GUILD_CREATE", "INTERACTION_CREATE"]
        await one.close()


async def test_gateway_bot_reports_the_recommended_count_and_start_limit() -> None:
    async with FakeDiscord(recommended_shards=4) as fake, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bot {fake.bot_token}"}

        async def gateway_bot() -> dict[str, Any]:
            async with http.get(f"{fake.api_base}/gateway/bot", headers=auth) as resp:
                assert resp.status == 200
                body: dict[str, Any] = await resp.json()
                return body

        body = await gateway_bot()
        assert (body["url"], body["shards"]) == (fake.gateway_url, 4)
        assert body["session_start_limit"] == {"total": 1000, "remaining": 1000, "reset_after": 0,
                                               "max_concurrency": 1}
        ws = await connect(http, fake, [3, 4])
        await fake.wait_ready(shards=[3])
        assert (await gateway_bot())["session_start_limit"]["remaining"] == 999
        await ws.close()


def test_add_guild_places_guilds_on_the_wanted_shard() -> None:
    fake = FakeDiscord()
    seen: list[int] = []
    for count in (1, 2, 3, 5, 16):
        for shard_id in range(count):
            guild_id = fake.add_guild(shard=(shard_id, count))
            assert shard_of(guild_id, count) == shard_id
            seen.append(int(guild_id))
    assert seen == sorted(set(seen)), "snowflakes stay unique and increasing"
    with pytest.raises(AssertionError, match="shard 2 is not one of 2"):
        fake.add_guild(shard=(2, 2))
