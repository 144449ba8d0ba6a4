"""A loopback fake of Discord (gateway websocket + REST v10) that the unmodified discord.py client drives.

Why: no machine here reaches Discord, and only real sockets let the bot run as its own process
(start-up, SIGKILL, restart). Point discord.py at it with::

    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

The fake models the Discord rules that break real bots: the 3 s acknowledgement deadline (10062), a
second acknowledgement (40060), 15-minute interaction tokens (50027), closed DMs (50007), deleted
channels and messages (10003 / 10008), edit rate limits (429), and `enforce_nonce` deduplication.
It refuses what Discord refuses in what a bot sends (message, embed, nonce, allowed_mentions and component
limits, interaction callbacks, command definitions: 400 / 50035 naming the field, see
`sandbox.fake_discord_rules`), and computes who a message pings (`mentions`, `mention_roles`,
`mention_everyone`) from its content and allowed_mentions.
Time-based rules use the fake's own clock, which `advance()` moves forward without sleeping.

Members act on messages too (`sandbox.fake_discord_components`): `post_user_message()` with attachments,
`message_command()` runs a message context menu on it, and `press_button()` / `select()` use the components of a
message the bot sent (MESSAGE_COMPONENT interactions, answered with callback 4, 5, 6 or 7).
Languages are state: `set_user_locale()` (each interaction's `locale`) and `set_guild_locale()` (`guild_locale`,
`preferred_locale` in GUILD_CREATE / GUILD_UPDATE / GET /guilds/{id}).

Sharding is modelled for several bot processes each holding some shards (`sandbox.fake_discord_gateway`):
`add_guild(shard=(id, count))` places a guild, `wait_ready(shards=[...])` waits for several sessions, and
`FakeInteraction.shard_id` tells which shard's session received an interaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from sandbox.fake_discord_components import MessageInteractions
from sandbox.fake_discord_gateway import DISPATCH, HEARTBEAT, GatewaySession, ShardTable, serve_gateway
from sandbox.fake_discord_interactions import build_command_data, find_command, make_resolver
from sandbox.fake_discord_models import (
    DEFAULT_EVERYONE_PERMISSIONS,
    ChangeSignal,
    Channel,
    DiscordError,
    FakeInteraction,
    Guild,
    Hold,
    Injection,
    Member,
    RecordedRequest,
    Role,
    User,
    channel_payload,
    iso_now,
    make_attachment_payload,
    public,
    shard_of,
    snowflake,
)
from sandbox.fake_discord_rest import RestApi
from sandbox.fake_discord_rules import known_locale

__all__ = ["FakeDiscord", "FakeInteraction", "RecordedRequest", "shard_of"]


GUILD_MESSAGES, DIRECT_MESSAGES = 1 << 9, 1 << 12  # gateway intent bits


class FakeDiscord(MessageInteractions):
    """In-memory Discord served on 127.0.0.1: world building, driving the bot, observing what it did."""

    attachment_size_limit = 10 * 1024 * 1024

    def __init__(self, *, bot_token: str = "fake-bot-token", ack_timeout: float = 3.0,
                 token_ttl: float = 900.0, edit_min_interval: float = 0.0, nonce_window: float = 300.0,
                 heartbeat_interval_ms: int = 41250, recommended_shards: int = 1,
                 max_guilds_per_shard: int = 2500) -> None:
        self.bot_token = bot_token
        self.recommended_shards = recommended_shards  # GET /gateway/bot `shards`
        self.max_guilds_per_shard = max_guilds_per_shard  # more on one shard: IDENTIFY closed with 4011
        self.ack_timeout = ack_timeout
        self.token_ttl = token_ttl
        self.edit_min_interval = edit_min_interval
        self.nonce_window = nonce_window
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.application_id = snowflake()
        self.bot_user_id = snowflake()
        self.owner_user_id = snowflake()
        self.api_base = ""
        self.gateway_url = ""
        self.requests: list[RecordedRequest] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.identify_count = 0
        self._users: dict[str, User] = {
            self.bot_user_id: User(self.bot_user_id, "upscale-bot", bot=True),
            self.owner_user_id: User(self.owner_user_id, "bot-owner"),
        }
        self._guilds: dict[str, Guild] = {}
        self._channels: dict[str, Channel] = {}
        self._roles: dict[str, Role] = {}
        self._dm_channels: dict[str, str] = {}
        self._messages: dict[str, dict[str, Any]] = {}
        self._interactions: dict[str, FakeInteraction] = {}
        self._tokens: dict[str, FakeInteraction] = {}
        self._nonces: dict[tuple[str, str], tuple[str, float]] = {}
        self._command_ids: dict[tuple[str, str, int], str] = {}
        self._injections: list[Injection] = []
        self._holds: list[Hold] = []
        self._sessions: set[GatewaySession] = set()
        self._shards = ShardTable()
        self._signal = ChangeSignal()
        self._clock_offset = 0.0
        self._rest = RestApi(self)
        self._runner: web.AppRunner | None = None
        self._closed = False

    # ---- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Serve on 127.0.0.1 on an ephemeral port; sets api_base and gateway_url."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._serve_gateway)
        app.router.add_route("*", "/{tail:.*}", self._rest.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.api_base = f"http://127.0.0.1:{port}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{port}/gateway"

    async def close(self) -> None:
        """Close every websocket and stop the server; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for hold in self._holds:
            hold.release()
        for session in list(self._sessions):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.ws.close(code=1001, message=b"fake discord closing"), 2)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve_gateway(self, request: web.Request) -> web.WebSocketResponse:
        return await serve_gateway(self, request)

    @property
    def _current(self) -> GatewaySession | None:
        """The session holding shard 0 (the only one for an unsharded bot)."""
        return self._shards.holders.get(0)

    @property
    def shard_count(self) -> int | None:
        """The shard count the connected sessions identified with; None when no session is connected."""
        return self._shards.count

    def ready_shards(self) -> list[int]:
        """Shard ids held by a session that got READY and all its GUILD_CREATEs."""
        return self._shards.ready_ids()

    # ---- clock and change notification ----------------------------------------------------------
    def now(self) -> float:
        """The fake's clock: time.monotonic() plus everything advance() added."""
        return time.monotonic() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (ack deadline, token expiry, nonce window, edit spacing)."""
        self._clock_offset += seconds
        self._changed()

    def _changed(self) -> None:
        self._signal.notify()

    def _record(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        self._changed()

    # ---- world building -------------------------------------------------------------------------
    def add_guild(self, name: str = "Test Server", *, shard: tuple[int, int] | None = None,
                  locale: str = "en-US") -> str:
        """A server the bot is in, with its @everyone role; returns the guild id.

        `shard=(shard_id, shard_count)` picks an id on that shard: (id >> 22) % shard_count == shard_id.
        `locale` is the server's preferred locale (see set_guild_locale).
        """
        guild = Guild(id=snowflake(shard), name=name, owner_id=self.owner_user_id,
                      preferred_locale=known_locale(locale))
        self._guilds[guild.id] = guild
        everyone = Role(guild.id, guild.id, "@everyone", DEFAULT_EVERYONE_PERMISSIONS, 0)
        self._roles[everyone.id] = everyone
        guild.role_ids.append(everyone.id)
        guild.members[self.bot_user_id] = Member(self.bot_user_id, [], 0)
        # A join: no `unavailable` key (discord.py then fires guild_join, not guild_available).
        joined = {k: v for k, v in self._guild_create_payload(guild.id).items() if k != "unavailable"}
        self._dispatch("GUILD_CREATE", joined, guild.id)
        return guild.id

    def add_channel(self, guild_id: str, name: str = "general") -> str:
        guild = self._guild(guild_id)
        channel = Channel(id=snowflake(), type=0, name=name, guild_id=guild_id,
                          position=len(guild.channel_ids))
        self._channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        self._dispatch("CHANNEL_CREATE", channel_payload(channel, self._users), guild_id)
        return channel.id

    def add_member(self, guild_id: str, username: str, *, dms_open: bool = True, permissions: int = 0,
                   roles: list[str] | None = None, user_id: str | None = None) -> str:
        """A new user who is a member of the guild; `permissions` adds to @everyone and the roles.

        With `user_id`, that existing user joins this guild too (same person in two servers; `username`
        and `dms_open` are then the user's own and not changed).
        """
        guild = self._guild(guild_id)
        for role_id in roles or []:
            if self._roles.get(role_id) is None or self._roles[role_id].guild_id != guild_id:
                raise AssertionError(f"role {role_id} is not a role of guild {guild_id}")
        user = self._user(user_id) if user_id is not None else User(snowflake(), username, dms_open=dms_open)
        self._users[user.id] = user
        guild.members[user.id] = Member(user.id, list(roles or []), permissions)
        return user.id

    def add_role(self, guild_id: str, name: str, permissions: int = 0) -> str:
        guild = self._guild(guild_id)
        role = Role(snowflake(), guild_id, name, permissions, len(guild.role_ids))
        self._roles[role.id] = role
        guild.role_ids.append(role.id)
        self._dispatch("GUILD_ROLE_CREATE", {"guild_id": guild_id, "role": role.payload()}, guild_id)
        return role.id

    def delete_channel(self, channel_id: str) -> None:
        """Later REST calls on the channel answer 404 code 10003."""
        channel = self._channel(channel_id)
        channel.deleted = True
        if channel.guild_id is not None:
            self._dispatch("CHANNEL_DELETE", channel_payload(channel, self._users), channel.guild_id)
        self._changed()

    def delete_message(self, channel_id: str, message_id: str) -> None:
        """A moderator deletes a message: later reads and edits answer 404 code 10008."""
        message = self._messages.get(message_id)
        if message is None or message["channel_id"] != channel_id:
            raise AssertionError(f"no message {message_id} in channel {channel_id}")
        self._rest.remove(message)

    def set_dms_open(self, user_id: str, open: bool) -> None:
        self._user(user_id).dms_open = open

    def set_user_locale(self, user_id: str, locale: str) -> None:
        """The member's client language from now on: the `locale` of every interaction they send (ValueError for
        a locale Discord does not have). Discord sends it nowhere else; the bot learns it from interactions only."""
        self._user(user_id).locale = known_locale(locale)

    def user_locale(self, user_id: str) -> str:
        """The member's client language (what their Discord shows timestamps in)."""
        return self._user(user_id).locale

    def set_guild_locale(self, guild_id: str, locale: str) -> None:
        """An admin changes the server's preferred locale (ValueError for one Discord does not have): later
        interactions carry it as `guild_locale`, and the connected bot gets a GUILD_UPDATE with the guild object,
        as from Discord, so discord.py's `guild.preferred_locale` follows.

        Then the fake asks for a heartbeat (op 1, which Discord may send at any time): the client answers once it
        has read the GUILD_UPDATE, and that answer wakes wait_for(), so a predicate on the bot's guild cache is
        re-checked after the bot saw the change."""
        self._guild(guild_id).preferred_locale = known_locale(locale)
        self._dispatch("GUILD_UPDATE", self._guild_payload(guild_id), guild_id)
        session = self._shards.route(guild_id)
        if session is not None:
            session.send(HEARTBEAT)

    def make_attachment(self, filename: str = "clip.mp4", *, size: int = 1_234_567,
                        content_type: str | None = "video/mp4", url: str | None = None) -> dict[str, Any]:
        """An attachment object as Discord's CDN serves it, to pass as an ATTACHMENT option value."""
        return make_attachment_payload(filename, size, content_type, url)

    def dm_channel_id(self, user_id: str) -> str:
        """The DM channel between the bot and the user (created on first use, then always the same)."""
        self._user(user_id)
        if user_id not in self._dm_channels:
            channel = Channel(id=snowflake(), type=1, name=None, recipient_id=user_id)
            self._channels[channel.id] = channel
            self._dm_channels[user_id] = channel.id
        return self._dm_channels[user_id]

    def member_permissions(self, guild_id: str, user_id: str) -> int:
        """@everyone | the member's roles | the member's own extra bits."""
        member = self._guild(guild_id).members.get(user_id)
        if member is None:
            raise AssertionError(f"user {user_id} is not a member of guild {guild_id}")
        bits = self._roles[guild_id].permissions | member.permissions
        for role_id in member.roles:
            bits |= self._roles[role_id].permissions
        return bits

    # ---- driving --------------------------------------------------------------------------------
    async def wait_ready(self, timeout: float = 10, *, shards: Iterable[int] | None = None) -> None:
        """Wait until sessions have IDENTIFYed and got READY plus every GUILD_CREATE of their shard.

        Without `shards`: at least one session is connected and every connected one is ready (a process
        holding several shards identifies them one after another, so pass `shards` to wait for all).
        With `shards`: each listed shard id is held by a ready session.
        """
        if shards is None:
            await self.wait_for(self._shards.all_ready, timeout, what="a client to IDENTIFY and receive READY")
            return
        wanted = set(shards)
        await self.wait_for(lambda: wanted <= set(self._shards.ready_ids()), timeout,
                            what=f"sessions holding shards {sorted(wanted)} to receive READY")

    async def slash(self, name: str, *, user_id: str, channel_id: str, guild_id: str | None = None,
                    options: dict[str, object] | None = None, subcommand: list[str] | None = None,
                    permissions: int | None = None, strict: bool = True,
                    locale: str | None = None) -> FakeInteraction:
        """Dispatch a slash command (INTERACTION_CREATE type 2) as `user_id` would send it; `locale` is their
        client language for this one interaction (default: the user's, see set_user_locale).

        Options are checked against the synced schema the way Discord's client does (names, types,
        required, choices); strict=False skips the required/choices checks.

        With guild_id None it is a DM interaction in the user's DM channel with the bot (a
        `channel_id` that is not a DM channel is replaced by it; see FakeInteraction.channel_id).
        """
        return self._interact(2, name, user_id=user_id, channel_id=channel_id, guild_id=guild_id,
                              options=options or {}, subcommand=subcommand, permissions=permissions,
                              strict=strict, locale=locale)

    async def autocomplete(self, name: str, *, user_id: str, channel_id: str, guild_id: str | None,
                           options: dict[str, object], focused: str, subcommand: list[str] | None = None,
                           timeout: float = 5) -> list[dict[str, Any]]:
        """Dispatch an autocomplete request (type 4) and return the choices the bot answered."""
        inter = self._interact(4, name, user_id=user_id, channel_id=channel_id, guild_id=guild_id,
                               options=options, subcommand=subcommand, permissions=None, focused=focused)
        ack = await inter.wait_ack(timeout)
        if ack.get("type") != 8:
            raise AssertionError(f"autocomplete answered with callback type {ack.get('type')}, not 8")
        return list((ack.get("data") or {}).get("choices") or [])

    def _interact(self, kind: int, name: str, *, user_id: str, channel_id: str, guild_id: str | None,
                  options: dict[str, object], subcommand: list[str] | None, permissions: int | None,
                  focused: str | None = None, strict: bool = True, locale: str | None = None) -> FakeInteraction:
        payload, session = self._interaction_base(kind, user_id=user_id, channel_id=channel_id, guild_id=guild_id,
                                                  permissions=permissions, locale=locale)
        command, guild_scoped = find_command(self.commands, name, guild_id)
        payload["data"] = build_command_data(command, guild_scoped=guild_scoped, guild_id=guild_id,
                                             options=options, subcommand=subcommand,
                                             resolve=make_resolver(self, guild_id), focused=focused,
                                             strict=strict)
        return self._send_interaction(payload, session)

    # ---- observing ------------------------------------------------------------------------------
    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """Copies of the non-ephemeral messages now in the channel, oldest first."""
        channel = self._channel(channel_id)
        return [copy.deepcopy(self._messages[mid]) for mid in channel.message_ids]

    def dm_messages(self, user_id: str) -> list[dict[str, Any]]:
        """Copies of the messages in the user's DM channel with the bot, oldest first."""
        channel_id = self._dm_channels.get(user_id)
        return self.channel_messages(channel_id) if channel_id else []

    def find_requests(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path matches re.search(path_regex)."""
        return [r for r in self.requests if r.method == method.upper() and re.search(path_regex, r.path)]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10,
                       *, what: str | None = None) -> Any:
        """Re-evaluate predicate() after every state change; return its first truthy value.

        State changes are the fake's own (a request recorded, a message created/edited/deleted, a
        gateway frame, advance()); a predicate on bot-side state alone is only re-checked on those.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = ", ".join(str(r) for r in self.requests[-8:]) or "none"
                raise TimeoutError(f"fake discord: timed out after {timeout}s waiting for "
                                   f"{what or getattr(predicate, '__qualname__', predicate)}; "
                                   f"last requests: {recent}")
            with contextlib.suppress(TimeoutError):
                await self._signal.wait(remaining)

    def inject(self, method: str, path_regex: str, status: int, *, code: int = 0, message: str = "injected",
               times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` requests matching method + re.search(path_regex, path) with an error.

        The path is without /api/v10. discord.py retries 429 after `retry_after` (default 0.01 s) and
        500/502/504 after 1 + 2n seconds; other statuses raise at once.
        """
        if status == 429 and retry_after is None:
            retry_after = 0.01
        error = DiscordError(status, code, message, retry_after=retry_after)
        self._injections.append(Injection(method.upper(), path_regex, error, times))

    def hold(self, method: str, path_regex: str, *, times: int = 1) -> Hold:
        """Carry out the next `times` matching requests but hold their answers until `release()` (or close)."""
        hold = Hold(method.upper(), path_regex, times)
        self._holds.append(hold)
        return hold

    def _take_hold(self, method: str, path: str) -> Hold | None:
        for hold in self._holds:
            if hold.method == method and re.search(hold.path_regex, path):
                hold.times -= 1
                hold.held += 1
                if hold.times <= 0:
                    self._holds.remove(hold)
                return hold
        return None

    def _take_injection(self, method: str, path: str) -> DiscordError | None:
        for injection in self._injections:
            if injection.method == method and re.search(injection.path_regex, path):
                injection.times -= 1
                if injection.times <= 0:
                    self._injections.remove(injection)
                e = injection.error
                return DiscordError(e.status, e.code, e.message, retry_after=e.retry_after)
        return None

    # ---- payloads and events --------------------------------------------------------------------
    def _guild(self, guild_id: str) -> Guild:
        if guild_id not in self._guilds:
            raise AssertionError(f"unknown guild {guild_id}")
        return self._guilds[guild_id]

    def _channel(self, channel_id: str) -> Channel:
        if channel_id not in self._channels:
            raise AssertionError(f"unknown channel {channel_id}")
        return self._channels[channel_id]

    def _user(self, user_id: str) -> User:
        if user_id not in self._users:
            raise AssertionError(f"unknown user {user_id}")
        return self._users[user_id]

    def _member_payload(self, guild_id: str, user_id: str) -> dict[str, Any]:
        member = self._guild(guild_id).members[user_id]
        return {"user": self._users[user_id].payload(), "roles": list(member.roles),
                "joined_at": member.joined_at, "nick": None, "avatar": None, "premium_since": None,
                "communication_disabled_until": None, "deaf": False, "mute": False, "pending": False,
                "flags": 0}

    def _guild_payload(self, guild_id: str) -> dict[str, Any]:
        """The guild object (GET /guilds/{id}, GUILD_UPDATE): no members, channels or other GUILD_CREATE extras."""
        guild = self._guilds[guild_id]
        return {
            "id": guild.id, "name": guild.name, "icon": None, "splash": None, "discovery_splash": None,
            "banner": None, "description": None, "owner_id": guild.owner_id,
            "roles": [self._roles[r].payload() for r in guild.role_ids], "emojis": [], "stickers": [],
            "features": [], "preferred_locale": guild.preferred_locale, "premium_tier": 0,
            "premium_subscription_count": 0, "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "afk_timeout": 300,
            "afk_channel_id": None, "system_channel_id": None, "system_channel_flags": 0, "application_id": None,
            "vanity_url_code": None, "max_members": 500000,
        }

    def _guild_create_payload(self, guild_id: str) -> dict[str, Any]:
        guild = self._guilds[guild_id]
        channels = [self._channels[c] for c in guild.channel_ids if not self._channels[c].deleted]
        return {
            **self._guild_payload(guild_id), "unavailable": False,
            "joined_at": iso_now(), "large": False, "member_count": len(guild.members),
            "channels": [channel_payload(c, self._users) for c in channels],
            "members": [self._member_payload(guild.id, u) for u in guild.members],
            "threads": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [], "voice_states": [], "presences": [],
        }

    def _dispatch(self, event: str, data: dict[str, Any], guild_id: str | None) -> None:
        """Send a gateway event to the session holding the guild's shard (DMs: shard 0).

        With no such session the event is dropped: Discord would replay it to a resumed session,
        but the fake keeps no sessions to resume (a new IDENTIFY gets the state in READY/GUILD_CREATE).
        """
        session = self._shards.route(guild_id)
        if session is not None:
            session.send(DISPATCH, data, event)
            self._changed()

    def _emit_message(self, event: str, message: dict[str, Any]) -> None:
        channel = self._channels[message["channel_id"]]
        # Like Discord: message events only for the intents the receiving session identified with.
        needed = GUILD_MESSAGES if channel.guild_id is not None else DIRECT_MESSAGES
        session = self._shards.route(channel.guild_id)
        if session is None or not session.intents & needed:
            return
        if event == "MESSAGE_DELETE":
            data: dict[str, Any] = {"id": message["id"], "channel_id": channel.id}
        else:
            data = public(message)
        if channel.guild_id is not None:
            data["guild_id"] = channel.guild_id
            if event != "MESSAGE_DELETE":
                member = self._member_payload(channel.guild_id, self.bot_user_id)
                member.pop("user")
                data["member"] = member
        self._dispatch(event, data, channel.guild_id)
