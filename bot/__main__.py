"""`python -m bot` runs the bot; `python -m bot sync` syncs the slash commands and exits; `python -m bot copy-db
--to URL` copies the database into an empty one.

With no credentials configured it runs the offline sandbox instead, so a newcomer sees the whole flow.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from bot.config import ConfigError, Settings, load_settings, not_set
from bot.logs import setup_logging

log = logging.getLogger("bot")

DESCRIPTION = "Run the upscale bot: a Discord bot that upscales members' videos with Evolink."
EPILOG = """\
settings:
  Read from the environment and from the .env file in the working directory (the environment wins);
  .env.example documents every setting. DISCORD_TOKEN and EVOLINK_API_KEY are required to run the real
  bot (`sync` needs only DISCORD_TOKEN). With neither set, the offline sandbox runs instead: a fake
  Discord and a fake Evolink on 127.0.0.1, the real bot, and a scripted member; it prints what the
  member sees and exits 0.

database:
  DATABASE_URL, default sqlite:///data/upscale-bot.db. A relative path is relative to the working
  directory the bot is started in (sqlite:////var/lib/upscale-bot/bot.db is an absolute one).

start-up:
  Logging in and syncing the slash commands must finish within DISCORD_CONNECT_TIMEOUT_SECONDS (30).
  SIGTERM or Ctrl-C at any moment stops the bot cleanly with exit status 0.

exit status:
  0  stopped by SIGTERM or Ctrl-C, or `sync` or the sandbox done (`copy-db --help` has its own)
  1  Discord unreachable or failing at start-up (a later restart may succeed), or an unexpected error
  2  configuration error: a missing or malformed setting, a token Discord refused, a server the bot
     cannot sync its commands to, a database that cannot be opened
"""

COPY_DB_DESCRIPTION = """\
Copy everything in the bot's database (DATABASE_URL, from the environment or .env) into an empty database:
tasks with their numbers, server and role limits, blocked members, the quota log, and so each member's usage.
Stop the bot first. The source is only read; the target gets the bot's tables first. Needs neither
DISCORD_TOKEN nor EVOLINK_API_KEY."""
COPY_DB_EPILOG = """\
checks:
  Rows per table on both sides, and the usage counters (which the target rebuilds from the tasks) row by row;
  the figures are printed. The whole copy is one transaction on the target: if anything fails or differs,
  nothing is written. A target that already holds rows is refused.

exit status:
  0  copied and checked: point DATABASE_URL at the target and start the bot
  1  the check found a difference, or the copy failed or was interrupted (the target was left empty)
  2  refused: a bad --to URL, the same database as the source, a target that is not empty, no source
"""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, frame: object) -> None:
    """Before and between event loops a stop signal unwinds like Ctrl-C; main() turns that into exit 0."""
    raise KeyboardInterrupt


def _run(work: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """asyncio.run(work(stop)) where SIGINT and SIGTERM set `stop` from the loop's first step on."""

    async def guarded() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop.set)
        return await work(stop)

    try:
        return asyncio.run(guarded())
    finally:
        for signum in STOP_SIGNALS:  # closing the loop put the defaults back
            signal.signal(signum, _interrupt)


async def _unless_stopped(work: Coroutine[Any, Any, int], stop: asyncio.Event) -> int:
    """Run `work`; a stop signal cancels it (its own finally blocks clean up) and counts as success."""
    task = asyncio.create_task(work)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    return 0 if task.cancelled() else task.result()


async def run_bot(settings: Settings, stop: asyncio.Event, *, sync_only: bool = False) -> int:
    """Log in (and sync), then run until `stop` is set; a stop during start-up cancels the start-up."""
    from bot.client import UpscaleBot, point_discord_at

    point_discord_at(settings)
    bot = UpscaleBot(settings, sync_only=sync_only)
    async with bot:
        token = settings.discord_token
        runner = asyncio.create_task(bot.login(token) if sync_only else bot.start(token))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stopper in done:
            log.info("stopping (signal received)")
            await bot.close()  # also cancels a login still in progress
        await asyncio.wait({runner})
        if not runner.cancelled():
            runner.result()  # re-raises a start-up failure such as a bad token or an unreachable Discord
    if sync_only and stopper not in done:
        print("slash commands synced", file=sys.stderr)
    return 0


async def _run_offline(stop: asyncio.Event) -> int:
    from sandbox.offline import run_offline

    return await _unless_stopped(run_offline(), stop)


def _fail(message: str, code: int, secrets: tuple[str, ...] = ()) -> int:
    for secret in secrets:
        if len(secret) >= 4:  # as the log redaction: a shorter "secret" would mangle ordinary words
            message = message.replace(secret, "[redacted]")
    print(f"upscale-bot: {message}", file=sys.stderr)
    return code


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="command",
                                     help="run the bot (the default), sync, or copy-db")
    commands.add_parser("run", help="run the bot (the default)")
    commands.add_parser("sync", help="sync the slash commands with Discord and exit")
    copy_db = commands.add_parser(
        "copy-db", help="copy the bot's database (DATABASE_URL) into an empty one, e.g. SQLite to PostgreSQL",
        description=COPY_DB_DESCRIPTION, epilog=COPY_DB_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    copy_db.add_argument("--to", required=True, metavar="URL",
                         help="the empty database to fill: postgresql://user:password@host:5432/database, or "
                              "sqlite:///path/to/new.db")
    args = parser.parse_args(argv)
    if args.command == "copy-db":
        from bot.copy_db import run_copy_db

        return _run(lambda stop: run_copy_db(args.to, stop))
    sync_only = args.command == "sync"
    try:
        settings = load_settings(require_credentials=False)
        if sync_only and not settings.discord_token:
            raise ConfigError("DISCORD_TOKEN is not set: `sync` needs the real bot's token (put it in the "
                              "environment or in .env)")
        if not sync_only and not (settings.discord_token or settings.evolink_api_key):
            setup_logging("WARNING", ())
            sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # live through a pipe too
            return _run(_run_offline)
        if not sync_only:
            for name, value in (("DISCORD_TOKEN", settings.discord_token),
                                ("EVOLINK_API_KEY", settings.evolink_api_key)):
                if not value:
                    raise not_set(name)
    except ConfigError as error:
        return _fail(f"configuration error: {error}", 2)
    setup_logging(settings.log_level, settings.secrets())
    try:
        return _run(lambda stop: run_bot(settings, stop, sync_only=sync_only))
    except Exception as error:  # start-up failures: say what to fix in one line
        import discord

        from bot.startup import StartupError

        if isinstance(error, StartupError):
            return _fail(str(error), error.exit_code, settings.secrets())
        if isinstance(error, ConfigError):  # found at start-up, such as an HTTP_LISTEN port in use
            return _fail(f"configuration error: {error}", 2, settings.secrets())
        if isinstance(error, discord.LoginFailure):
            return _fail("Discord refused DISCORD_TOKEN; check the token in .env", 2)
        log.exception("the bot stopped on an unexpected error")
        return 1


def main(argv: list[str] | None = None) -> int:
    """The process's entry point: a stop signal at any moment, even before the event loop, exits 0 quietly.

    It returns with SIGINT and SIGTERM ignored: the process is exiting, and a late signal must not turn a
    clean exit into a traceback or a kill.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 0
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
