"""`python -m bot` against a failing Discord, stop signals at any moment, and the command line.

Each test runs the bot as its own process against the loopback fakes, as an operator would start it: a Discord
that cannot be resolved, answers 5xx, never answers, or refuses the command sync must give one line on stderr
within DISCORD_CONNECT_TIMEOUT_SECONDS (2 s here); SIGTERM and Ctrl-C must exit 0 without noise.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from sandbox.offline import Sandbox

DEADLINE = 2.0
MARGIN = 6.0  # process start-up (imports) on a busy 2-core machine, and the close after the deadline
NOISE = ("Traceback", "Unclosed", "Task was destroyed", "never awaited", "Exception ignored")
COMMANDS = r"^/applications/\d+/guilds/\d+/commands$"


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()

    def assert_one_line(self, code: int, *needles: str) -> str:
        """Exactly one line on stderr, with the exit code and the words an operator needs; no secret."""
        shown = f"exit {self.code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        assert self.code == code, shown
        assert len(self.lines) == 1, shown
        line = self.lines[0]
        assert line.startswith("upscale-bot: "), shown
        for needle in needles:
            assert needle in line, f"{needle!r} not in {line!r}"
        self.assert_quiet()
        return line

    def assert_quiet(self) -> None:
        for noise in NOISE:
            assert noise not in self.stdout + self.stderr, f"{noise!r}:\n{self.stderr}"


class Bot:
    """`python -m bot` as its own process with separate stdout and stderr pipes."""

    def __init__(self, proc: asyncio.subprocess.Process, started: float, secrets: tuple[str, ...]) -> None:
        self.proc = proc
        self.started = started
        self.secrets = secrets

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    async def finish(self, timeout: float = 30) -> Finished:
        out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        assert self.proc.returncode is not None
        done = Finished(self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                        time.monotonic() - self.started)
        for secret in self.secrets:
            assert secret not in done.stdout + done.stderr, "a secret was printed"
        return done


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    started: list[Bot] = []

    async def start(env: dict[str, str], *args: str) -> Bot:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EVOLINK_"))}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, cwd=tmp_path, env={**clean, **env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        bot = Bot(proc, time.monotonic(), tuple(v for k, v in env.items() if k in ("DISCORD_TOKEN", "EVOLINK_API_KEY")))
        started.append(bot)
        return bot

    try:
        yield start
    finally:
        for bot in started:
            if bot.proc.returncode is None:
                bot.proc.kill()
                await bot.proc.wait()


def _env(box: Sandbox, tmp_path: Path, **overrides: str) -> dict[str, str]:
    return box.env(tmp_path / "bot.db", **{"LOG_LEVEL": "WARNING", "DISCORD_CONNECT_TIMEOUT_SECONDS": str(DEADLINE),
                                           **overrides})


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP listener that accepts connections and never answers (a black-holed proxy or firewall)."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the bot goes away
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


# ---- Discord unreachable or refusing at start-up: one line, exit 1 (2 when a setting must change) -------------

def test_the_connect_deadline_is_a_setting() -> None:
    base = {"DISCORD_TOKEN": "t", "EVOLINK_API_KEY": "k"}
    assert load_settings(base, dotenv_path=None).discord_connect_timeout_seconds == 30.0
    tuned = load_settings({**base, "DISCORD_CONNECT_TIMEOUT_SECONDS": "2.5"}, dotenv_path=None)
    assert tuned.discord_connect_timeout_seconds == 2.5
    with pytest.raises(ConfigError, match="DISCORD_CONNECT_TIMEOUT_SECONDS"):
        load_settings({**base, "DISCORD_CONNECT_TIMEOUT_SECONDS": "0"}, dotenv_path=None)


async def test_an_unresolvable_discord_is_one_line(launch: Callable, box: Sandbox, tmp_path: Path) -> None:
    bot = await launch(_env(box, tmp_path, DISCORD_API_BASE_URL="http://discord.invalid/api/v10"))
    done = await bot.finish()
    done.assert_one_line(1, "Discord", "discord.invalid", "network", "DISCORD_API_BASE_URL", "discordstatus.com")
    assert done.seconds < DEADLINE + MARGIN


@pytest.mark.parametrize(("status", "times", "needles"), [
    (503, 5, ("answered 503", "logging in", "discordstatus.com")),  # discord.py raises a 503 at once
    (500, 50, (f"gave no usable answer within {DEADLINE:g} s while logging in", "500 Internal Server Error")),
])
async def test_a_5xx_at_login_is_one_line(launch: Callable, box: Sandbox, tmp_path: Path, status: int, times: int,
                                          needles: tuple[str, ...]) -> None:
    box.discord.inject("GET", r"^/users/@me$", status, times=times)
    done = await (await launch(_env(box, tmp_path))).finish()
    done.assert_one_line(1, "Discord", *needles)
    assert done.seconds < DEADLINE + MARGIN
    assert not box.discord.commands, "nothing synced"


async def test_a_login_that_never_answers_ends_at_the_deadline(launch: Callable, box: Sandbox,
                                                               tmp_path: Path) -> None:
    held = box.discord.hold("GET", r"^/users/@me$")
    bot = await launch(_env(box, tmp_path))
    await box.discord.wait_for(lambda: held.held, timeout=20)
    done = await bot.finish()
    done.assert_one_line(1, f"did not answer within {DEADLINE:g} s while logging in", "network",
                         "DISCORD_API_BASE_URL", "discordstatus.com", "DISCORD_CONNECT_TIMEOUT_SECONDS")
    assert done.seconds < DEADLINE + MARGIN


async def test_a_black_holed_discord_ends_at_the_deadline(launch: Callable, box: Sandbox, tmp_path: Path,
                                                          silent_port: int) -> None:
    bot = await launch(_env(box, tmp_path, DISCORD_API_BASE_URL=f"http://127.0.0.1:{silent_port}/api/v10"))
    done = await bot.finish()
    done.assert_one_line(1, f"Discord (127.0.0.1) did not answer within {DEADLINE:g} s while logging in")
    assert done.seconds < DEADLINE + MARGIN


@pytest.mark.parametrize(("fault", "code", "needles"), [
    ("400", 1, ("refused the slash-command definitions", "Invalid Form Body", "bug")),
    ("403", 2, ("answered 403 Forbidden (Missing Access) while syncing the slash commands to guild",
                "applications.commands", "DISCORD_GUILD_IDS")),
    ("503", 1, ("answered 503", "syncing the slash commands", "discordstatus.com")),
    ("held", 1, (f"did not answer within {DEADLINE:g} s while syncing the slash commands to guild",)),
])
async def test_a_failed_command_sync_is_one_line(launch: Callable, box: Sandbox, tmp_path: Path, fault: str,
                                                 code: int, needles: tuple[str, ...]) -> None:
    if fault == "held":
        box.discord.hold("PUT", COMMANDS)
    elif fault == "400":
        box.discord.inject("PUT", COMMANDS, 400, code=50035, message="Invalid Form Body")
    else:
        box.discord.inject("PUT", COMMANDS, int(fault), code=50001, message="Missing Access")
    done = await (await launch(_env(box, tmp_path))).finish()
    line = done.assert_one_line(code, "Discord", *needles)
    assert box.guild_id in line or fault in ("400", "503")
    assert done.seconds < DEADLINE + MARGIN


async def test_at_info_level_the_one_line_comes_last(launch: Callable, box: Sandbox, tmp_path: Path) -> None:
    """What the operator sees with the default LOG_LEVEL: the log so far, then the reason, and no traceback."""
    box.discord.inject("GET", r"^/users/@me$", 503, times=5)
    done = await (await launch(_env(box, tmp_path, LOG_LEVEL="INFO"))).finish()
    assert done.code == 1, done.stderr
    assert len(done.lines) > 1 and "INFO" in done.stderr
    assert done.lines[-1].startswith("upscale-bot: Discord (127.0.0.1) answered 503"), done.stderr
    assert sum("upscale-bot:" in line for line in done.lines) == 1
    done.assert_quiet()


async def test_a_database_that_cannot_open_is_not_blamed_on_discord(launch: Callable, box: Sandbox,
                                                                    tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")
    done = await (await launch(_env(box, tmp_path, DATABASE_URL="sqlite:///not-a-folder/bot.db"))).finish()
    line = done.assert_one_line(2, "cannot open the database", "not-a-folder/bot.db", "DATABASE_URL")
    assert "Discord" not in line
    assert not box.discord.requests, "the database is opened before Discord is asked anything"


async def test_an_unreachable_postgresql_is_one_line_without_its_password(launch: Callable, box: Sandbox,
                                                                         tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://upscale:hunter2@127.0.0.1:{port}/upscale"
    done = await (await launch(_env(box, tmp_path, DATABASE_URL=url))).finish()
    line = done.assert_one_line(2, "cannot open the database", f"postgresql://upscale:***@127.0.0.1:{port}/upscale",
                                "DATABASE_URL")
    assert "hunter2" not in done.stdout + done.stderr and "Discord" not in line
    assert not box.discord.requests, "the database is opened before Discord is asked anything"


@pytest.mark.backends("postgres")
async def test_a_postgresql_login_refused_is_one_line_naming_database_url(launch: Callable, box: Sandbox,
                                                                         tmp_path: Path, database_url: str) -> None:
    host_and_db = database_url.split("@", 1)[1] if "@" in database_url else database_url.split("://", 1)[1]
    url = f"postgresql://no_such_role:hunter2@{host_and_db}"
    done = await (await launch(_env(box, tmp_path, DATABASE_URL=url))).finish()
    line = done.assert_one_line(2, "cannot open the database", "no_such_role:***@", "DATABASE_URL")
    assert "no_such_role" in line and "hunter2" not in done.stdout + done.stderr


async def test_a_gateway_without_ready_is_one_warning_and_the_bot_keeps_trying(
        launch: Callable, box: Sandbox, tmp_path: Path, silent_port: int) -> None:
    bot = await launch(_env(box, tmp_path, DISCORD_GATEWAY_URL=f"ws://127.0.0.1:{silent_port}/gateway"))
    assert bot.proc.stderr is not None
    line = (await asyncio.wait_for(bot.proc.stderr.readline(), DEADLINE + MARGIN)).decode()
    assert "WARNING" in line and "no READY from the Discord gateway (127.0.0.1)" in line, line
    assert "DISCORD_GATEWAY_URL" in line and bot.proc.returncode is None
    assert {c["name"] for c in box.discord.commands[box.guild_id]} >= {"upscale", "tasks"}, "login and sync done"
    bot.signal(signal.SIGTERM)
    done = await bot.finish(20)
    assert done.code == 0 and done.stderr == "", done.stderr
    done.assert_quiet()


# ---- SIGTERM and Ctrl-C at any moment: exit 0, quietly -----------------------------------------------------------

@pytest.mark.parametrize(("signum", "method", "path"), [
    (signal.SIGTERM, "GET", r"^/users/@me$"),
    (signal.SIGINT, "GET", r"^/oauth2/applications/@me$"),
    (signal.SIGTERM, "PUT", COMMANDS),  # the database and the HTTP session are open by then
], ids=["sigterm-login", "sigint-application-info", "sigterm-sync"])
async def test_a_stop_signal_during_start_up_exits_0_quietly(
        launch: Callable, box: Sandbox, tmp_path: Path, signum: int, method: str, path: str) -> None:
    held = box.discord.hold(method, path)
    bot = await launch(_env(box, tmp_path, DISCORD_CONNECT_TIMEOUT_SECONDS="30"))
    await box.discord.wait_for(lambda: held.held, timeout=20)
    signalled = time.monotonic()
    bot.signal(signum)
    done = await bot.finish(20)
    assert done.code == 0 and done.stderr == "", done.stderr
    assert time.monotonic() - signalled < 10
    done.assert_quiet()
    assert box.discord.identify_count == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
async def test_a_stop_signal_during_the_offline_sandbox_exits_0_quietly(launch: Callable, signum: int) -> None:
    bot = await launch({})
    assert bot.proc.stdout is not None
    first = await asyncio.wait_for(bot.proc.stdout.readline(), 30)
    assert b"offline sandbox" in first
    bot.signal(signum)
    done = await bot.finish(20)
    assert done.code == 0 and done.stderr == "", done.stderr
    done.assert_quiet()


async def test_a_stop_signal_during_the_sandbox_flow_exits_0_quietly(launch: Callable) -> None:
    """Later in the demo, once the member has run /upscale: the bot, the fakes and the poller are all running."""
    bot = await launch({})
    assert bot.proc.stdout is not None
    while b"/upscale" not in (line := await asyncio.wait_for(bot.proc.stdout.readline(), 30)):
        assert line, "the sandbox ended before /upscale"
    bot.signal(signal.SIGTERM)
    done = await bot.finish(20)
    assert done.code == 0 and done.stderr == "", done.stderr
    done.assert_quiet()


# ---- the command line ----------------------------------------------------------------------------------------------

async def test_sync_needs_only_the_discord_token(launch: Callable, box: Sandbox, tmp_path: Path) -> None:
    env = _env(box, tmp_path)
    del env["EVOLINK_API_KEY"]
    done = await (await launch(env, "sync")).finish()
    assert done.code == 0, done.stderr
    synced = {c["name"]: c for c in box.discord.commands[box.guild_id]}
    assert set(synced) >= {"upscale", "tasks", "task"}
    assert synced["upscale"]["name_localizations"]["ko"] == "업스케일", "`sync` carries the Korean names too"
    assert box.discord.identify_count == 0


@pytest.mark.parametrize("where", ["environment", ".env"])
async def test_an_api_key_without_a_token_is_a_configuration_error(launch: Callable, tmp_path: Path,
                                                                   where: str) -> None:
    key = "sk-only-the-key-9d2f"
    if where == ".env":
        (tmp_path / ".env").write_text(f"EVOLINK_API_KEY={key}\n")
    bot = await launch({"EVOLINK_API_KEY": key} if where == "environment" else {})
    bot.secrets = (key,)
    done = await bot.finish()
    done.assert_one_line(2, "configuration error", "DISCORD_TOKEN is not set")
    assert "sandbox" not in done.stdout + done.stderr


async def test_help_names_the_env_file_the_database_the_sandbox_and_sync(launch: Callable) -> None:
    done = await (await launch({}, "--help")).finish()
    assert done.code == 0 and done.stderr == ""
    text = " ".join(done.stdout.split())
    for needle in (".env file in the working directory", "the environment wins", "DATABASE_URL",
                   "sqlite:///data/upscale-bot.db", "relative to the working directory the bot is started in",
                   "offline sandbox", "sync", "DISCORD_CONNECT_TIMEOUT_SECONDS", "exit status"):
        assert needle in text, needle
