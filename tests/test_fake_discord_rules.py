"""The fake Discord refuses what Discord refuses (sandbox/fake_discord_rules.py), over real HTTP.

Each limit is shown from both sides: the value at the limit is accepted and one more is refused with
400 / 50035 "Invalid Form Body" naming the path, so a rule that is off by one fails here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import pytest

from bot.client import UpscaleBot
from sandbox.fake_discord import FakeDiscord
from sandbox.fake_discord_models import flatten_errors
from sandbox.offline import Sandbox

MANAGE_GUILD = 1 << 5
Body = dict[str, Any]


@dataclass
class Api:
    """Raw REST calls as a bot makes them (bot token), answers as (status, JSON)."""

    fake: FakeDiscord
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, Any]:
        headers = {"Authorization": f"Bot {self.fake.bot_token}"} if auth else {}
        async with self.http.request(method, self.fake.api_base + path, json=body, headers=headers) as resp:
            return resp.status, (await resp.json() if resp.status != 204 else None)

    async def ok(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        status, data = await self.call(method, path, body, auth=auth)
        assert status in (200, 204), f"{method} {path} refused: {status} {data}"
        return data

    async def refused(self, method: str, path: str, body: Any, where: str, *, auth: bool = True) -> list[str]:
        """Assert Discord's form error naming `where` (e.g. "embeds.0.title"); returns the error lines."""
        status, data = await self.call(method, path, body, auth=auth)
        assert status == 400, f"{method} {path} accepted ({status}) what Discord refuses at {where}: {body!r:.300}"
        assert (data["code"], data["message"]) == (50035, "Invalid Form Body"), data
        lines = flatten_errors(data["errors"])
        assert any(line.startswith(f"{where}: ") for line in lines), f"expected an error at {where}, got {lines}"
        return lines


@dataclass
class World:
    api: Api
    guild_id: str
    channel_id: str
    alice: str
    bob: str
    mods: str

    @property
    def posts(self) -> str:
        return f"/channels/{self.channel_id}/messages"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as running:
        yield running


@pytest.fixture
def world(fake: FakeDiscord, session: aiohttp.ClientSession) -> World:
    guild_id = fake.add_guild()
    channel_id = fake.add_channel(guild_id)
    mods = fake.add_role(guild_id, "mods", MANAGE_GUILD)
    alice = fake.add_member(guild_id, "alice")
    bob = fake.add_member(guild_id, "bob", roles=[mods])
    return World(Api(fake, session), guild_id, channel_id, alice, bob, mods)


ASK = {"name": "ask", "type": 1, "description": "Ask something", "options": [
    {"type": 3, "name": "text", "description": "Text", "autocomplete": True},
    {"type": 4, "name": "count", "description": "Count", "autocomplete": True},
    {"type": 10, "name": "ratio", "description": "Ratio", "autocomplete": True},
]}


