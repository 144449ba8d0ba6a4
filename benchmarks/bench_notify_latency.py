"""Completion-to-notification latency: from the moment a job finishes upstream to the channel post.

    python benchmarks/bench_notify_latency.py           # reduced: time scaled down 100x (see below), ~10 s
    python benchmarks/bench_notify_latency.py --full    # real time, default poll settings, ~2.5 minutes
    python benchmarks/bench_notify_latency.py --full --estimated-time 600   # 600 s jobs (~13 minutes)
    python benchmarks/bench_notify_latency.py --full --callbacks   # with CALLBACK_URL: Evolink calls the bot

The real bot (`python -m bot`, its own process) runs with the default poll settings (POLL_MIN 5, POLL_MAX 60,
CARD_EDIT 15) against the fake Discord and a fake Evolink (both in this process, on one monotonic clock). Each
member sends one /upscale; the fake reports estimated_time E for every job, but each job really takes E times a
random factor in [0.75, 1.25] (some end early, some overrun their estimate), with progress rising linearly.
The latency of a job is the time from its completion moment upstream to the fake Discord receiving the
channel post (and, separately, the DM, which the bot sends first).

Reduced mode divides every duration by 100 (POLL_MIN 0.05, POLL_MAX 0.6, CARD_EDIT 0.15, E = 6 s standing for
600 s): it prints the latencies as measured and multiplied back by 100. The multiplied figures overstate the
fixed costs (Discord and database round trips are not scaled down), so use --full for real figures.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import BenchEvolink, bot_env, figure, free_port, header, note, notify_latencies, percentile

from sandbox.fake_discord import FakeDiscord
from sandbox.process import BotProcess

BOT_TOKEN = "bench.notify-latency.bot-token"
API_KEY = "sk-bench-notify-latency"
FACTORS = (0.75, 1.25)
TASK_ID = re.compile(r"`([^`]+)`")
PUBLIC_CALLBACK = "https://callbacks.example.com/evolink"


async def run(*, tasks: int, estimated: float, scale: float, poll_min: float, poll_max: float,
              card_edit: float, callbacks: bool) -> None:
    port = free_port() if callbacks else 0
    routes = {PUBLIC_CALLBACK: f"http://127.0.0.1:{port}/evolink"} if callbacks else None
    evolink = BenchEvolink(api_key=API_KEY, estimated_time=estimated, factor_range=FACTORS, seed=11,  # type: ignore[arg-type]
                           callback_routes=routes)
    discord = FakeDiscord(bot_token=BOT_TOKEN)
    bot: BotProcess | None = None
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        workdir = Path(tmp)
        await evolink.start()
        await discord.start()
        try:
            guild = discord.add_guild("Bench Server")
            channel = discord.add_channel(guild, "video-lab")
            people = [discord.add_member(guild, f"member{i}") for i in range(tasks)]
            env = bot_env(discord, guild, api_key=API_KEY, evolink_base_url=evolink.base_url,
                          database=workdir / "bot.db", POLL_MIN_SECONDS=f"{poll_min:g}",
                          POLL_MAX_SECONDS=f"{poll_max:g}", CARD_EDIT_SECONDS=f"{card_edit:g}")
            if callbacks:  # the safety net scaled like the other intervals (300 s)
                env.update(CALLBACK_URL=PUBLIC_CALLBACK, HTTP_LISTEN=f"127.0.0.1:{port}",
                           CALLBACK_POLL_SECONDS=f"{max(poll_min, 300 * scale):g}")
            bot = BotProcess(env, workdir / "bot.log")
            await bot.start_connected(discord, timeout=60)
            began = time.monotonic()
            for i, person in enumerate(people):
                await discord.slash("upscale", user_id=person, channel_id=channel, guild_id=guild,
                                    options={"url": f"https://example.com/v/{i}.mp4"})

            def posts() -> dict[str, float]:
                """upstream id -> when the fake received its 'is ready' post, per kind (channel / DM)."""
                seen: dict[str, float] = {}
                for request in discord.find_requests("POST", r"^/channels/\d+/messages$"):
                    content = (request.json or {}).get("content") or ""
                    match = TASK_ID.search(content)
                    if request.status == 200 and "is ready" in content and match:
                        kind = "channel" if request.path == f"/channels/{channel}/messages" else "dm"
                        seen.setdefault(f"{kind}:{match.group(1)}", request.at)
                return seen

            # Bounded: the longest job plus the longest poll interval and a margin.
            timeout = estimated * FACTORS[1] + poll_max * 2 + 30 * scale + 10
            try:
                await discord.wait_for(lambda: sum(k.startswith("channel:") for k in posts()) >= tasks,
                                       timeout=timeout, what="every job to be posted in the channel")
            except TimeoutError:
                pass
            ran_for = time.monotonic() - began
            seen = posts()
            completion = dict(evolink.completion_at)
            durations = dict(evolink.duration)
            queries = {task_id: evolink.queries(task_id) for task_id in completion}
        finally:
            if bot is not None:
                await bot.kill()
            await discord.close()
            await evolink.close()

    channel_lat, dm_lat, early, late = notify_latencies(seen, completion, durations, estimated)
    per_task = sorted(queries.values())

    def show(name: str, values: list[float]) -> None:
        for pct in (50, 99):
            value = percentile(values, pct)
            if scale == 1:
                figure(f"{name} p{pct}", value, "s", 2)
            else:
                figure(f"{name} p{pct} (measured, scaled time)", value, "s", 3)
                figure(f"{name} p{pct} (x{1 / scale:g}, real-time equivalent)", value / scale, "s", 1)

    print(f"-- {tasks} jobs, estimated_time {estimated:g} s, real durations x{FACTORS[0]}..x{FACTORS[1]}, "
          f"{'callbacks' if callbacks else 'polling'}")
    figure("jobs", tasks)
    figure("jobs created upstream", len(completion))
    figure("jobs posted in the channel", len(channel_lat))
    figure("jobs told by DM", len(dm_lat))
    figure("run time", ran_for, "s", 1)
    show("channel post latency", list(channel_lat.values()))
    show("DM latency", dm_lat)
    show("channel post latency, jobs that ended within their estimate", early)
    show("channel post latency, jobs that overran their estimate", late)
    figure("channel post latency max", max(channel_lat.values(), default=float("nan")) / scale, "s", 1)
    figure("queries per job, median", percentile(per_task, 50), "", 0)
    figure("queries per job, max", max(per_task, default=0), "", 0)
    if scale != 1:
        note(f"time scaled by {scale:g}: POLL_MIN {poll_min:g}, POLL_MAX {poll_max:g}, CARD_EDIT {card_edit:g}, "
             f"estimated_time {estimated:g} s stand for 5, 60, 15 and {estimated / scale:g} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="real time with the default poll settings")
    parser.add_argument("--estimated-time", type=float, help="the fake's estimated_time in real seconds "
                        "(default 100 with --full, 600 scaled down 100x without)")
    parser.add_argument("--tasks", type=int, help="number of jobs (default 50 full, 20 reduced)")
    parser.add_argument("--callbacks", action="store_true", help="the bot runs with CALLBACK_URL")
    args = parser.parse_args()
    if args.full:
        scale, estimated = 1.0, args.estimated_time or 100.0
    else:
        scale, estimated = 0.01, (args.estimated_time or 600.0) * 0.01
    tasks = args.tasks or (50 if args.full else 20)
    poll_min, poll_max, card_edit = 5.0 * scale, 60.0 * scale, 15.0 * scale
    header("bench_notify_latency: job completion upstream -> post in the channel",
           "full (real time)" if args.full else f"reduced (time scaled x{scale:g})", jobs=tasks,
           estimated_time_s=estimated, duration_factors=f"{FACTORS[0]}..{FACTORS[1]}", poll_min_s=poll_min,
           poll_max_s=poll_max, card_edit_s=card_edit, callbacks=args.callbacks)
    asyncio.run(run(tasks=tasks, estimated=estimated, scale=scale, poll_min=max(0.05, poll_min),
                    poll_max=max(0.05, poll_max), card_edit=card_edit, callbacks=args.callbacks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
