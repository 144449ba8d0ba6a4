"""Log redaction: a secret that reaches a log call through the bot's own set-up never reaches the output.

The secrets here differ from the sandbox's, which tests/conftest.py watches for across the whole suite: these
are meant to reach logging calls, and the point is that the bot's formatter removes them.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

from bot.config import Settings
from bot.logs import setup_logging

TOKEN = "MTk5OTk5.logs-test-token.Qx81Lm"
API_KEY = "sk-logs-test-0e4f6a2b9c"
LOGGERS = ("bot.tasks", "bot.poller", "bot.notifier", "bot.evolink", "cogs.errors", "discord.http")


@contextlib.contextmanager
def bot_log_output() -> Iterator[io.StringIO]:
    """What the bot's logging writes, after setup_logging with the two secrets; the root logger, its handlers
    and what setup_logging changed on discord.py's loggers are put back afterwards.

    A context manager inside the test, not a fixture: pytest swaps its own capture handlers on the root logger
    between setup, call and teardown, so handlers saved in one phase must be put back in that same phase."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    client, gateway = logging.getLogger("discord.client"), logging.getLogger("discord.gateway")
    saved_filters, saved_gateway_level = client.filters[:], gateway.level
    setup_logging("DEBUG", Settings(discord_token=TOKEN, evolink_api_key=API_KEY).secrets())
    try:
        [handler] = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        stream = io.StringIO()
        handler.setStream(stream)
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        client.filters[:] = saved_filters
        gateway.setLevel(saved_gateway_level)


def _log_every_way(name: str) -> None:
    log = logging.getLogger(name)
    log.warning(f"in the message: token {TOKEN} key {API_KEY}")
    log.info("in the args: %s and %r", TOKEN, {"Authorization": f"Bearer {API_KEY}"})
    try:
        try:
            raise ValueError(f"cause carries {API_KEY}")
        except ValueError as cause:
            raise RuntimeError(f"upstream echoed {TOKEN}") from cause
    except RuntimeError:
        log.exception("in a traceback")


def test_secrets_are_redacted_in_messages_args_and_tracebacks() -> None:
    before = logging.getLogger().handlers[:]
    with bot_log_output() as output:
        for name in LOGGERS:
            _log_every_way(name)
    assert logging.getLogger().handlers == before, "the suite's own handlers are back"
    text = output.getvalue()
    assert TOKEN not in text and API_KEY not in text
    for name in LOGGERS:  # every line still arrived, with the secret replaced, not the line dropped
        assert f"{name}: in the message: token [redacted] key [redacted]" in text
        assert f"{name}: in the args: [redacted] and {{'Authorization': 'Bearer [redacted]'}}" in text
    assert text.count("RuntimeError: upstream echoed [redacted]") == len(LOGGERS)
    assert text.count("ValueError: cause carries [redacted]") == len(LOGGERS)


def test_redaction_holds_for_a_record_another_handler_formatted_first() -> None:
    """A handler earlier in the chain caches the traceback text on the record; that cache must not bypass us."""
    plain = logging.Handler()
    plain.setFormatter(logging.Formatter("%(message)s"))
    plain.emit = lambda record: plain.format(record) and None  # type: ignore[method-assign]
    logger = logging.getLogger("bot.poller")
    logger.addHandler(plain)
    try:
        with bot_log_output() as output:
            try:
                raise RuntimeError(f"boom {TOKEN}")
            except RuntimeError:
                logger.exception("scan failed")
    finally:
        logger.removeHandler(plain)
    text = output.getvalue()
    assert "RuntimeError: boom [redacted]" in text and TOKEN not in text