@pytest.fixture
async def gateway(fake: FakeDiscord, world: World) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A raw gateway client that identified and synced /ask: interactions arrive here as INTERACTION_CREATE."""
    await world.api.ok("PUT", f"/applications/{fake.application_id}/guilds/{world.guild_id}/commands", [ASK])
    async with world.api.http.ws_connect(fake.gateway_url) as ws:
        await ws.receive_json(timeout=5)  # HELLO
        await ws.send_json({"op": 2, "d": {"token": fake.bot_token, "intents": 0, "properties": {}}})
        await fake.wait_ready()
        yield ws


async def next_interaction(ws: aiohttp.ClientWebSocketResponse) -> Body:
    """The next INTERACTION_CREATE the gateway delivers (READY and GUILD_CREATE are skipped)."""
    while True:
        frame = await ws.receive_json(timeout=5)
        if frame.get("t") == "INTERACTION_CREATE":
            return frame["d"]


async def slash(fake: FakeDiscord, world: World) -> str:
    """/ask by alice; returns its callback path."""
    inter = await fake.slash("ask", user_id=world.alice, channel_id=world.channel_id, guild_id=world.guild_id)
    return f"/interactions/{inter.id}/{inter.token}/callback"


# ---- messages: every limit, both sides ----------------------------------------------------------------
def row(*components: Body) -> Body:
    return {"type": 1, "components": list(components)}


def button(custom_id: str = "go", **extra: Any) -> Body:
    return {"type": 2, "style": 1, "label": "Go", "custom_id": custom_id, **extra}


def select(count: int = 2, **extra: Any) -> Body:
    choices = [{"label": f"option {i}", "value": f"v{i}"} for i in range(count)]
    return {"type": 3, "custom_id": "pick", "options": choices, **extra}


def link(url: str) -> Body:
    return {"type": 2, "style": 5, "label": "Open", "url": url}


def embed_message(**embed: Any) -> Body:
    return {"embeds": [embed]}


def ids(n: int) -> list[str]:
    return [str(10**17 + i) for i in range(n)]


MESSAGE_LIMITS: list[tuple[str, Callable[[int], Body], int]] = [
    ("content", lambda n: {"content": "x" * n}, 2000),
    ("embeds", lambda n: {"embeds": [{"title": "t"}] * n}, 10),
    ("embeds.0.title", lambda n: embed_message(title="t" * n), 256),
    ("embeds.0.description", lambda n: embed_message(description="d" * n), 4096),
    ("embeds.0.fields", lambda n: embed_message(fields=[{"name": "n", "value": "v"}] * n), 25),
    ("embeds.0.fields.0.name", lambda n: embed_message(fields=[{"name": "n" * n, "value": "v"}]), 256),
    ("embeds.0.fields.0.value", lambda n: embed_message(fields=[{"name": "n", "value": "v" * n}]), 1024),
    ("embeds.0.footer.text", lambda n: embed_message(footer={"text": "f" * n}), 2048),
    ("embeds.0.author.name", lambda n: embed_message(author={"name": "a" * n}), 256),
    # The 6000 characters are summed over all embeds of the message (title, description, fields, footer, author).
    ("embeds", lambda n: {"embeds": [{"description": "d" * 4096}, {
        "title": "t" * 100, "description": "d" * (n - 4096 - 100 - 2 - 2 - 2 - 1),
        "fields": [{"name": "na", "value": "va"}], "footer": {"text": "ok"}, "author": {"name": "a"}}]}, 6000),
    ("nonce", lambda n: {"content": "x", "nonce": "n" * n}, 25),
    ("allowed_mentions.users", lambda n: {"content": "x", "allowed_mentions": {"parse": [], "users": ids(n)}}, 100),
    ("allowed_mentions.roles", lambda n: {"content": "x", "allowed_mentions": {"parse": [], "roles": ids(n)}}, 100),
    ("components", lambda n: {"components": [row(button(f"b{i}")) for i in range(n)]}, 5),
    ("components.0.components", lambda n: {"components": [row(*[button(f"b{i}") for i in range(n)])]}, 5),
    ("components.0.components.0.custom_id", lambda n: {"components": [row(button("c" * n))]}, 100),
    ("components.0.components.0.label", lambda n: {"components": [row(button(label="l" * n))]}, 80),
    ("components.0.components.0.url", lambda n: {"components": [row(link("https://e.io/" + "p" * (n - 13)))]}, 512),
    ("components.0.components.0.options", lambda n: {"components": [row(select(n))]}, 25),
    ("components.0.components.0.options.0.label",
     lambda n: {"components": [row(select(options=[{"label": "l" * n, "value": "v"}]))]}, 100),
    ("components.0.components.0.options.0.value",
     lambda n: {"components": [row(select(options=[{"label": "l", "value": "v" * n}]))]}, 100),
    ("components.0.components.0.options.0.description",
     lambda n: {"components": [row(select(options=[{"label": "l", "value": "v", "description": "d" * n}]))]}, 100),
    ("components.0.components.0.placeholder", lambda n: {"components": [row(select(placeholder="p" * n))]}, 150),
    ("components.0.components.0.max_values", lambda n: {"components": [row(select(25, max_values=n))]}, 25),
]


@pytest.mark.parametrize(("where", "make", "limit"), MESSAGE_LIMITS, ids=[f"{w}<={n}" for w, _, n in MESSAGE_LIMITS])
async def test_message_limit_is_exact(world: World, where: str, make: Callable[[int], Body], limit: int) -> None:
    await world.api.ok("POST", world.posts, make(limit))
    lines = await world.api.refused("POST", world.posts, make(limit + 1), where)
    assert len(lines) == 1, lines


REFUSED_MESSAGES: list[tuple[str, Body]] = [
    ("embeds.0.url", embed_message(title="t", url=5)),
    ("embeds.0.fields.0.value", embed_message(fields=[{"name": "n", "value": 5}])),
    ("embeds.0.fields.0.name", embed_message(fields=[{"name": "", "value": "v"}])),
    ("embeds.0.fields.0.value", embed_message(fields=[{"name": "n", "value": ""}])),
    ("embeds.0.fields.0.value", embed_message(fields=[{"name": "n"}])),
    ("embeds.0.footer.text", embed_message(footer={"icon_url": "https://e.io/i.png"})),
    ("embeds.0.author.name", embed_message(author={"url": "https://e.io"})),
    ("embeds.0.color", embed_message(title="t", color=0x1000000)),
    ("embeds.0", {"embeds": ["just text"]}),
    ("content", {"content": ["x"]}),
    ("attachments.0", {"content": "x", "attachments": ["clip.mp4"]}),
    ("nonce", {"content": "x", "nonce": 1.5}),
    ("nonce", {"content": "x", "nonce": True}),
    ("nonce", {"content": "x", "nonce": ["n"]}),
    ("enforce_nonce", {"content": "x", "nonce": "n", "enforce_nonce": "true"}),
    ("enforce_nonce", {"content": "x", "nonce": "n", "enforce_nonce": 1}),
    ("allowed_mentions", {"content": "x", "allowed_mentions": "none"}),
    ("allowed_mentions.parse.0", {"content": "x", "allowed_mentions": {"parse": ["here"]}}),
    ("allowed_mentions.parse.1", {"content": "x", "allowed_mentions": {"parse": ["users", "users"]}}),
    ("allowed_mentions.parse", {"content": "x", "allowed_mentions": {"parse": "users"}}),
    ("allowed_mentions", {"content": "x", "allowed_mentions": {"parse": ["users"], "users": ["1"]}}),
    ("allowed_mentions", {"content": "x", "allowed_mentions": {"parse": ["roles"], "roles": ["1"]}}),
    ("allowed_mentions.users.0", {"content": "x", "allowed_mentions": {"users": ["alice"]}}),
    ("allowed_mentions.replied_user", {"content": "x", "allowed_mentions": {"replied_user": "yes"}}),
    ("allowed_mentions.everyone", {"content": "x", "allowed_mentions": {"everyone": False}}),
    ("components.0.type", {"components": [button()]}),
    ("components.0.components", {"components": [row()]}),
    ("components.0.components", {"components": [row(select(), button())]}),
    ("components.0.components.0.style", {"components": [row(button(style=0))]}),
    ("components.0.components.0.style", {"components": [row(button(style=7))]}),
    ("components.0.components.0.url", {"components": [row({"type": 2, "style": 5, "label": "Open"})]}),
    ("components.0.components.0.url", {"components": [row(link("ftp://e.io/file"))]}),
    ("components.0.components.0.custom_id", {"components": [row({**link("https://e.io"), "custom_id": "x"})]}),
    ("components.0.components.0.custom_id", {"components": [row({"type": 2, "style": 1, "label": "Go"})]}),
    ("components.0.components.0.custom_id", {"components": [row(button(""))]}),
    ("components.0.components.0.url", {"components": [row(button(url="https://e.io"))]}),
    ("components.0.components.1.custom_id", {"components": [row(button("same"), button("same"))]}),
    ("components.1.components.0.custom_id", {"components": [row(button("same")), row(button("same"))]}),
    ("components.0.components.0.type", {"components": [row({"type": 4, "custom_id": "t", "style": 1})]}),
    ("components.0.components.0.options", {"components": [row(select(0))]}),
    ("components.0.components.0.min_values", {"components": [row(select(5, min_values=3, max_values=2))]}),
    ("components.0.components.0.max_values", {"components": [row(select(2, max_values=3))]}),
    ("components.0.components.0.options.1.value",
     {"components": [row(select(options=[{"label": "a", "value": "v"}, {"label": "b", "value": "v"}]))]}),
]


@pytest.mark.parametrize(("where", "body"), REFUSED_MESSAGES, ids=[w for w, _ in REFUSED_MESSAGES])
async def test_malformed_message_is_refused(fake: FakeDiscord, world: World, where: str, body: Body) -> None:
    await world.api.refused("POST", world.posts, body, where)
    assert fake.channel_messages(world.channel_id) == []


ACCEPTED_MESSAGES: list[Body] = [
    # What discord.py sends: integer ids in allowed_mentions, an integer nonce, enforce_nonce true.
    {"content": "x", "nonce": 1234567890123456789, "enforce_nonce": True,
     "allowed_mentions": {"parse": ["everyone"], "users": [10**17], "roles": [], "replied_user": True}},
    {"content": "x", "allowed_mentions": {"parse": ["users", "roles", "everyone"], "users": []}},
    {"embeds": [{"title": "t", "url": "https://e.io", "color": 0xFFFFFF, "timestamp": "2026-01-01T00:00:00+00:00",
                 "fields": [{"name": "n", "value": "v", "inline": True}], "image": {"url": "https://e.io/i.png"}}]},
    {"components": [row(link("discord://-/channels/1/2")), row(button("a", style=4), link("http://e.io"))]},
    {"components": [row({"type": 5, "custom_id": "who", "min_values": 0, "max_values": 25})]},
]


@pytest.mark.parametrize("body", ACCEPTED_MESSAGES)
async def test_well_formed_message_is_accepted(fake: FakeDiscord, world: World, body: Body) -> None:
    sent = await world.api.ok("POST", world.posts, body)
    assert [m["id"] for m in fake.channel_messages(world.channel_id)] == [sent["id"]]


async def test_nonce_checked_before_de_duplication(fake: FakeDiscord, world: World) -> None:
    """A malformed resend is refused even when its nonce matches a stored message."""
    first = await world.api.ok("POST", world.posts, {"content": "done", "nonce": "t1-c", "enforce_nonce": True})
    await world.api.refused("POST", world.posts, {"content": "done", "nonce": "t1-c", "enforce_nonce": "yes"},
                            "enforce_nonce")
    again = await world.api.ok("POST", world.posts, {"content": "done", "nonce": "t1-c", "enforce_nonce": True})
    assert again["id"] == first["id"] and len(fake.channel_messages(world.channel_id)) == 1


async def test_edit_validates_the_merged_message(fake: FakeDiscord, world: World) -> None:
    sent = await world.api.ok("POST", world.posts, {"content": "card", "embeds": [{"description": "d" * 4000}]})
    path = f"{world.posts}/{sent['id']}"
    await world.api.refused("PATCH", path, {"content": "x" * 2001}, "content")
    # The kept embed counts towards the 6000 total of the merged message.
    await world.api.refused("PATCH", path, {"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]},
                            "embeds")
    await world.api.refused("PATCH", path, {"allowed_mentions": {"parse": ["all"]}}, "allowed_mentions.parse.0")
    await world.api.refused("PATCH", path, {"attachments": [5]}, "attachments.0")
    await world.api.ok("PATCH", path, {"content": "x" * 2000})
    assert fake.channel_messages(world.channel_id)[0]["_edits"] == 1


# ---- mentions -------------------------------------------------------------------------------------
def pinged(message: Body) -> tuple[list[str], list[str], bool]:
    return [u["id"] for u in message["mentions"]], message["mention_roles"], message["mention_everyone"]


async def test_without_allowed_mentions_everything_written_pings(fake: FakeDiscord, world: World) -> None:
    content = f"<@{world.alice}> <@!{world.bob}> <@{world.alice}> <@&{world.mods}> <@999> <@&998> @here"
    sent = await world.api.ok("POST", world.posts, {"content": content})
    assert pinged(sent) == ([world.alice, world.bob], [world.mods], True)
    assert pinged(fake.channel_messages(world.channel_id)[0]) == pinged(sent)
    member = sent["mentions"][1]["member"]
    assert member["roles"] == [world.mods] and "user" not in member


async def test_a_file_name_like_everyone_pings_only_without_allowed_mentions(world: World) -> None:
    """A member's file called "@everyone.mp4" in a result post: only allowed_mentions keeps it quiet."""
    content = f"<@{world.alice}> your upscale of @everyone.mp4 is done"
    loud = await world.api.ok("POST", world.posts, {"content": content})
    assert pinged(loud) == ([world.alice], [], True)
    quiet = await world.api.ok("POST", world.posts, {"content": content, "allowed_mentions": {
        "parse": [], "users": [int(world.alice)]}})
    assert pinged(quiet) == ([world.alice], [], False)
    nobody = await world.api.ok("POST", world.posts, {"content": content, "allowed_mentions": {"parse": []}})
    assert pinged(nobody) == ([], [], False)


