"""Crash campaign: tasks in flight across members and channels while the bot is SIGKILLed and restarted.

    python benchmarks/crash_campaign.py            # reduced: 12 tasks, 4 kills
    python benchmarks/crash_campaign.py --full     # 100 tasks, 12 kills, 20% upstream query faults

Kills land at chosen moments (while submitting, while polling, between a send and its record) and at random
ones. Prints: tasks lost, duplicate channel posts, duplicate DMs, quota ledger mismatches, and the windows
that cannot be closed (upstream tasks created by a POST the bot never heard back from). Exits 1 if any of the
first four is not 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import LIMIT_NAMES
from sandbox.fake_discord import FakeInteraction
from sandbox.offline import Sandbox, sandbox
from sandbox.process import BotProcess

KILL_MOMENTS = ("submitting", "polling", "between_send_and_record", "random")
QUERY_FAULTS = ("rate_limit", "server_error", "timeout", "malformed_json", "unknown_status")


def _rows(db: Path) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM tasks ORDER BY id").fetchall()


class Campaign:
    def __init__(self, box: Sandbox, workdir: Path, rng: random.Random, query_fault_rate: float) -> None:
        self.box = box
        self.db = workdir / "campaign.db"
        self.rng = rng
        self.query_fault_rate = query_fault_rate
        unlimited = {f"DEFAULT_{name.upper()}": "" for name in LIMIT_NAMES}
        self.env = box.env(self.db, LOG_LEVEL="WARNING", EVOLINK_TIMEOUT_SECONDS="1", **unlimited)
        self.log = workdir / "bot.log"
        self.process: BotProcess | None = None
        self.channels = [box.channel_id] + [box.discord.add_channel(box.guild_id, f"room-{i}") for i in range(2)]
        self.members = [box.alice_id, box.bob_id] + [box.discord.add_member(box.guild_id, f"m{i}") for i in range(6)]
        self.interactions: list[FakeInteraction] = []
        self.kills: Counter[str] = Counter()

    async def start(self) -> None:
        self.process = BotProcess(self.env, self.log)
        await self.process.start_connected(self.box.discord)

    async def kill(self, moment: str) -> None:
        assert self.process is not None
        await self.process.kill()
        self.kills[moment] += 1

    async def upscale(self, count: int, *, answered: bool = False) -> None:
        """Members run /upscale; with answered=True, wait until each saw its card or a refusal."""
        batch = []
        for _ in range(count):
            interaction = await self.box.discord.slash(
                "upscale", user_id=self.rng.choice(self.members), channel_id=self.rng.choice(self.channels),
                guild_id=self.box.guild_id, options={"url": f"https://example.com/v{len(self.interactions)}.mp4",
                                                     "scale": self.rng.choice((1, 2, 4))})
            self.interactions.append(interaction)
            batch.append(interaction)
            if self.rng.random() < self.query_fault_rate * 5:  # sprinkle query faults over the run
                self.box.evolink.inject(self.rng.choice(QUERY_FAULTS), retry_after=0.2)
        if answered:
            await self.box.discord.wait_for(
                lambda: all((i.original and i.original.get("embeds")) or i.followups for i in batch), timeout=30)

    async def crash_at(self, moment: str) -> None:
        """Arrange for the process to be at `moment`, then SIGKILL it."""
        fake_discord, fake_evolink = self.box.discord, self.box.evolink
        if moment == "submitting":
            fake_evolink.inject("timeout", on="submit")
            posts = len([r for r in fake_evolink.requests if r.method == "POST"])
            await self.upscale(1)
            await fake_evolink.wait_for(lambda: len([r for r in fake_evolink.requests if r.method == "POST"]) > posts,
                                        timeout=20)
        elif moment == "polling":
            queries = fake_evolink.queries()
            await self.upscale(self.rng.randint(1, 3), answered=True)
            await fake_evolink.wait_for(lambda: fake_evolink.queries() > queries, timeout=20)
        elif moment == "between_send_and_record":
            hold = fake_discord.hold("POST", r"^/channels/\d+/messages$")
            await self.upscale(self.rng.randint(1, 3), answered=True)
            await fake_discord.wait_for(lambda: hold.held > 0, timeout=30)
            await self.kill(moment)
            hold.release()
            return
        else:
            await self.upscale(self.rng.randint(2, 6))
            await asyncio.sleep(self.rng.uniform(0.05, 2.0))  # a random moment: whatever is happening then
        await self.kill(moment)

    async def settle(self, deadline: float) -> bool:
        """Run the bot until every task row has been told, or the deadline passes."""
        await self.start()
        while time.monotonic() < deadline:
            rows = _rows(self.db)
            if rows and all(r["notified_at"] is not None for r in rows):
                return True
            await asyncio.sleep(0.5)
        return False


def _url_of(interaction: FakeInteraction) -> str:
    options = interaction.payload["data"].get("options", [])
    return next(o["value"] for o in options if o["name"] == "url")


def figures(campaign: Campaign) -> dict[str, object]:
    box = campaign.box
    rows = _rows(campaign.db)
    posts: Counter[str] = Counter()
    dms: Counter[str] = Counter()
    for channel in campaign.channels:
        for message in box.discord.channel_messages(channel):
            for row in rows:
                if f"`{row['upstream_id'] or '#' + str(row['id'])}`" in (message.get("content") or ""):
                    posts[row["id"]] += 1
    for member in campaign.members:
        for message in box.discord.dm_messages(member):
            for row in rows:
                if f"`{row['upstream_id'] or '#' + str(row['id'])}`" in (message.get("content") or ""):
                    dms[row["id"]] += 1
    known_upstream = {r["upstream_id"] for r in rows if r["upstream_id"]}
    released = {"failed", "cancelled"}
    ledger_mismatches = [r["id"] for r in rows
                         if (r["status"] in released or r["error_code"] == "bot_restarted")
                         != (r["quota_state"] == "released")]
    return {
        "interactions": len(campaign.interactions),
        "interactions_cut_off (killed before the row was written: Discord shows the member 'did not respond', "
        "nothing sent upstream)": sum(_url_of(i) not in {r["source_url"] for r in rows}
                                      for i in campaign.interactions),
        "tasks": len(rows),
        "completed": sum(r["status"] == "completed" for r in rows),
        "failed_bot_restarted (told to retry)": sum(r["error_code"] == "bot_restarted" for r in rows),
        "kills": dict(campaign.kills),
        "tasks_lost": sum(r["notified_at"] is None for r in rows)
        + sum(r["channel_state"] == "sent" and posts[r["id"]] == 0 for r in rows)
        + sum(r["dm_state"] == "sent" and dms[r["id"]] == 0 for r in rows),
        "duplicate_channel_posts": sum(max(0, n - 1) for n in posts.values()),
        "duplicate_dms": sum(max(0, n - 1) for n in dms.values()),
        "quota_ledger_mismatches": len(ledger_mismatches),
        "upstream_tasks_never_recorded (POST answered after the kill)":
            len([t for t in box.evolink.tasks if t not in known_upstream]),
        "upstream_queries": box.evolink.queries(),
    }


async def run_campaign(*, tasks: int, kills: int, seed: int, query_fault_rate: float,
                       timeout: float = 240) -> dict[str, object]:
    rng = random.Random(seed)
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="crash-campaign-") as tmp:
        async with sandbox(auto_complete_after=2.0) as box:
            campaign = Campaign(box, Path(tmp), rng, query_fault_rate)
            moments = [KILL_MOMENTS[i % len(KILL_MOMENTS)] for i in range(kills)]
            rng.shuffle(moments)
            per_round = max(1, tasks // (kills + 1))
            for moment in moments:
                await campaign.start()
                await campaign.upscale(per_round, answered=True)
                await campaign.crash_at(moment)
            await campaign.start()
            remaining = tasks - len(campaign.interactions)
            if remaining > 0:
                await campaign.upscale(remaining)
            assert campaign.process is not None
            await campaign.process.kill()  # settle() starts a fresh process that must finish everything
            settled = await campaign.settle(deadline)
            result = figures(campaign)
            result["settled_before_deadline"] = settled
            await campaign.process.terminate()
            return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="100 tasks, 12 kills, 20%% query faults")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    size = dict(tasks=100, kills=12, query_fault_rate=0.2) if args.full else dict(tasks=12, kills=4,
                                                                                    query_fault_rate=0.2)
    started = time.monotonic()
    result = asyncio.run(run_campaign(seed=args.seed, **size))  # type: ignore[arg-type]
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2))
    bad = [k for k in ("tasks_lost", "duplicate_channel_posts", "duplicate_dms", "quota_ledger_mismatches")
           if result[k] != 0]
    if not result["settled_before_deadline"]:
        bad.append("settled_before_deadline")
    print("RESULT:", "ok" if not bad else "FAILED " + ", ".join(bad))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
