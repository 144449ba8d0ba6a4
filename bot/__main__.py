"""`python -m bot` runs the bot; `python -m bot sync` syncs the slash commands and exits.

With no DISCORD_TOKEN configured it runs the offline sandbox instead, so a newcomer sees the whole flow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging

log = logging.getLogger("bot")


async def run_bot(settings: Settings, *, sync_only: bool = False) -> int:
    from bot.client import UpscaleBot, point_discord_at

    point_discord_at(settings)
    bot = UpscaleBot(settings, sync_only=sync_only)
    if sync_only:
        async with bot:
            await bot.login(settings.discord_token)  # runs setup_hook, which syncs
        print("slash commands synced", file=sys.stderr)
        return 0
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stopping.set)
    async with bot:
        runner = asyncio.create_task(bot.start(settings.discord_token))
        stopper = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("stopping (signal received)")
            await bot.close()
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner  # re-raises a start-up failure such as a bad token
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("run", "sync"), default="run",
                        help="run the bot (default) or sync the slash commands and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(require_credentials=False)
        if not settings.discord_token:
            if args.command == "sync":
                raise ConfigError("DISCORD_TOKEN is not set: `sync` needs the real bot's token")
            from sandbox.offline import run_offline

            setup_logging("WARNING", ())
            return asyncio.run(run_offline())
        settings = load_settings()  # now every required setting must be there
    except ConfigError as error:
        print(f"upscale-bot: configuration error: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.secrets())
    try:
        return asyncio.run(run_bot(settings, sync_only=args.command == "sync"))
    except KeyboardInterrupt:
        return 0
    except Exception as error:  # start-up failures: say what to fix in one line
        import discord

        if isinstance(error, ConfigError):  # found at start-up, such as a CALLBACK_LISTEN port in use
            print(f"upscale-bot: configuration error: {error}", file=sys.stderr)
            return 2
        if isinstance(error, discord.LoginFailure):
            print("upscale-bot: Discord refused DISCORD_TOKEN; check the token in .env", file=sys.stderr)
            return 2
        log.exception("the bot stopped on an unexpected error")
        return 1


if __name__ == "__main__":
    sys.exit(main())