@pytest.mark.parametrize(("allowed", "expect"), [
    ({"parse": ["users"]}, ("alice bob", "", False)),
    ({"parse": ["roles"]}, ("", "mods", False)),
    ({"parse": ["everyone"]}, ("", "", True)),
    ({"users": ["bob"], "roles": ["mods"]}, ("bob", "mods", False)),
])
async def test_allowed_mentions_permit_only_what_they_name(world: World, allowed: Body,
                                                           expect: tuple[str, str, bool]) -> None:
    names = {"alice": world.alice, "bob": world.bob, "mods": world.mods}
    allowed = {k: [names.get(v, v) for v in vs] if k != "parse" else vs for k, vs in allowed.items()}
    content = f"<@{world.alice}> <@{world.bob}> <@&{world.mods}> @everyone"
    sent = await world.api.ok("POST", world.posts, {"content": content, "allowed_mentions": allowed})
    users, roles, everyone = expect
    assert pinged(sent) == ([names[n] for n in users.split()], [names[n] for n in roles.split()], everyone)


async def test_mentions_in_embeds_and_dms(fake: FakeDiscord, world: World) -> None:
    """Embeds never ping; in a DM only users can be pinged (no roles, no @everyone)."""
    in_embed = await world.api.ok("POST", world.posts, {"embeds": [{"description": f"<@{world.alice}> @everyone",
                                                                    "fields": [{"name": "@here", "value": "<@&1>"}]}]})
    assert pinged(in_embed) == ([], [], False)
    dm = await world.api.ok("POST", "/users/@me/channels", {"recipient_id": world.alice})
    direct = await world.api.ok("POST", f"/channels/{dm['id']}/messages",
                                {"content": f"<@{world.alice}> <@&{world.mods}> @everyone"})
    assert pinged(direct) == ([world.alice], [], False)
    assert "member" not in direct["mentions"][0]


