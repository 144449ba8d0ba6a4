"""The bot as its own process (`python -m bot`), for start-up, SIGKILL and restart tests and campaigns."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from sandbox.fake_discord import FakeDiscord

# bot/listener.py logs this when the listener opens, before Discord is asked anything: "HTTP listener on host:port: ..."
_LISTENING = re.compile(r"HTTP listener on \S+:(\d+): ")


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

    def http_port(self) -> int:
        """The port of the process's HTTP listener (/healthz, /metrics, callbacks): HTTP_LISTEN=127.0.0.1:0 takes any
        free one, so two processes side by side never collide, and the process says which in its log."""
        ports = _LISTENING.findall(self.output())
        if not ports:
            raise AssertionError("the bot process logged no HTTP listener line:\n" + self.output()[-3000:])
        return int(ports[-1])  # the last start's, when a log is reused

    def owns(self, lease_owner: str | None) -> bool:
        """Whether a task's `lease_owner` names this process (bot/lifecycle.py new_owner: host:pid:random), so a
        test can tell which of several processes holds a task."""
        if self.proc is None or not lease_owner or lease_owner.count(":") < 2:
            return False
        return lease_owner.rsplit(":", 2)[1] == str(self.proc.pid)

    async def wait_output(self, text: str, timeout: float = 15) -> None:
        """Wait until the process has logged `text` (its log is all a separate process shows of its state)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in self.output():
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"the bot process exited before logging {text!r}:\n" + self.output()[-3000:])
            if loop.time() > deadline:
                raise AssertionError(f"the bot process did not log {text!r} within {timeout:g} s:\n"
                                     + self.output()[-3000:])
            await asyncio.sleep(0.05)
