"""The bot as its own process (`python -m bot`), for start-up, SIGKILL and restart tests and campaigns."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from sandbox.fake_discord import FakeDiscord


class BotProcess:
    """`python -m bot` as its own process, for start-up, SIGKILL and restart tests."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EVOLINK_"))}
        env.update(self.env)
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=self.log_path.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        log.close()

    async def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def terminate(self) -> int | None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            return await asyncio.wait_for(self.proc.wait(), 20)
        return self.proc.returncode if self.proc else None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start_connected(self, discord: FakeDiscord, timeout: float = 30) -> None:
        """Start the process and wait until it has identified at the fake Discord and got READY."""
        identified = discord.identify_count
        await self.start()
        try:
            await discord.wait_for(lambda: discord.identify_count > identified, timeout=timeout)
            await discord.wait_ready()
        except TimeoutError:
            raise AssertionError("the bot process did not connect:\n" + self.output()[-3000:]) from None