async def test_edit_and_reply_mentions(fake: FakeDiscord, world: World) -> None:
    """An edit of the content re-parses mentions with the edit's allowed_mentions (or the defaults); a reply
    pings the replied-to author unless allowed_mentions leaves replied_user out."""
    sent = await world.api.ok("POST", world.posts, {"content": "@everyone", "allowed_mentions": {"parse": []}})
    path = f"{world.posts}/{sent['id']}"
    assert pinged(await world.api.ok("PATCH", path, {"embeds": [{"title": "t"}]})) == ([], [], False)
    assert pinged(await world.api.ok("PATCH", path, {"content": f"<@{world.bob}> @here"})) == ([world.bob], [], True)
    quiet = await world.api.ok("PATCH", path, {"content": f"<@{world.bob}>", "allowed_mentions": {"parse": []}})
    assert pinged(quiet) == ([], [], False)
    reference = {"message_id": sent["id"], "channel_id": world.channel_id}
    reply = await world.api.ok("POST", world.posts, {"content": "re", "message_reference": reference})
    assert pinged(reply) == ([fake.bot_user_id], [], False)
    silent = await world.api.ok("POST", world.posts, {"content": "re", "message_reference": reference,
                                                      "allowed_mentions": {"parse": []}})
    assert pinged(silent) == ([], [], False)


