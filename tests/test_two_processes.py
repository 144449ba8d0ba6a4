"""Two real bot processes (`python -m bot`) on one PostgreSQL database, each holding one of two gateway shards.

Why: the scale-out contract (design.md) promises that a community can split the bot over processes that share a
database: each answers only its own shard's members, the commands are synced once, any process delivers any task,
and when one process dies the others take its tasks over once their leases run out, still telling every member
exactly once and never repeating a paid POST. Only separate processes, one of them SIGKILLed, can show that.

The fake Discord has guild g0 on shard 0 and guild g1 on shard 1 of 2. Process "zero" holds shard 0 (and syncs the
commands), process "one" holds shard 1. Waits are on the fakes' events and the processes' logs, never on the clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.config import LIMIT_NAMES
from bot.quota import QuotaService
from sandbox.offline import SANDBOX_API_KEY, SANDBOX_BOT_TOKEN, Sandbox
from sandbox.process import BotProcess
from storage import NewTask, Storage
from tests.helpers import embed_text, mentions, metric, send_attempts, start_upscale, stored_task, wait_told

pytestmark = pytest.mark.backends("postgres")

LEASE_SECONDS = 2.0
EVOLINK_TIMEOUT_SECONDS = 3.0
# A takeover happens within a poller scan (POLL_MAX_SECONDS) of a lease running out; this much more is a stuck one.
PROMPT_SECONDS = 5.0
PUBLIC = "https://callbacks.example.com/evolink"
# Both processes: two shards, commands synced globally (one PUT), no quota in the way, fast polls, short leases.
SHARED_ENV = {
    "DISCORD_SHARD_COUNT": "2",
    "DISCORD_GUILD_IDS": "",
    "POLL_MIN_SECONDS": "0.05",
    "POLL_MAX_SECONDS": "0.5",  # a process renews the leases of the tasks it polls well within LEASE_SECONDS
    "LEASE_SECONDS": f"{LEASE_SECONDS:g}",
    "EVOLINK_TIMEOUT_SECONDS": f"{EVOLINK_TIMEOUT_SECONDS:g}",
    **{f"DEFAULT_{name.upper()}": "" for name in LIMIT_NAMES},
}


@dataclass
class World:
    """g0 on shard 0 and g1 on shard 1 of 2, with a channel each; alice is in both, bob in g0, carol in g1."""

    g0: str
    c0: str
    g1: str
    c1: str
    alerts: str
    alice: str
    bob: str
    carol: str

    def channel(self, guild: str) -> str:
        return self.c0 if guild == self.g0 else self.c1

    def shard(self, guild: str) -> int:
        return 0 if guild == self.g0 else 1


@pytest.fixture
def world(box: Sandbox) -> World:
    fake = box.discord
    g0, g1 = fake.add_guild("zero", shard=(0, 2)), fake.add_guild("one", shard=(1, 2))
    c0, c1 = fake.add_channel(g0, "lab-zero"), fake.add_channel(g1, "lab-one")
    alerts = fake.add_channel(g0, "operator-alerts")
    alice = fake.add_member(g0, "alice")
    fake.add_member(g1, "alice", user_id=alice)
    return World(g0, c0, g1, c1, alerts, alice, fake.add_member(g0, "bob"), fake.add_member(g1, "carol"))


class Fleet:
    """Bot processes on shards of one database, each with its own log; every one is killed at teardown."""

    def __init__(self, box: Sandbox, database_url: str, tmp_path: Path) -> None:
        self.box = box
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.started: list[BotProcess] = []

    async def start(self, shard: int, **env: str) -> BotProcess:
        """`python -m bot` holding `shard` of 2; returns once its shard's session got READY."""
        settings = self.box.env(self.database_url, **{**SHARED_ENV, "DISCORD_SHARD_IDS": str(shard), **env})
        process = BotProcess(settings, self.tmp_path / f"shard{shard}-{len(self.started)}.log")
        self.started.append(process)
        await process.start_connected(self.box.discord)
        await self.box.discord.wait_ready(shards=[shard])
        return process

    async def sync_commands(self) -> None:
        """`python -m bot sync`: the slash commands, as an operator syncs them before starting a process that does
        not hold shard 0 (only the shard-0 process syncs at start)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EVOLINK_"))}
        env.update(self.box.env(self.database_url, **SHARED_ENV))
        sync = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "sync", cwd=self.tmp_path, env=env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output, _ = await asyncio.wait_for(sync.communicate(), 30)
        assert sync.returncode == 0, output.decode(errors="replace")


@pytest.fixture
async def fleet(box: Sandbox, world: World, database_url: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    running = Fleet(box, database_url, tmp_path)
    try:
        yield running
    finally:
        for process in running.started:
            await process.kill()
            output = process.output()
            assert SANDBOX_BOT_TOKEN not in output and SANDBOX_API_KEY not in output, "a secret reached the log"


async def get(session: aiohttp.ClientSession, process: BotProcess, path: str) -> tuple[int, str]:
    async with session.get(f"http://127.0.0.1:{process.http_port()}{path}") as response:
        return response.status, await response.text()


async def scrape(session: aiohttp.ClientSession, process: BotProcess, name: str, **labels: str) -> float | None:
    status, text = await get(session, process, "/metrics")
    assert status == 200, text
    return metric(text, name, **labels)


async def upscale(box: Sandbox, world: World, guild: str, user: str, clip: str) -> tuple[Any, str]:
    """/upscale in `guild` (reaching the process holding its shard); (interaction, upstream id) once the card shows."""
    return await start_upscale(box, user, guild_id=guild, channel_id=world.channel(guild),
                               url=f"https://example.com/{clip}.mp4")


def result(upstream_id: str) -> str:
    return f"https://cdn.evolink.ai/sample/{upstream_id}.mp4"


def once(*numbers: int) -> Counter[tuple[int | None, str]]:
    """One DM attempt and one channel attempt per task, nothing else."""
    return Counter({key: 1 for number in numbers for key in ((number, "d"), (number, "c"))})


async def number(storage: Storage, upstream_id: str) -> int:
    row = await storage.get_task_by_upstream_id(upstream_id)
    assert row is not None
    return row.id


# ---- 1. each process its own shard; commands synced once; /healthz and /metrics on both ------------------------

async def test_each_process_gets_only_its_shard_the_commands_are_synced_once_and_both_answer_health_and_metrics(
        box: Sandbox, world: World, fleet: Fleet, storage: Storage, session: aiohttp.ClientSession) -> None:
    one = await fleet.start(1)
    assert box.discord.find_requests("PUT", r"/commands$") == [], "the process without shard 0 syncs nothing"
    zero = await fleet.start(0)
    await box.discord.wait_ready(shards=[0, 1])
    assert len(box.discord.find_requests("PUT", r"/commands$")) == 1, "synced once, by the shard-0 process"
    assert "command(s) globally" in zero.output() and "synced" not in one.output()

    holders = {0: zero, 1: one}
    jobs = [(world.g0, world.alice), (world.g1, world.alice), (world.g1, world.carol), (world.g0, world.bob)]
    started = []
    for n, (guild, user) in enumerate(jobs):
        interaction, upstream_id = await upscale(box, world, guild, user, f"clip{n}")
        shard = world.shard(guild)
        assert interaction.shard_id == shard, "the guild's interaction went to its shard's session"
        assert f"submitted as {upstream_id}" in holders[shard].output(), "submitted by the process holding the shard"
        assert f"submitted as {upstream_id}" not in holders[1 - shard].output()
        started.append((interaction, upstream_id, guild, user))
    sessions = {shard: {i.session_id for i, _, g, _ in started if world.shard(g) == shard} for shard in (0, 1)}
    assert len(sessions[0]) == len(sessions[1]) == 1 and sessions[0] != sessions[1], "one session per process"

    for shard, process in holders.items():
        await process.wait_output("connected as")  # discord.py's READY (it waits for the guilds after the fake's)
        status, text = await get(session, process, "/healthz")
        assert status == 200, text
        body = json.loads(text)
        assert body["shards"] == {str(shard): "connected"} and body["database"] == "ok", body
        assert await scrape(session, process, "upscale_tasks_submitted_total") == 2, "two jobs through each process"
        assert await scrape(session, process, "upscale_tasks_active") == 4, "counted in the shared database"
        assert await scrape(session, process, "upscale_lease_takeovers_total") is not None

    # Both pollers run over the same tasks: each member is still told once.
    for _, upstream_id, _, _ in started:
        box.evolink.complete(upstream_id, result(upstream_id))
    for _, upstream_id, guild, user in started:
        await wait_told(box, user, result(upstream_id), world.channel(guild))
    numbers = [await number(storage, upstream_id) for _, upstream_id, _, _ in started]
    await box.discord.wait_for(lambda: sum(send_attempts(box).values()) >= 2 * len(numbers))
    for process in (zero, one):
        assert await process.terminate() == 0, process.output()[-3000:]
    assert send_attempts(box) == once(*numbers)
    assert box.evolink.submissions() == len(jobs)


# ---- 2. one process SIGKILLed mid-run: the other takes its tasks over after the lease --------------------------

async def test_a_sigkilled_process_s_tasks_are_taken_over_after_the_lease_and_every_member_is_told_once(
        box: Sandbox, world: World, fleet: Fleet, storage: Storage, session: aiohttp.ClientSession) -> None:
    """Process "one" runs alone first, so its poller claims g1's jobs, and it keeps their leases by polling them well
    within LEASE_SECONDS. It is killed while they run upstream, one of them mid-delivery: the channel post created
    at Discord, its answer held, so the kill lands between the send and its record. "zero" takes them over."""
    await fleet.sync_commands()
    one = await fleet.start(1)
    victims = [await upscale(box, world, world.g1, user, f"one-{n}")
               for n, user in enumerate((world.alice, world.carol, world.carol))]
    await box.evolink.wait_for(lambda: all(box.evolink.queries(t) >= 1 for _, t in victims), timeout=10)
    zero = await fleet.start(0)
    survivors = [await upscale(box, world, world.g0, user, f"zero-{n}")
                 for n, user in enumerate((world.alice, world.bob, world.bob))]
    jobs = [(world.g1, world.alice), (world.g1, world.carol), (world.g1, world.carol),
            (world.g0, world.alice), (world.g0, world.bob), (world.g0, world.bob)]
    upstream_ids = [t for _, t in victims + survivors]

    held_id = victims[0][1]
    hold = box.discord.hold("POST", rf"^/channels/{world.c1}/messages$")
    box.evolink.complete(held_id, result(held_id))
    await box.discord.wait_for(lambda: hold.held == 1, timeout=15, what="the held channel post")
    rows = {t: await storage.get_task_by_upstream_id(t) for t in upstream_ids}
    now = time.time()
    leased = [t for t, row in rows.items() if row is not None and one.owns(row.lease_owner)
              and (row.lease_until or 0) > now]
    assert held_id in leased, f"'one' delivers the task it holds: {rows[held_id]}"

    await one.kill()
    killed_at = time.time()
    hold.release()
    held = await stored_task(fleet.database_url, held_id)
    assert (held.dm_state, held.channel_state, held.notified_at) == ("sent", None, None), "killed before the record"

    # Results keep arriving while "one" is down: these jobs end upstream only now.
    for upstream_id in upstream_ids[1:]:
        box.evolink.complete(upstream_id, result(upstream_id))
    for (guild, user), upstream_id in zip(jobs, upstream_ids, strict=True):
        await wait_told(box, user, result(upstream_id), world.channel(guild))
    numbers = {t: await number(storage, t) for t in upstream_ids}
    await zero.wait_output("connected as")  # discord.py's READY
    status, text = await get(session, zero, "/healthz")
    assert status == 200, f"the survivor is healthy (its own shard is connected): {text}"
    await box.discord.wait_for(lambda: send_attempts(box)[(numbers[held_id], "c")] >= 2, timeout=15,
                               what="the resend of the held channel post")

    takeovers = await scrape(session, zero, "upscale_lease_takeovers_total")
    assert takeovers is not None and takeovers >= len(leased), (takeovers, leased)
    assert "took over" in zero.output()
    assert await zero.terminate() == 0, zero.output()[-3000:]

    expected = once(*numbers.values())
    expected[(numbers[held_id], "c")] = 2
    assert send_attempts(box) == expected, "one attempt per message; the held one again, after the takeover"
    nonces = {r.json["nonce"] for r in box.discord.find_requests("POST", rf"^/channels/{world.c1}/messages$")
              if str(r.json.get("nonce", "")).startswith(f"up{numbers[held_id]}.")}
    assert len(nonces) == 1, "the resend carries the same nonce"
    for (guild, user), upstream_id in zip(jobs, upstream_ids, strict=True):
        link = result(upstream_id)
        assert sum(link in m["content"] for m in mentions(box, world.channel(guild), user)) == 1, upstream_id
        assert sum(link in m["content"] for m in box.discord.dm_messages(user)) == 1, upstream_id
    assert box.evolink.submissions() == len(jobs), "no paid POST repeated"
    for upstream_id in upstream_ids:
        row = await storage.get_task_by_upstream_id(upstream_id)
        assert row is not None and row.notified_at is not None and (row.dm_state, row.channel_state) == (
            "sent", "sent"), row
        if upstream_id in leased:
            assert row.notified_at <= killed_at + LEASE_SECONDS + PROMPT_SECONDS, "taken over once the lease ran out"
    for interaction, upstream_id in victims + survivors:
        await box.discord.wait_for(lambda i=interaction: "Completed" in embed_text(i.original),
                                   what=f"the final card of {upstream_id}")


# ---- 3. a process SIGKILLed during the paid POST: the other tells the member after the POST's window ------------

async def test_a_job_whose_process_dies_mid_post_is_told_interrupted_after_the_window_and_never_posted_again(
        box: Sandbox, world: World, fleet: Fleet, storage: Storage, session: aiohttp.ClientSession) -> None:
    """The row stays the dead process's for EVOLINK_TIMEOUT_SECONDS + LEASE_SECONDS (it might still be sending the
    POST); then "zero" claims it, marks it failed with the quota released and tells the member to start it
    again. The provider may have the job (here it does): the POST is never sent a second time."""
    zero = await fleet.start(0)
    one = await fleet.start(1)
    box.evolink.hang_seconds = 60.0  # the answer never comes before the kill (released when the fake closes)
    box.evolink.inject("timeout", on="submit")
    interaction = await box.discord.slash("upscale", user_id=world.carol, channel_id=world.c1, guild_id=world.g1,
                                          options={"url": "https://example.com/mid-post.mp4"})
    await interaction.wait_ack()
    await box.evolink.wait_for(lambda: box.evolink.submissions() == 1, timeout=10)
    await one.kill()

    row = await stored_task(fleet.database_url, user_id=world.carol)
    assert row.status == "submitting" and one.owns(row.lease_owner), row
    window_end = row.lease_until
    assert window_end is not None and window_end >= row.created_at + EVOLINK_TIMEOUT_SECONDS + LEASE_SECONDS - 0.5

    post, dm = await wait_told(box, world.carol, "Please start it again", world.c1)
    assert "restarted" in post["content"] and "Please start it again" in dm["content"]
    row = await stored_task(fleet.database_url, user_id=world.carol)
    assert (row.status, row.error_code, row.quota_state) == ("failed", "bot_restarted", "released"), row
    assert row.finished_at is not None and row.finished_at >= window_end, "not before the POST's window ran out"
    assert row.finished_at <= window_end + PROMPT_SECONDS, "but as soon as it ran out"
    await box.discord.wait_for(lambda: sum(send_attempts(box).values()) >= 2)
    assert "interrupted while submitting" in zero.output()
    takeovers = await scrape(session, zero, "upscale_lease_takeovers_total")
    assert takeovers is not None and takeovers >= 1
    assert await zero.terminate() == 0, zero.output()[-3000:]

    assert send_attempts(box) == once(row.id)
    assert len(mentions(box, world.c1, world.carol)) == 1 and len(box.discord.dm_messages(world.carol)) == 1
    assert box.evolink.submissions() == 1, "the paid POST was not sent again"
    assert sum(r.method == "POST" for r in box.evolink.requests) == 1
    # The job was given back: with one job a day and one at a time, carol may start another at once.
    quotas = QuotaService(storage, {**dict.fromkeys(LIMIT_NAMES), "user_daily_jobs": 1, "user_concurrent_jobs": 1})
    await quotas.reserve(NewTask(guild_id=int(world.g1), channel_id=int(world.c1), user_id=int(world.carol),
                                 source_kind="url", source_url="https://example.com/again.mp4",
                                 source_label="again.mp4", scale=2, created_at=time.time()), [])


# ---- 4. any process takes any task's callback ------------------------------------------------------------------

async def test_a_callback_reaching_the_other_process_makes_the_task_due_and_it_is_told_once(
        box: Sandbox, world: World, fleet: Fleet, storage: Storage) -> None:
    """Both processes serve the same CALLBACK_URL behind the operator's proxy, which may forward a callback to either:
    each task's callback is routed to the process that did not submit it. With the safety-net query 600 s away, only
    the callback can make the task due."""
    callbacks = {"CALLBACK_URL": PUBLIC, "CALLBACK_POLL_SECONDS": "600"}
    zero = await fleet.start(0, **callbacks)
    one = await fleet.start(1, **callbacks)
    other = {0: one, 1: zero}
    jobs = [(world.g0, world.alice), (world.g1, world.carol)]
    started = []
    for n, (guild, user) in enumerate(jobs):
        _, upstream_id = await upscale(box, world, guild, user, f"called-back-{n}")
        task_number = await number(storage, upstream_id)
        sent = box.evolink.tasks[upstream_id].callback_url
        assert sent is not None and sent.startswith(f"{PUBLIC}/{task_number}/"), sent
        receiver = other[world.shard(guild)]
        box.evolink.route_callbacks(f"{PUBLIC}/{task_number}",
                                    f"http://127.0.0.1:{receiver.http_port()}/evolink/{task_number}")
        started.append((guild, user, upstream_id, task_number))

    for _, _, upstream_id, _ in started:
        assert box.evolink.queries(upstream_id) == 0, "nothing is polled while a callback is coming"
        box.evolink.complete(upstream_id, result(upstream_id))
    for guild, user, upstream_id, _ in started:
        await wait_told(box, user, result(upstream_id), world.channel(guild))
    numbers = [task_number for *_, task_number in started]
    await box.discord.wait_for(lambda: sum(send_attempts(box).values()) >= 2 * len(numbers))
    for process in (zero, one):
        assert await process.terminate() == 0, process.output()[-3000:]

    for _, _, upstream_id, _ in started:
        assert [c.status for c in box.evolink.callbacks_for(upstream_id)] == [204], "taken by the other process"
        assert box.evolink.queries(upstream_id) == 1, "the callback is confirmed with one query"
    assert send_attempts(box) == once(*numbers)
    for guild, user, upstream_id, _ in started:
        assert sum(result(upstream_id) in m["content"] for m in mentions(box, world.channel(guild), user)) == 1
        assert sum(result(upstream_id) in m["content"] for m in box.discord.dm_messages(user)) == 1


# ---- 5. operator alerts: once per interval across processes -----------------------------------------------------

async def test_a_refused_api_key_seen_by_both_processes_alerts_the_operator_once(
        box: Sandbox, world: World, fleet: Fleet) -> None:
    """Each process remembers its own last alert, so only the database (storage.take_turn) keeps the second process
    from posting the same alert within the 10 minutes."""
    alerting = {"ALERT_CHANNEL_ID": world.alerts}
    zero = await fleet.start(0, **alerting)
    one = await fleet.start(1, **alerting)
    box.evolink.inject("unauthorized", on="submit", times=2)
    for guild, user, process in ((world.g0, world.alice, zero), (world.g1, world.carol, one)):
        interaction = await box.discord.slash("upscale", user_id=user, channel_id=world.channel(guild),
                                              guild_id=guild, options={"url": "https://example.com/key.mp4"})
        await box.discord.wait_for(lambda i=interaction: any("misconfigured" in (m.get("content") or "")
                                                             for m in i.followups), what="the private reply")
        await process.wait_output("submission failed")
        await box.discord.wait_for(lambda: box.discord.channel_messages(world.alerts), what="the alert")
    for process in (zero, one):
        # A clean stop waits for alerts still being posted, so nothing can arrive after the count below.
        assert await process.terminate() == 0, process.output()[-3000:]
        assert "ERROR" in process.output() and "401" in process.output()

    alerts = box.discord.channel_messages(world.alerts)
    assert len(alerts) == 1, [m["content"] for m in alerts]
    assert "needs its operator" in alerts[0]["content"]
    assert box.evolink.submissions() == 0
