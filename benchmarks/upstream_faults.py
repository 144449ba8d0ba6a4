"""Upstream fault campaign: a share of task queries fail (429 with Retry-After, 502/503, timeouts, malformed
JSON, unknown status) and every task must still be delivered exactly once, with Retry-After honoured.

    python benchmarks/upstream_faults.py           # reduced: 20 tasks
    python benchmarks/upstream_faults.py --full    # 100 tasks

Prints the figures as JSON and exits 1 if a task was not delivered, delivered twice, or a retry came early.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import LIMIT_NAMES
from sandbox.offline import sandbox
from sandbox.process import BotProcess


async def run_upstream_faults(*, tasks: int, fault_rate: float, seed: int = 3, timeout: float = 180) -> dict:
    unlimited = {f"DEFAULT_{name.upper()}": "" for name in LIMIT_NAMES}
    options = {"fault_rate": fault_rate, "fault_seed": seed, "hang_seconds": 3.0, "estimated_time": 4}
    with tempfile.TemporaryDirectory(prefix="upstream-faults-") as tmp:
        async with sandbox(auto_complete_after=4.0, evolink_options=options) as box:
            members = [box.discord.add_member(box.guild_id, f"member{i}") for i in range(10)]
            process = BotProcess(box.env(Path(tmp) / "bot.db", LOG_LEVEL="WARNING", EVOLINK_TIMEOUT_SECONDS="1",
                                         **unlimited), Path(tmp) / "bot.log")
            await process.start_connected(box.discord)
            started = time.monotonic()
            for i in range(tasks):
                await box.discord.slash("upscale", user_id=members[i % len(members)], channel_id=box.channel_id,
                                        guild_id=box.guild_id, options={"url": f"https://example.com/f{i}.mp4"})

            def posts() -> list[dict]:
                return [m for m in box.discord.channel_messages(box.channel_id) if "is ready" in (m["content"] or "")]

            def dms() -> list[dict]:
                return [m for u in members for m in box.discord.dm_messages(u) if "is ready" in (m["content"] or "")]

            try:
                await box.discord.wait_for(lambda: len(posts()) >= tasks and len(dms()) >= tasks, timeout=timeout)
                delivered_in = round(time.monotonic() - started, 1)
            except TimeoutError:
                delivered_in = None
            await process.terminate()
            ids = [m["content"].split("`")[1] for m in posts()]
            dm_ids = [m["content"].split("`")[1] for m in dms()]
            queries = box.evolink.queries()
            return {
                "tasks": tasks,
                "fault_rate": fault_rate,
                "faults_injected": box.evolink.random_faults,
                "delivered_in_channel": len(set(ids)),
                "delivered_by_dm": len(set(dm_ids)),
                "duplicate_channel_posts": len(ids) - len(set(ids)),
                "duplicate_dms": len(dm_ids) - len(set(dm_ids)),
                "early_retries (before Retry-After)": box.evolink.early_retries,
                "queries_per_task": round(queries / tasks, 1),
                "seconds_to_deliver_all": delivered_in,
            }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run_upstream_faults(tasks=100 if args.full else 20, fault_rate=0.2))
    print(json.dumps(result, indent=2))
    ok = (result["delivered_in_channel"] == result["delivered_by_dm"] == result["tasks"]
          and result["duplicate_channel_posts"] == result["duplicate_dms"] == 0
          and result["early_retries (before Retry-After)"] == 0)
    print("RESULT:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