# ---- interaction callbacks, followups and webhook edits ----------------------------------------------
async def test_pong_and_update_are_refused_for_a_slash_command(fake: FakeDiscord, world: World,
                                                               gateway: aiohttp.ClientWebSocketResponse) -> None:
    callback = await slash(fake, world)
    for kind in (1, 6, 7, 8, 3):
        await world.api.refused("POST", callback, {"type": kind}, "type", auth=False)
    await world.api.refused("POST", callback, {"type": 4, "data": {"content": "x" * 2001}}, "data.content",
                            auth=False)
    await world.api.ok("POST", callback, {"type": 4, "data": {"content": "x" * 2000}}, auth=False)
    [acked] = fake._interactions.values()
    assert acked.ack is not None and acked.ack["type"] == 4


async def test_interaction_response_must_not_be_empty(fake: FakeDiscord, world: World,
                                                      gateway: aiohttp.ClientWebSocketResponse) -> None:
    callback = await slash(fake, world)
    status, data = await world.api.call("POST", callback, {"type": 4, "data": {}}, auth=False)
    assert (status, data["code"]) == (400, 50006)
    await world.api.refused("POST", callback, {"type": 4, "data": "hi"}, "data", auth=False)
    await world.api.ok("POST", callback, {"type": 4, "data": {"embeds": [{"title": "t"}]}}, auth=False)


async def test_followups_and_webhook_edits_are_validated(fake: FakeDiscord, world: World,
                                                         gateway: aiohttp.ClientWebSocketResponse) -> None:
    inter = await fake.slash("ask", user_id=world.alice, channel_id=world.channel_id, guild_id=world.guild_id)
    await world.api.ok("POST", f"/interactions/{inter.id}/{inter.token}/callback", {"type": 5}, auth=False)
    hook = f"/webhooks/{fake.application_id}/{inter.token}"
    await world.api.refused("POST", hook + "?wait=true", {"content": "x" * 2001}, "content", auth=False)
    await world.api.refused("POST", hook + "?wait=true", {"content": "@everyone", "allowed_mentions": {
        "parse": ["everyone", "everyone"]}}, "allowed_mentions.parse.1", auth=False)
    filled = await world.api.ok("POST", hook + "?wait=true", {"content": "@everyone.mp4",
                                                              "allowed_mentions": {"parse": []}}, auth=False)
    assert pinged(filled) == ([], [], False) and inter.original is not None and inter.original["id"] == filled["id"]
    await world.api.refused("PATCH", hook + "/messages/@original", {"embeds": [{"title": "t" * 257}]},
                            "embeds.0.title", auth=False)
    await world.api.refused("PATCH", hook + "/messages/@original", {"components": [row(button(style=5))]},
                            "components.0.components.0.url", auth=False)
    edited = await world.api.ok("PATCH", hook + "/messages/@original", {"embeds": [{"title": "t" * 256}]}, auth=False)
    assert edited["content"] == "@everyone.mp4" and edited["mention_everyone"] is False


