"""Serve the fake Evolink (benchmarks/_bench.BenchEvolink) on 127.0.0.1 as its own process.

Prints one JSON line {"base_url", "api_key", "pid"} once serving. Then reads commands on stdin, one a line:
`stats` prints one JSON line (queries, submissions, requests, callbacks_sent (attempts), callbacks_delivered
(2xx answers), the fake's own CPU seconds); end of input stops the server and exits 0.

    python benchmarks/_serve_fake_evolink.py [--estimated-time 600] [--preload-file tasks.json]
        [--never-complete] [--hang-all --hang-seconds 30] [--callback-route PUBLIC=LOCAL ...]

--preload-file names a JSON list of [task_id, age_seconds] (or [task_id, age, duration] or
[task_id, age, duration, callback_url], duration may be null for --estimated-time): tasks that exist upstream
already, `age` seconds old (for rows the benchmark writes straight into the bot's database). A task with a
callback_url gets its callback when it completes (not with --never-complete).

--callback-route PUBLIC=LOCAL (repeatable) delivers callbacks for URLs starting with PUBLIC (such as
https://callbacks.example.com/evolink) to LOCAL instead (such as http://127.0.0.1:8080/evolink): the bot's
plain-HTTP listener, as DNS and a TLS proxy would. Submitted tasks' callback_url must be public https URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import BenchEvolink


def callback_route(raw: str) -> tuple[str, str]:
    public, sep, local = raw.partition("=")
    if not (sep and public.startswith("https://") and local.startswith(("http://", "https://"))):
        raise argparse.ArgumentTypeError(f"expected PUBLIC=LOCAL (https://...=http://...), got {raw!r}")
    return public, local


async def serve(args: argparse.Namespace, preload: list[list]) -> int:
    fake = BenchEvolink(api_key=args.api_key, estimated_time=args.estimated_time, hang_seconds=args.hang_seconds,
                        never_complete=args.never_complete, callback_routes=dict(args.callback_route))
    for entry in preload:
        duration = float(entry[2]) if len(entry) > 2 and entry[2] is not None else None
        callback_url = str(entry[3]) if len(entry) > 3 and entry[3] is not None else None
        fake.preload(str(entry[0]), float(entry[1]), duration, callback_url)
    if args.hang_all:
        fake.inject("timeout", times=10**9, on="any")
    await fake.start()
    print(json.dumps({"base_url": fake.base_url, "api_key": fake.api_key, "pid": os.getpid()}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if line.strip() == "stats":
                usage = os.times()
                print(json.dumps({"queries": fake.queries(), "submissions": fake.submissions(),
                                  "requests": len(fake.requests), "callbacks_sent": len(fake.callbacks),
                                  "callbacks_delivered": fake.callbacks_delivered,
                                  "cpu_seconds": usage.user + usage.system, "at": time.monotonic()}), flush=True)
    finally:
        await fake.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-key", default="sk-bench-fake-evolink")
    parser.add_argument("--estimated-time", type=int, default=600)
    parser.add_argument("--preload-file")
    parser.add_argument("--never-complete", action="store_true")
    parser.add_argument("--hang-all", action="store_true", help="every request hangs --hang-seconds")
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--callback-route", type=callback_route, action="append", default=[],
                        metavar="PUBLIC=LOCAL", help="deliver callbacks for PUBLIC... to LOCAL... (repeatable)")
    args = parser.parse_args()
    preload = json.loads(Path(args.preload_file).read_text()) if args.preload_file else []
    return asyncio.run(serve(args, preload))


if __name__ == "__main__":
    sys.exit(main())
