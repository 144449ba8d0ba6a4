"""Start-up failures the operator can act on, each as one line: Discord unreachable or refusing, the database.

`python -m bot` prints str() of a StartupError and exits with its exit_code, so the terminal or systemd's
journal says why in one line instead of a traceback. Exit 1 means Discord is unreachable or failing (a later
restart may succeed); exit 2 means something in the configuration must change first.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import discord

from bot.text import one_line
from storage import is_postgres, shown_url

EXIT_UNREACHABLE = 1
EXIT_CONFIGURATION = 2
CHECK_DISCORD = "check the network, DISCORD_API_BASE_URL and https://discordstatus.com"


class StartupError(Exception):
    """Start-up failed for a reason the operator can act on; str() is the one line to print."""

    def __init__(self, message: str, *, exit_code: int = EXIT_UNREACHABLE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def host_of(url: str | None, default: str) -> str:
    """Only the host of a configured URL: a proxy URL may carry credentials, which must not be printed."""
    try:
        host = urlsplit(url).hostname if url else None
    except ValueError:
        host = None
    return host or default


def describe_answer(status: int, reason: str | None, text: str = "") -> str:
    """`503 Service Unavailable (upstream down)`, as much of it as there is."""
    answer = f"{status} {reason}" if reason else str(status)
    if text.lstrip().startswith("<"):  # a proxy's HTML error page says nothing the status does not
        text = ""
    return f"{answer} ({one_line(text, 200)})" if text.strip() else answer


def discord_timeout(host: str, stage: str, seconds: float, last_answer: str | None) -> StartupError:
    """The deadline passed: nothing, or only errors discord.py kept retrying, came back in time."""
    if last_answer:
        what = f"gave no usable answer within {seconds:g} s while {stage} (the last: {last_answer})"
    else:
        what = f"did not answer within {seconds:g} s while {stage}"
    return StartupError(f"Discord ({host}) {what}; {CHECK_DISCORD} (DISCORD_CONNECT_TIMEOUT_SECONDS sets the wait)")


def discord_failure(error: Exception, host: str, stage: str, *, syncing: bool = False) -> StartupError:
    """One line for an HTTP error answer or a connection failure (DNS, refused, reset) at start-up."""
    if not isinstance(error, discord.HTTPException):
        detail = one_line(str(error), 200) or type(error).__name__
        return StartupError(f"cannot reach Discord ({host}) while {stage}: {detail}; {CHECK_DISCORD}")
    answer = describe_answer(error.status, getattr(error.response, "reason", None), error.text)
    if error.status >= 500:
        return StartupError(f"Discord ({host}) answered {answer} while {stage}; Discord, or a proxy in between, is "
                            "failing: check https://discordstatus.com and DISCORD_API_BASE_URL")
    if syncing and error.status == 400:
        return StartupError(f"Discord ({host}) refused the slash-command definitions with {answer} while {stage}: "
                            "the bot's command definitions are invalid, a bug to report, not a setting to change")
    if syncing and error.status in (403, 404):
        return StartupError(f"Discord ({host}) answered {answer} while {stage}: invite the bot to that server with "
                            "the applications.commands scope, or correct DISCORD_GUILD_IDS",
                            exit_code=EXIT_CONFIGURATION)
    return StartupError(f"Discord ({host}) answered {answer} while {stage}; check DISCORD_API_BASE_URL (it ends in "
                        "/api/v10), the network and https://discordstatus.com")


def database_failure(error: Exception, database_url: str, secrets: tuple[str, ...] = ()) -> StartupError:
    """The database cannot be opened: for SQLite a folder that cannot be created, permissions, a locked file;
    for PostgreSQL a server that does not answer, refuses the login or has no such database."""
    detail = one_line(str(error), 200) or type(error).__name__
    for secret in secrets:
        detail = detail.replace(secret, "***")
    if is_postgres(database_url):
        hint = "check DATABASE_URL (host, port, user, password, database) and that the server is running"
    else:
        hint = ("check DATABASE_URL (a relative path is relative to the working directory the bot is started in) "
                "and the folder's permissions")
    return StartupError(f"cannot open the database {shown_url(database_url)}: {detail}; {hint}",
                        exit_code=EXIT_CONFIGURATION)