@pytest.mark.parametrize(("focused", "good", "bad", "where"), [
    ("text", [{"name": "n", "value": "v"}] * 25, [{"name": "n", "value": "v"}] * 26, "data.choices"),
    ("text", [{"name": "n" * 100, "value": "v"}], [{"name": "n" * 101, "value": "v"}], "data.choices.0.name"),
    ("text", [{"name": "n", "value": "v"}], [{"name": "", "value": "v"}], "data.choices.0.name"),
    ("text", [{"name": "n", "value": "v" * 100}], [{"name": "n", "value": "v" * 101}], "data.choices.0.value"),
    ("text", [{"name": "n", "value": "1"}], [{"name": "n", "value": 1}], "data.choices.0.value"),
    ("text", [{"name": "n", "value": "v", "name_localizations": {"fr": "nom"}}],
     [{"name": "n", "value": "v", "name_localizations": {"french": "nom"}}],
     "data.choices.0.name_localizations.french"),
    ("count", [{"name": "n", "value": 1}], [{"name": "n", "value": "1"}], "data.choices.0.value"),
    ("count", [{"name": "n", "value": 2**53 - 1}], [{"name": "n", "value": 2**53}], "data.choices.0.value"),
    ("ratio", [{"name": "n", "value": 1.5}], [{"name": "n", "value": "1.5"}], "data.choices.0.value"),
])
async def test_autocomplete_result_rules(fake: FakeDiscord, world: World, gateway: aiohttp.ClientWebSocketResponse,
                                         focused: str, good: list[Body], bad: list[Body], where: str) -> None:
    asked = asyncio.create_task(fake.autocomplete("ask", user_id=world.alice, channel_id=world.channel_id,
                                                  guild_id=world.guild_id, options={focused: ""}, focused=focused))
    interaction = await next_interaction(gateway)
    callback = f"/interactions/{interaction['id']}/{interaction['token']}/callback"
    await world.api.refused("POST", callback, {"type": 8, "data": {"choices": bad}}, where, auth=False)
    for kind in (1, 4, 5):  # an autocomplete is answered with choices, nothing else
        await world.api.refused("POST", callback, {"type": kind}, "type", auth=False)
    await world.api.ok("POST", callback, {"type": 8, "data": {"choices": good}}, auth=False)
    assert await asyncio.wait_for(asked, 5) == good


TEXT_INPUT = {"type": 1, "components": [{"type": 4, "custom_id": "why", "label": "Why", "style": 1}]}


@pytest.mark.parametrize(("good", "bad", "where"), [
    ({"title": "t" * 45}, {"title": "t" * 46}, "data.title"),
    ({"title": "t"}, {"title": ""}, "data.title"),
    ({"custom_id": "c" * 100}, {"custom_id": "c" * 101}, "data.custom_id"),
    ({"components": [TEXT_INPUT] * 5}, {"components": [TEXT_INPUT] * 6}, "data.components"),
    ({"components": [TEXT_INPUT]}, {"components": []}, "data.components"),
])
async def test_modal_rules(fake: FakeDiscord, world: World, gateway: aiohttp.ClientWebSocketResponse,
                           good: Body, bad: Body, where: str) -> None:
    callback = await slash(fake, world)
    modal = {"custom_id": "why", "title": "Tell us", "components": [TEXT_INPUT]}
    await world.api.refused("POST", callback, {"type": 9, "data": {**modal, **bad}}, where, auth=False)
    await world.api.ok("POST", callback, {"type": 9, "data": {**modal, **good}}, auth=False)


# ---- command definitions --------------------------------------------------------------------------
def command(name: str = "upscale", **extra: Any) -> Body:
    return {"name": name, "type": 1, "description": "Upscale a video", **extra}


def option(name: str = "video", kind: int = 3, **extra: Any) -> Body:
    return {"name": name, "type": kind, "description": "An option", **extra}


def context_menu(name: str, kind: int = 2, **extra: Any) -> Body:
    return {"name": name, "type": kind, **extra}


def sub(name: str, *options: Body, kind: int = 1) -> Body:
    return option(name, kind, options=list(options))


COMMAND_LIMITS: list[tuple[str, Callable[[int], list[Body]], int]] = [
    ("(body)", lambda n: [command(f"c{i}") for i in range(n)], 100),
    ("(body)", lambda n: [context_menu(f"User {i}") for i in range(n)], 5),
    ("(body)", lambda n: [context_menu(f"Message {i}", 3) for i in range(n)], 5),
    ("0.name", lambda n: [command("n" * n)], 32),
    ("0.name", lambda n: [context_menu("N" * n)], 32),
    ("0.description", lambda n: [command(description="d" * n)], 100),
    ("0.options", lambda n: [command(options=[option(f"o{i}") for i in range(n)])], 25),
    ("0.options.0.options", lambda n: [command(options=[sub("set", *[option(f"o{i}") for i in range(n)])])], 25),
    ("0.options", lambda n: [command(options=[sub(f"s{i}") for i in range(n)])], 25),
    ("0.options.0.name", lambda n: [command(options=[option("o" * n)])], 32),
    ("0.options.0.description", lambda n: [command(options=[option(description="d" * n)])], 100),
    ("0.options.0.choices", lambda n: [command(options=[option(choices=[
        {"name": f"c{i}", "value": f"v{i}"} for i in range(n)])])], 25),
    ("0.options.0.choices.0.name", lambda n: [command(options=[option(choices=[{"name": "c" * n, "value": "v"}])])],
     100),
    ("0.options.0.choices.0.value", lambda n: [command(options=[option(choices=[{"name": "c", "value": "v" * n}])])],
     100),
    ("0.options.0.min_length", lambda n: [command(options=[option(min_length=n)])], 6000),
    ("0.options.0.max_length", lambda n: [command(options=[option(max_length=n)])], 6000),
    ("0.name_localizations.de", lambda n: [command(name_localizations={"de": "n" * n})], 32),
    ("0.description_localizations.fr", lambda n: [command(description_localizations={"fr": "d" * n})], 100),
    ("0.options.0.choices.0.name_localizations.ja", lambda n: [command(options=[option(choices=[
        {"name": "c", "value": "v", "name_localizations": {"ja": "c" * n}}])])], 100),
]


