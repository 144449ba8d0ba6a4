"""A second bot process on one SQLite file is refused at start with one line; the first keeps running."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sandbox.offline import Sandbox
from sandbox.process import BotProcess
from tests.helpers import start_upscale, wait_told

RESULT = "https://cdn.evolink.ai/sample/single.mp4"


async def test_a_second_process_on_one_sqlite_file_is_refused_with_one_line(
        box: Sandbox, bot_process: Callable[..., BotProcess], tmp_path: Path) -> None:
    first = bot_process()
    await first.start_connected(box.discord)
    identified = box.discord.identify_count

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EVOLINK_"))}
    env.update(box.env(tmp_path / "bot.db"))
    second = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=tmp_path, env=env,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(second.communicate(), 60)
    lines = err.decode().strip().splitlines()
    assert second.returncode == 2, err.decode()
    assert len(lines) == 1 and "another bot process" in lines[0] and "SQLite" in lines[0], lines
    assert f"process {first.proc.pid}" in lines[0] and "PostgreSQL" in lines[0], lines
    assert box.discord.identify_count == identified, "the second process never reached Discord"

    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")  # the first one still works
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    assert await first.terminate() == 0, first.output()
