"""Gateway websocket of the loopback fake Discord, and which session holds which shard.

Frames are plain TEXT JSON (discord.py only decompresses binary frames, so text always works).
Each connection has an outgoing queue drained by one writer task, so state changes made from
synchronous code (a test adding a channel, a REST handler creating a message) can emit events in order.

Sharding as Discord does it: IDENTIFY carries `shard: [shard_id, shard_count]` (no field: shard 0 of 1),
READY echoes it and lists only that shard's guilds, and a guild's events go to the session holding shard
(guild_id >> 22) % shard_count; DMs go to shard 0. See ShardTable for what is refused and what is not modelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from sandbox.fake_discord_models import shard_of

if TYPE_CHECKING:
    from sandbox.fake_discord import FakeDiscord

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 9, 10, 11
# Discord's gateway close codes the fake uses (discord.py does not reconnect after any of them).
AUTHENTICATION_FAILED, ALREADY_AUTHENTICATED, INVALID_SHARD, SHARDING_REQUIRED = 4004, 4005, 4010, 4011


class GatewaySession:
    """One websocket connection from a client."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0
        self.session_id = secrets.token_hex(16)
        self.identified = False
        self.ready = False
        self.intents = 0
        self.shard_id = 0
        self.shard_count = 1
        self.sharded = False  # IDENTIFY carried a `shard` field (READY then echoes it)
        self._queue: asyncio.Queue[tuple[str, Callable[[], None] | None]] = asyncio.Queue()

    def send(self, op: int, d: Any = None, t: str | None = None, *,
             on_sent: Callable[[], None] | None = None) -> None:
        """Queue a frame; dispatches (op 0) get the next sequence number now, so order is kept."""
        seq = None
        if op == DISPATCH:
            self.seq += 1
            seq = self.seq
        self._queue.put_nowait((json.dumps({"op": op, "d": d, "s": seq, "t": t}), on_sent))

    async def run_writer(self) -> None:
        while True:
            text, on_sent = await self._queue.get()
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):  # client vanished (e.g. a SIGKILLed bot)
                return
            if on_sent is not None:
                on_sent()


class ShardTable:
    """Which live session holds each shard id, so every event reaches exactly one session.

    One session per shard id: a new IDENTIFY for a held shard takes it over (a reconnecting or restarted
    process); the older connection stays open but gets nothing more. Real Discord would keep feeding both
    (the "bot answers twice" symptom of two copies running); the fake models the reconnect case.
    Refused at IDENTIFY: a malformed shard or id outside 0..count-1 (4010 Invalid shard), a count other
    than the one the sessions on other shards use (4010: Discord itself lets two counts overlap while a bot
    reshards, but in these tests a mismatch is always a configuration mistake), and a shard that would hold
    more than `max_guilds_per_shard` guilds (4011 Sharding required).
    Not modelled: resuming, the identify rate limit (max_concurrency per 5 s) and the daily session start
    limit (GET /gateway/bot only reports it), and Discord queueing events for a shard nobody holds: the
    fake drops them.
    """

    def __init__(self) -> None:
        self.holders: dict[int, GatewaySession] = {}

    @property
    def count(self) -> int | None:
        """The shard count the connected sessions identified with (None when none is connected)."""
        return next((s.shard_count for s in self.holders.values()), None)

    def ready_ids(self) -> list[int]:
        return sorted(sid for sid, s in self.holders.items() if s.ready)

    def all_ready(self) -> bool:
        """At least one shard is held and every held shard got READY and its GUILD_CREATEs."""
        return bool(self.holders) and all(s.ready for s in self.holders.values())

    def shard_for(self, guild_id: str | None) -> tuple[int, int] | None:
        """(shard id, count) that a guild's events (or, for None, DMs) go to; None when nothing is connected."""
        count = self.count
        if count is None:
            return None
        return (0 if guild_id is None else shard_of(guild_id, count)), count

    def route(self, guild_id: str | None) -> GatewaySession | None:
        """The session that receives this guild's events (None: DMs), or None: the event is dropped."""
        shard = self.shard_for(guild_id)
        return None if shard is None else self.holders.get(shard[0])

    def require(self, guild_id: str | None) -> GatewaySession:
        """route(), but a missing or not yet ready session is a test bug: say which shard and how to wait."""
        shard = self.shard_for(guild_id)
        if shard is None:
            raise AssertionError("no bot is connected to the fake gateway (await fake.wait_ready() first)")
        session = self.holders.get(shard[0])
        if session is None or not session.ready:
            where = f"guild {guild_id}" if guild_id is not None else "DMs (always shard 0)"
            raise AssertionError(
                f"no ready bot session holds shard {shard[0]} of {shard[1]} for {where}; ready shards: "
                f"{self.ready_ids()} (await fake.wait_ready(shards=[{shard[0]}]) first)")
        return session

    def refusal(self, session: GatewaySession, guilds_on_shard: int,
                max_guilds: int) -> tuple[int, str] | None:
        """Why Discord would close this IDENTIFY (close code, reason), or None to accept it."""
        others = {s.shard_count for sid, s in self.holders.items() if sid != session.shard_id}
        if others and others != {session.shard_count}:
            return INVALID_SHARD, (f"Invalid shard: count {session.shard_count} disagrees with the "
                                   f"connected shards' count {sorted(others)[0]}.")
        if guilds_on_shard > max_guilds:
            return SHARDING_REQUIRED, "Sharding required."
        return None

    def take(self, session: GatewaySession) -> None:
        self.holders[session.shard_id] = session

    def drop(self, session: GatewaySession) -> None:
        if self.holders.get(session.shard_id) is session:
            del self.holders[session.shard_id]