@pytest.mark.parametrize(("where", "make", "limit"), COMMAND_LIMITS, ids=[f"{w}<={n}" for w, _, n in COMMAND_LIMITS])
async def test_command_limit_is_exact(fake: FakeDiscord, world: World, where: str,
                                      make: Callable[[int], list[Body]], limit: int) -> None:
    path = f"/applications/{fake.application_id}/guilds/{world.guild_id}/commands"
    accepted = await world.api.ok("PUT", path, make(limit))
    await world.api.refused("PUT", path, make(limit + 1), where)
    assert fake.commands[world.guild_id] == accepted, "a refused overwrite changes nothing"


GOOD_NAMES = ["upscale", "ñandú", "straße", "画像", "नमस्ते", "สวัสดี", "it's", "a-b_c", "4k", "x" * 32]
BAD_NAMES = ["Upscale", "up scale", "a.b", "", "ÑANDÚ", "party🎉", "quota/set", "ǅ", "नमस्ते।", "x" * 33]


@pytest.mark.parametrize("name", GOOD_NAMES)
async def test_chat_input_names_discord_accepts(fake: FakeDiscord, world: World, name: str) -> None:
    path = f"/applications/{fake.application_id}/commands"
    stored = await world.api.ok("PUT", path, [command(name, options=[option(name)])])
    assert [c["name"] for c in stored] == [name]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_chat_input_names_discord_refuses(fake: FakeDiscord, world: World, name: str) -> None:
    path = f"/applications/{fake.application_id}/commands"
    await world.api.refused("PUT", path, [command(name)], "0.name")
    await world.api.refused("PUT", path, [command(options=[option(name)])], "0.options.0.name")
    await world.api.refused("PUT", path, [command(name_localizations={"fr": name})], "0.name_localizations.fr")
    assert "global" not in fake.commands


REFUSED_COMMANDS: list[tuple[str, Any]] = [
    ("", {"name": "upscale"}),  # not a list
    ("0", ["upscale"]),
    ("0.type", [command(type=4)]),
    ("0.description", [{"name": "upscale", "type": 1}]),
    ("0.description", [command(description="")]),
    ("1.name", [command("dup"), command("dup")]),
    ("1.name", [context_menu("Dup"), context_menu("Dup")]),
    ("0.description", [context_menu("High Five", description="Give a high five")]),
    ("0.description_localizations.de", [context_menu("High Five", description="", description_localizations={
        "de": "Abklatschen"})]),
    ("0.options", [context_menu("High Five", options=[option()])]),
    ("0.name", [context_menu("")]),
    ("0.options.1.name", [command(options=[option("x"), option("x", 4)])]),
    ("0.options.0.options.1.name", [command(options=[sub("set", option("x"), option("x"))])]),
    ("0.options", [command(options=[option("a"), option("b", required=True)])]),
    ("0.options", [command(options=[sub("set"), option("x")])]),
    ("0.options.0.options", [command(options=[sub("group", option("x"), kind=2)])]),
    ("0.options.0.options", [command(options=[sub("set", sub("deeper"))])]),
    ("0.options.0.options", [command(options=[sub("set", sub("deeper", kind=2))])]),
    ("0.options.0.options.0.options", [command(options=[sub("group", sub("set", sub("deeper")), kind=2)])]),
    ("0.options.0.type", [command(options=[option(kind=12)])]),
    ("0.options.0.type", [command(options=[option(kind=0)])]),
    ("0.options.0.choices", [command(options=[option(kind=5, choices=[{"name": "yes", "value": True}])])]),
    ("0.options.0.choices.0.value", [command(options=[option(kind=4, choices=[{"name": "one", "value": "1"}])])]),
    ("0.options.0.choices.0.value", [command(options=[option(kind=4, choices=[{"name": "half", "value": 0.5}])])]),
    ("0.options.0.choices.0.value", [command(options=[option(choices=[{"name": "one", "value": 1}])])]),
    ("0.options.0.choices.0.name", [command(options=[option(choices=[{"name": "", "value": "v"}])])]),
    ("0.options.0.autocomplete", [command(options=[option(autocomplete=True, choices=[{"name": "a", "value": "a"}])])]),
    ("0.options.0.autocomplete", [command(options=[option(kind=6, autocomplete=True)])]),
    ("0.options.0.min_value", [command(options=[option(kind=4, min_value=5, max_value=1)])]),
    ("0.options.0.min_value", [command(options=[option(min_value=1)])]),
    ("0.options.0.min_value", [command(options=[option(kind=4, min_value=1.5)])]),
    ("0.options.0.min_length", [command(options=[option(kind=4, min_length=1)])]),
    ("0.options.0.min_length", [command(options=[option(min_length=10, max_length=5)])]),
    ("0.options.0.max_length", [command(options=[option(max_length=0)])]),
    ("0.options.0.channel_types", [command(options=[option(channel_types=[0])])]),
    ("0.options.0.options", [command(options=[option(options=[option("x")])])]),
    ("0.options.0.description", [command(options=[{"name": "video", "type": 3}])]),
    ("0.name_localizations.en", [command(name_localizations={"en": "upscale"})]),
    ("0.name_localizations.fr", [command(name_localizations={"fr": "Agrandir"})]),
    ("0.description_localizations.de", [command(description_localizations={"de": ""})]),
    ("0.options.0.name_localizations.pt-BR", [command(options=[option(name_localizations={"pt-BR": "Vídeo"})])]),
    ("0.options.0.choices.0.name_localizations.xx",
     [command(options=[option(choices=[{"name": "a", "value": "a", "name_localizations": {"xx": "a"}}])])]),
    ("0.default_member_permissions", [command(default_member_permissions="manage_guild")]),
    ("0.default_member_permissions", [command(default_member_permissions=-1)]),
    ("0.dm_permission", [command(dm_permission="no")]),
    ("0.contexts.0", [command(contexts=[3])]),
]


