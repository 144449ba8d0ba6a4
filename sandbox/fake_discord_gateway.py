"""Gateway websocket of the loopback fake Discord.

Frames are plain TEXT JSON (discord.py only decompresses binary frames, so text always works).
Each connection has an outgoing queue drained by one writer task, so state changes made from
synchronous code (a test adding a channel, a REST handler creating a message) can emit events in order.
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

if TYPE_CHECKING:
    from sandbox.fake_discord import FakeDiscord

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 9, 10, 11


class GatewaySession:
    """One websocket connection from a client."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0
        self.session_id = secrets.token_hex(16)
        self.identified = False
        self.ready = False
        self.intents = 0
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
        if fake._current is session:
            fake._current = None
        fake._changed()
    return ws


async def _on_frame(fake: FakeDiscord, session: GatewaySession, frame: dict[str, Any]) -> bool:
    """Handle one client frame; False ends the connection."""
    op = frame.get("op")
    if op == HEARTBEAT:
        session.send(HEARTBEAT_ACK)
    elif op == IDENTIFY:
        token = (frame.get("d") or {}).get("token", "")
        if token.removeprefix("Bot ") != fake.bot_token:
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return False
        fake.identify_count += 1
        session.identified = True
        intents = (frame.get("d") or {}).get("intents", 0)
        session.intents = intents if isinstance(intents, int) else 0
        fake._current = session
        _send_ready(fake, session)
    elif op == RESUME:
        # The fake keeps no sessions to resume: tell the client to identify afresh.
        session.send(INVALID_SESSION, False)
    else:
        log.debug("fake gateway ignores op %s", op)
    fake._changed()
    return True


def _send_ready(fake: FakeDiscord, session: GatewaySession) -> None:
    bot = fake._users[fake.bot_user_id].payload()

    def mark_ready() -> None:
        session.ready = True
        fake._changed()

    guild_ids = list(fake._guilds)
    session.send(DISPATCH, {
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