def parse_shard(d: dict[str, Any]) -> tuple[int, int, bool] | None:
    """IDENTIFY's `shard` as (id, count, sharded); no field is shard 0 of 1; None when Discord says 4010."""
    raw = d.get("shard")
    if raw is None:
        return 0, 1, False
    if not (isinstance(raw, list) and len(raw) == 2 and all(type(x) is int for x in raw)):
        return None
    shard_id, count = raw
    if count < 1 or not 0 <= shard_id < count:
        return None
    return shard_id, count, True


async def serve_gateway(fake: FakeDiscord, request: web.Request) -> web.WebSocketResponse:
    """Run one gateway connection until the client or the fake closes it."""
    ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
    await ws.prepare(request)
    session = GatewaySession(ws)
    fake._sessions.add(session)
    writer = asyncio.create_task(session.run_writer())
    session.send(HELLO, {"heartbeat_interval": fake.heartbeat_interval_ms})
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(msg.data)
            except ValueError:
                await ws.close(code=4002, message=b"Error while decoding payload.")
                break
            if not await _on_frame(fake, session, frame):
                break
    except ConnectionError:  # the client dropped mid-frame
        pass
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        fake._sessions.discard(session)
        fake._shards.drop(session)
        fake._changed()
    return ws


async def _on_frame(fake: FakeDiscord, session: GatewaySession, frame: dict[str, Any]) -> bool:
    """Handle one client frame; False ends the connection."""
    op = frame.get("op")
    if op == HEARTBEAT:
        session.send(HEARTBEAT_ACK)
    elif op == IDENTIFY:
        if not await _identify(fake, session, frame.get("d") or {}):
            return False
    elif op == RESUME:
        # The fake keeps no sessions to resume: tell the client to identify afresh.
        session.send(INVALID_SESSION, False)
    else:
        log.debug("fake gateway ignores op %s", op)
    fake._changed()
    return True


async def _identify(fake: FakeDiscord, session: GatewaySession, d: dict[str, Any]) -> bool:
    """Accept an IDENTIFY (the session takes its shard and gets READY) or close the socket as Discord would."""
    refusal: tuple[int, str] | None = None
    shard = parse_shard(d)
    if str(d.get("token", "")).removeprefix("Bot ") != fake.bot_token:
        refusal = AUTHENTICATION_FAILED, "Authentication failed."
    elif session.identified:
        refusal = ALREADY_AUTHENTICATED, "Already authenticated."
    elif shard is None:
        refusal = INVALID_SHARD, f"Invalid shard {d.get('shard')!r}."
    else:
        session.shard_id, session.shard_count, session.sharded = shard
        on_shard = sum(1 for g in fake._guilds if shard_of(g, session.shard_count) == session.shard_id)
        refusal = fake._shards.refusal(session, on_shard, fake.max_guilds_per_shard)
    if refusal is not None:
        log.info("fake gateway closes an IDENTIFY with %s: %s", *refusal)
        await session.ws.close(code=refusal[0], message=refusal[1].encode()[:123])  # a close reason's limit
        return False
    fake.identify_count += 1
    session.identified = True
    intents = d.get("intents", 0)
    session.intents = intents if isinstance(intents, int) else 0
    fake._shards.take(session)
    _send_ready(fake, session)
    return True


def _send_ready(fake: FakeDiscord, session: GatewaySession) -> None:
    bot = fake._users[fake.bot_user_id].payload()

    def mark_ready() -> None:
        session.ready = True
        fake._changed()

    guild_ids = [g for g in fake._guilds if shard_of(g, session.shard_count) == session.shard_id]
    shard = {"shard": [session.shard_id, session.shard_count]} if session.sharded else {}
    session.send(DISPATCH, {**shard,
        "v": 10, "user": {**bot, "verified": True, "mfa_enabled": False, "flags": 0},
        "guilds": [{"id": g, "unavailable": True} for g in guild_ids],
        "session_id": session.session_id, "resume_gateway_url": fake.gateway_url,
        "application": {"id": fake.application_id, "flags": 0},
        "private_channels": [], "relationships": [], "presences": [], "user_settings": {},
        "guild_join_requests": [], "geo_ordered_rtc_regions": [], "_trace": ["fake-discord"],
    }, "READY", on_sent=None if guild_ids else mark_ready)
    for index, guild_id in enumerate(guild_ids):
        last = index == len(guild_ids) - 1
        session.send(DISPATCH, fake._guild_create_payload(guild_id), "GUILD_CREATE",
                     on_sent=mark_ready if last else None)