@pytest.mark.parametrize(("where", "commands"), REFUSED_COMMANDS, ids=[f"{i}:{w}" for i, (w, _) in
                                                                       enumerate(REFUSED_COMMANDS)])
async def test_malformed_command_set_is_refused(fake: FakeDiscord, world: World, where: str,
                                                commands: Any) -> None:
    guild = f"/applications/{fake.application_id}/guilds/{world.guild_id}/commands"
    if where == "":
        status, data = await world.api.call("PUT", guild, commands)
        assert (status, data["code"], data["message"]) == (400, 50035, "Invalid Form Body")
    else:
        await world.api.refused("PUT", guild, commands, where)
    assert fake.commands == {}


async def test_well_formed_command_set_is_accepted(fake: FakeDiscord, world: World) -> None:
    everything = [
        command("quota", default_member_permissions="32", dm_permission=False, contexts=[0], integration_types=[0],
                nsfw=False, name_localizations={"de": "kontingent", "pt-BR": "cota"},
                description_localizations={"es-419": "Cuota"}, options=[
                    sub("set", option("limit", 4, required=True, min_value=0, max_value=1000),
                        option("member", 6), option("preset", autocomplete=True, min_length=1, max_length=50)),
                    sub("role", sub("show", option("role", 8, required=True), option("where", 7, channel_types=[0])),
                        kind=2),
                ]),
        command("upscale", default_member_permissions=32, options=[
            option("video", 11), option("url", max_length=2048),
            option("scale", 4, choices=[{"name": "2× (default)", "value": 2, "name_localizations": {"fr": "2×"}}]),
            option("ratio", 10, choices=[{"name": "half", "value": 0.5}], min_value=-1.5, max_value=2**53),
        ]),
        command("dup", default_member_permissions=None),
        context_menu("dup"), context_menu("Upscale This", 3, description=""), context_menu("High Five"),
    ]
    stored = await world.api.ok("PUT", f"/applications/{fake.application_id}/guilds/{world.guild_id}/commands",
                                everything)
    assert [(c["name"], c["type"]) for c in stored] == [(c["name"], c["type"]) for c in everything]
    assert len({c["id"] for c in stored}) == len(everything)


# ---- the real bot against the stricter fake -------------------------------------------------------------
async def test_real_bot_commands_are_accepted(box: Sandbox, bot: UpscaleBot) -> None:
    puts = box.discord.find_requests("PUT", r"/commands$")
    assert puts and all(p.status == 200 for p in puts), [(p.path, p.status) for p in puts]
    names = {c["name"] for scope in box.discord.commands.values() for c in scope}
    assert {"upscale", "tasks", "task", "usage", "quota"} <= names


async def test_discord_py_reports_the_path_and_reads_mentions(box: Sandbox, bot: UpscaleBot) -> None:
    """Through the real client: a refusal names the field, and the computed mentions parse as discord.py's."""
    channel = bot.get_channel(int(box.channel_id))
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send("x" * 2001)
    assert (refused.value.status, refused.value.code) == (400, 50035)
    assert "In content: Must be 2000 or fewer in length." in str(refused.value)
    alice = discord.Object(int(box.alice_id))
    sent = await channel.send(f"<@{box.alice_id}> @everyone.mp4", allowed_mentions=discord.AllowedMentions(
        everyone=False, roles=False, users=[alice]))
    assert [m.id for m in sent.mentions] == [alice.id] and not sent.mention_everyone
    loud = await channel.send("@everyone.mp4", allowed_mentions=discord.AllowedMentions.all())
    assert loud.mention_everyone
