"""Settings: one typed object read from the environment and `.env`.

The setting names are a contract (other tools drive the bot through them), so they live in one table here.
A missing or malformed value stops start-up with one line naming the setting; secret values never appear
in that line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from bot.numbers import finite_number, whole_number
from bot.text import clip
from bot.validation import is_public_host
from storage import database_password, is_postgres, shown_url, sqlite_path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Quota limit names (a contract: /quota and DEFAULT_<NAME> use them) and the operator defaults a fresh
# install ships with, chosen so that it cannot run up a bill (None means unlimited).
LIMIT_NAMES = ("user_daily_jobs", "user_concurrent_jobs", "user_monthly_credits",
               "server_daily_jobs", "server_monthly_credits")
SAFE_DEFAULT_LIMITS: dict[str, int | None] = {
    "user_daily_jobs": 5,
    "user_concurrent_jobs": 1,
    "user_monthly_credits": 300,
    "server_daily_jobs": 50,
    "server_monthly_credits": 3000,
}
MAX_LIMIT_VALUE = 1_000_000_000
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(Exception):
    """A setting is missing or malformed; str() is the one line to print."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the process is configured with. Secrets are excluded from repr."""

    discord_token: str = field(repr=False)
    evolink_api_key: str = field(repr=False)
    evolink_base_url: str = "https://api.evolink.ai"
    database_url: str = "sqlite:///data/upscale-bot.db"
    discord_guild_ids: tuple[int, ...] = ()
    discord_api_base_url: str | None = None
    discord_gateway_url: str | None = None
    poll_min_seconds: float = 5.0
    poll_max_seconds: float = 60.0
    card_edit_seconds: float = 15.0
    poll_concurrency: int = 16
    evolink_timeout_seconds: float = 30.0
    interaction_edit_window_seconds: float = 840.0
    log_level: str = "INFO"
    alert_channel_id: int | None = None
    default_limits: dict[str, int | None] = field(default_factory=lambda: dict(SAFE_DEFAULT_LIMITS))
    allow_dm_upscale: bool = False
    callback_url: str | None = None
    # The process's one HTTP listener: /healthz, /metrics and, with CALLBACK_URL, the callback path. Port 0 picks
    # a free port (tests). `http_listen_name` is the setting it came from, so an error names what the operator set.
    http_listen: tuple[str, int] = ("127.0.0.1", 8080)
    http_listen_name: str = "HTTP_LISTEN"
    callback_poll_seconds: float = 300.0
    discord_connect_timeout_seconds: float = 30.0
    database_pool_size: int = 10
    lease_seconds: float = 30.0
    discord_shard_count: int | None = None     # None: one process, Discord's recommended count
    discord_shard_ids: tuple[int, ...] = ()    # empty: every shard
    credits_alert_below: float | None = None   # ALERT_CHANNEL_ID hears once when the balance falls below; None: off
    credits_check_seconds: float = 600.0       # how often the balance is checked while that alert is on

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be printed (used by the log redaction filter): the token, the API key and
        the database password."""
        return tuple(s for s in (self.discord_token, self.evolink_api_key, database_password(self.database_url))
                     if s)


def _database_url(raw: str) -> str:
    """sqlite:///file or postgresql://... (postgres:// too); a bad one is named without its password."""
    if is_postgres(raw):
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ConfigError(f"DATABASE_URL is not a valid PostgreSQL URL: {_shown(shown_url(raw), 120)}") from None
        return raw
    try:
        sqlite_path(raw)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return raw


def _shown(raw: str, limit: int = 40) -> str:
    """A bad value as the error line quotes it: short, and never more than one line."""
    return repr(clip(raw, limit))


def _number(name: str, raw: str, *, minimum: float, kind: type = float) -> float:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {_shown(raw)}") from None
    if finite_number(value, minimum=minimum) is None:
        raise ConfigError(f"{name} must be at least {minimum}, got {_shown(raw)}")
    return value


def _whole(name: str, raw: str) -> int:
    value = whole_number(raw, max_digits=10)
    if value is None or value > MAX_LIMIT_VALUE:
        raise ConfigError(f"{name} must be a whole number from 0 to {MAX_LIMIT_VALUE:,} (or empty for unlimited), "
                          f"got {_shown(raw)}")
    return value


