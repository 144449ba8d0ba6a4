"""HealthCheck: what GET /healthz answers, i.e. whether this process can do its work right now.

Healthy means all three of:
- every gateway shard this process holds is connected and has had READY (members' commands arrive over it);
- the database answers a `SELECT 1` within DATABASE_PING_SECONDS (every step of every task writes to it);
- the task poller finished a scan within `stale_after` seconds (it is what queries Evolink and tells members).

The body is small JSON meant for an operator's eyes and a load balancer's status check; it never carries a
setting's value, an error's text (which may name hosts and users) or anything from the tasks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import discord

from storage import Storage

DATABASE_PING_SECONDS = 2.0
# The poller scans at least every POLL_MAX_SECONDS (its idle wait, even with nothing due); three missed scans
# allow for a slow scan or a short database hiccup without flapping, and the floor keeps a small POLL_MAX_SECONDS
# (tests, the sandbox) from turning one garbage-collection pause or busy moment of the event loop into a 503.
STALE_SCANS = 3
STALE_FLOOR_SECONDS = 30.0


def stale_after(poll_max_seconds: float) -> float:
    """Seconds without a poller scan after which the process is reported unhealthy."""
    return max(STALE_SCANS * poll_max_seconds, STALE_FLOOR_SECONDS)


class PollerLike(Protocol):
    @property
    def last_run_at(self) -> float | None: ...


def shard_states(client: discord.Client) -> dict[str, str]:
    """Each shard this process holds -> "connected", or in words why not. Works for a plain Client (one
    connection, shard `client.shard_id` or 0) and for an AutoShardedClient (its `shard_ids`, or all of
    `shard_count`)."""
    closed = client.is_closed()
    ready = client.is_ready()
    if isinstance(client, discord.AutoShardedClient):
        shards = client.shards
        wanted = client.shard_ids if client.shard_ids is not None else (
            range(client.shard_count) if client.shard_count else sorted(shards))
        states = {}
        for shard_id in wanted:
            info = shards.get(shard_id)
            if closed:
                states[str(shard_id)] = "closed"
            elif info is None or info.is_closed():
                states[str(shard_id)] = "disconnected"
            else:
                states[str(shard_id)] = "connected" if ready else "waiting for READY"
        return states or {"-": "closed" if closed else "not connected yet"}
    ws = getattr(client, "ws", None)  # None until the first connection; then the last one, open or not
    if closed:
        state = "closed"
    elif ws is None:
        state = "not connected yet"
    elif not ws.open:
        state = "disconnected"
    else:
        state = "connected" if ready else "waiting for READY"
    return {str(client.shard_id or 0): state}


class HealthCheck:
    """Answers /healthz from the Discord client, the database and the poller; `clock` is wall time (as the
    poller's), replaceable in tests."""

    def __init__(self, client: discord.Client, storage: Storage, poller: PollerLike, *, stale_after: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.storage = storage
        self.poller = poller
        self.stale_after = stale_after
        self.clock = clock

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, body). Unhealthy bodies add "reasons", one sentence per problem."""
        reasons: list[str] = []
        shards = shard_states(self.client)
        for shard_id, state in shards.items():
            if state != "connected":
                reasons.append(f"Discord gateway shard {shard_id} is not connected ({state})")
        database = await self._database()
        if database != "ok":
            reasons.append(f"the database does not answer ({database})")
        poller: dict[str, Any] = {"limit_seconds": self.stale_after}
        last = self.poller.last_run_at
        if last is None:
            poller["last_run_seconds_ago"] = None
            reasons.append("the task poller has not run yet")
        else:
            ago = max(0.0, self.clock() - last)
            poller["last_run_seconds_ago"] = round(ago, 3)
            if ago > self.stale_after:
                reasons.append(f"the task poller last ran {ago:.0f} s ago (more than {self.stale_after:g} s): "
                               "tasks are not being followed")
        body: dict[str, Any] = {"status": "ok" if not reasons else "unhealthy", "shards": shards,
                                "database": database, "poller": poller}
        if reasons:
            body["reasons"] = reasons
        return not reasons, body

    async def _database(self) -> str:
        """"ok", or what happened in a few words (the exception's type only: its text may name host or user)."""
        try:
            async with asyncio.timeout(DATABASE_PING_SECONDS):
                await self.storage.ping()
        except TimeoutError:
            return f"no answer within {DATABASE_PING_SECONDS:g} s"
        except asyncio.CancelledError:
            raise
        except Exception as error:
            return f"error: {type(error).__name__}"
        return "ok"