def _url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(raw)
    except ValueError:
        parts = None
    if parts is not None and "@" in parts.netloc:
        # discord.py and the Evolink client send their own Authorization header; a URL login is never used,
        # and echoing it would print a password.
        raise ConfigError(f"{name} must not carry a user name or password")
    if parts is None or parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{name} must be a {' or '.join(schemes)} URL, got {_shown(raw, 80)}")
    return raw.rstrip("/")


# Evolink refuses callback addresses on internal networks, and adds nothing to the URL we give it but
# needs room for our "/<task id>/<token>" within its 2048 characters.
MAX_CALLBACK_URL = 2000


def _callback_url(raw: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(raw)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        parts, host = None, ""
    if parts is None or parts.scheme != "https" or not host or parts.query or parts.fragment or parts.username:
        shown = "a URL with credentials" if "@" in raw else _shown(raw, 80)
        raise ConfigError("CALLBACK_URL must be a public https URL without query or credentials, such as "
                          f"https://bot.example.com/evolink, got {shown}")
    if not is_public_host(host):
        raise ConfigError("CALLBACK_URL must name a public host (Evolink refuses internal addresses), "
                          f"got {_shown(host, 80)}")
    if len(raw) > MAX_CALLBACK_URL:
        raise ConfigError(f"CALLBACK_URL must be at most {MAX_CALLBACK_URL} characters")
    return raw.rstrip("/")


def _listen(name: str, raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    number = whole_number(port, max_digits=5)
    if not sep or not host or number is None or number > 65535:
        raise ConfigError(f"{name} must be host:port, such as 127.0.0.1:8080, got {_shown(raw, 80)}")
    return host, number


def _http_listen(http: str, older: str) -> dict[str, object]:
    """HTTP_LISTEN, or CALLBACK_LISTEN (its older name) when only that is set. Both set to different addresses is
    refused rather than one silently ignored: the operator's proxy may point at either, and a guess would leave
    callbacks or health checks knocking on a port nobody listens on."""
    if not older:
        return {"http_listen": _listen("HTTP_LISTEN", http)} if http else {}
    old = _listen("CALLBACK_LISTEN", older)
    if not http:
        return {"http_listen": old, "http_listen_name": "CALLBACK_LISTEN"}
    new = _listen("HTTP_LISTEN", http)
    if new != old:
        raise ConfigError(f"HTTP_LISTEN ({_shown(http, 60)}) and its older name CALLBACK_LISTEN "
                          f"({_shown(older, 60)}) are both set and differ: keep only HTTP_LISTEN")
    return {"http_listen": new}


def _snowflake(name: str, raw: str) -> int:
    value = whole_number(raw, max_digits=20)
    if value is None or not 0 < value < 2**64:
        raise ConfigError(f"{name} must be a Discord id (digits only), got {_shown(raw)}")
    return value


def not_set(name: str) -> ConfigError:
    """The one line for a required setting that is missing (the same wherever it is found missing)."""
    return ConfigError(f"{name} is not set: put it in the environment or in .env (see .env.example)")


def load_settings(env: Mapping[str, str] | None = None, *, dotenv_path: str | Path | None = ".env",
                  require_credentials: bool = True) -> Settings:
    """Read settings from `env` (default: os.environ) over the `.env` file; raise ConfigError on a bad one."""
    values: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if env is None else env)

    def get(name: str) -> str:
        return values.get(name, "").strip()

    def required(name: str) -> str:
        value = get(name)
        if not value and require_credentials:
            raise not_set(name)
        return value

    token = required("DISCORD_TOKEN")
    api_key = required("EVOLINK_API_KEY")
    kwargs: dict[str, object] = {"discord_token": token, "evolink_api_key": api_key}

    if raw := get("EVOLINK_BASE_URL"):
        kwargs["evolink_base_url"] = _url("EVOLINK_BASE_URL", raw, ("https", "http"))
    if raw := get("DATABASE_URL"):
        kwargs["database_url"] = _database_url(raw)
    if raw := get("DISCORD_GUILD_IDS"):
        kwargs["discord_guild_ids"] = tuple(
            _snowflake("DISCORD_GUILD_IDS", part.strip()) for part in raw.split(",") if part.strip()
        )
    if raw := get("DISCORD_API_BASE_URL"):
        kwargs["discord_api_base_url"] = _url("DISCORD_API_BASE_URL", raw, ("https", "http"))
    if raw := get("DISCORD_GATEWAY_URL"):
        kwargs["discord_gateway_url"] = _url("DISCORD_GATEWAY_URL", raw, ("wss", "ws"))
    numbers = {
        "POLL_MIN_SECONDS": ("poll_min_seconds", 0.05, float),
        "POLL_MAX_SECONDS": ("poll_max_seconds", 0.05, float),
        "CARD_EDIT_SECONDS": ("card_edit_seconds", 0.0, float),
        "POLL_CONCURRENCY": ("poll_concurrency", 1, int),
        "EVOLINK_TIMEOUT_SECONDS": ("evolink_timeout_seconds", 0.1, float),
        "INTERACTION_EDIT_WINDOW_SECONDS": ("interaction_edit_window_seconds", 0.0, float),
        "CALLBACK_POLL_SECONDS": ("callback_poll_seconds", 0.05, float),
        "DATABASE_POOL_SIZE": ("database_pool_size", 1, int),
        "LEASE_SECONDS": ("lease_seconds", 1.0, float),
        "DISCORD_CONNECT_TIMEOUT_SECONDS": ("discord_connect_timeout_seconds", 0.1, float),
        "CREDITS_ALERT_BELOW": ("credits_alert_below", 0.0, float),
        "CREDITS_CHECK_SECONDS": ("credits_check_seconds", 1.0, float),
    }
    for name, (attr, minimum, kind) in numbers.items():
        if raw := get(name):
            kwargs[attr] = _number(name, raw, minimum=minimum, kind=kind)
    if raw := get("LOG_LEVEL"):
        if raw.upper() not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {_shown(raw)}")
        kwargs["log_level"] = raw.upper()
    if raw := get("ALERT_CHANNEL_ID"):
        kwargs["alert_channel_id"] = _snowflake("ALERT_CHANNEL_ID", raw)

    defaults = dict(SAFE_DEFAULT_LIMITS)
    for name in LIMIT_NAMES:
        key = f"DEFAULT_{name.upper()}"
        if key in values:  # present but empty means unlimited
            raw = get(key)
            defaults[name] = None if not raw else _whole(key, raw)
    kwargs["default_limits"] = defaults
    if raw := get("ALLOW_DM_UPSCALE"):
        if raw.lower() not in _TRUE + _FALSE:
            raise ConfigError(f"ALLOW_DM_UPSCALE must be true or false, got {_shown(raw)}")
        kwargs["allow_dm_upscale"] = raw.lower() in _TRUE
    if raw := get("CALLBACK_URL"):
        kwargs["callback_url"] = _callback_url(raw)
    kwargs.update(_http_listen(get("HTTP_LISTEN"), get("CALLBACK_LISTEN")))

    if raw := get("DISCORD_SHARD_COUNT"):
        count = whole_number(raw, max_digits=5)
        if not count:
            raise ConfigError(f"DISCORD_SHARD_COUNT must be a whole number of shards, at least 1, got {_shown(raw)}")
        kwargs["discord_shard_count"] = count
    if raw := get("DISCORD_SHARD_IDS"):
        ids = [whole_number(part.strip(), max_digits=5) for part in raw.split(",") if part.strip()]
        count = kwargs.get("discord_shard_count")
        if not ids or None in ids or len(set(ids)) != len(ids):
            raise ConfigError(f"DISCORD_SHARD_IDS must be distinct shard numbers such as 0,1, got {_shown(raw)}")
        if not isinstance(count, int) or max(ids) >= count:  # type: ignore[type-var]
            raise ConfigError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT, and every id must be below it "
                              f"(shards are numbered from 0), got {_shown(raw)}")
        kwargs["discord_shard_ids"] = tuple(sorted(ids))  # type: ignore[arg-type]
    settings = Settings(**kwargs)  # type: ignore[arg-type]
    if settings.poll_max_seconds < settings.poll_min_seconds:
        raise ConfigError("POLL_MAX_SECONDS must not be smaller than POLL_MIN_SECONDS")
    if settings.callback_poll_seconds < settings.poll_min_seconds:
        raise ConfigError("CALLBACK_POLL_SECONDS must not be smaller than POLL_MIN_SECONDS")
    if settings.interaction_edit_window_seconds > 900:
        raise ConfigError("INTERACTION_EDIT_WINDOW_SECONDS must be at most 900 (interaction tokens last 15 minutes)")
    return settings
