"""Settings and start-up: a bad setting stops the bot with one readable line; `sync`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from sandbox.offline import Sandbox
from storage import sqlite_path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "secret-token-value-123"
KEY = "sk-secret-api-key-456"
BASE = {"DISCORD_TOKEN": TOKEN, "EVOLINK_API_KEY": KEY}


def test_defaults_follow_the_design_table() -> None:
    settings = load_settings(BASE, dotenv_path=None)
    assert settings.evolink_base_url == "https://api.evolink.ai"
    assert settings.database_url == "sqlite:///data/upscale-bot.db"
    assert settings.discord_guild_ids == ()
    assert (settings.poll_min_seconds, settings.poll_max_seconds) == (5.0, 60.0)
    assert settings.card_edit_seconds == 15.0
    assert settings.log_level == "INFO"
    assert TOKEN not in repr(settings) and KEY not in repr(settings)


def test_every_setting_is_read() -> None:
    settings = load_settings({
        **BASE, "EVOLINK_BASE_URL": "http://127.0.0.1:9/", "DATABASE_URL": "sqlite:///tmp/x.db",
        "DISCORD_GUILD_IDS": "123, 456", "DISCORD_API_BASE_URL": "http://127.0.0.1:1/api/v10",
        "DISCORD_GATEWAY_URL": "ws://127.0.0.1:1/gateway", "POLL_MIN_SECONDS": "2", "POLL_MAX_SECONDS": "30",
        "LOG_LEVEL": "debug", "ALERT_CHANNEL_ID": "789", "CARD_EDIT_SECONDS": "20",
    }, dotenv_path=None)
    assert settings.evolink_base_url == "http://127.0.0.1:9"
    assert sqlite_path(settings.database_url) == "tmp/x.db"
    assert settings.discord_guild_ids == (123, 456)
    assert settings.discord_api_base_url == "http://127.0.0.1:1/api/v10"
    assert settings.discord_gateway_url == "ws://127.0.0.1:1/gateway"
    assert (settings.poll_min_seconds, settings.poll_max_seconds) == (2.0, 30.0)
    assert (settings.log_level, settings.alert_channel_id, settings.card_edit_seconds) == ("DEBUG", 789, 20.0)


def test_shard_and_lease_settings_are_read() -> None:
    plain = load_settings(BASE, dotenv_path=None)
    assert (plain.discord_shard_count, plain.discord_shard_ids, plain.lease_seconds) == (None, (), 30.0)
    settings = load_settings({**BASE, "DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": " 3, 1", "LEASE_SECONDS": "12"},
                             dotenv_path=None)
    assert (settings.discord_shard_count, settings.discord_shard_ids, settings.lease_seconds) == (4, (1, 3), 12.0)


def test_callback_settings_are_read_and_off_by_default() -> None:
    plain = load_settings(BASE, dotenv_path=None)
    assert plain.callback_url is None
    assert (plain.http_listen, plain.http_listen_name, plain.callback_poll_seconds) == \
        (("127.0.0.1", 8080), "HTTP_LISTEN", 300.0)
    settings = load_settings({**BASE, "CALLBACK_URL": "https://bot.example.com/evolink/",
                              "CALLBACK_LISTEN": "[::]:9000", "CALLBACK_POLL_SECONDS": "120"}, dotenv_path=None)
    assert settings.callback_url == "https://bot.example.com/evolink"
    assert (settings.http_listen, settings.callback_poll_seconds) == (("::", 9000), 120.0)
    assert settings.http_listen_name == "CALLBACK_LISTEN", "the older name still works, and errors name it"


def test_http_listen_wins_only_when_the_older_name_agrees() -> None:
    assert load_settings({**BASE, "HTTP_LISTEN": "0.0.0.0:9100"}, dotenv_path=None).http_listen == ("0.0.0.0", 9100)
    same = load_settings({**BASE, "HTTP_LISTEN": "127.0.0.1:9100", "CALLBACK_LISTEN": "127.0.0.1:9100"},
                         dotenv_path=None)
    assert (same.http_listen, same.http_listen_name) == (("127.0.0.1", 9100), "HTTP_LISTEN")
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "HTTP_LISTEN": "127.0.0.1:9100", "CALLBACK_LISTEN": "127.0.0.1:8080"},
                      dotenv_path=None)
    assert "HTTP_LISTEN" in str(caught.value) and "CALLBACK_LISTEN" in str(caught.value)


def test_a_callback_url_with_credentials_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "CALLBACK_URL": "https://user:hunter2@bot.example.com/cb"}, dotenv_path=None)
    assert "hunter2" not in str(caught.value) and "CALLBACK_URL" in str(caught.value)


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"DISCORD_TOKEN={TOKEN}\nEVOLINK_API_KEY={KEY}\nPOLL_MIN_SECONDS=3\n")
    settings = load_settings({"POLL_MIN_SECONDS": "4"}, dotenv_path=env_file)
    assert settings.discord_token == TOKEN and settings.poll_min_seconds == 4.0


@pytest.mark.parametrize(("env", "named"), [
    ({"EVOLINK_API_KEY": KEY}, "DISCORD_TOKEN"),
    ({"DISCORD_TOKEN": TOKEN}, "EVOLINK_API_KEY"),
    ({**BASE, "EVOLINK_BASE_URL": "api.evolink.ai"}, "EVOLINK_BASE_URL"),
    ({**BASE, "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({**BASE, "DATABASE_URL": "postgresql://bot:hunter2@db:99999/upscale"}, "DATABASE_URL"),
    ({**BASE, "DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE"),
    ({**BASE, "LEASE_SECONDS": "0"}, "LEASE_SECONDS"),
    ({**BASE, "DISCORD_SHARD_COUNT": "0"}, "DISCORD_SHARD_COUNT"),
    ({**BASE, "DISCORD_SHARD_COUNT": "two"}, "DISCORD_SHARD_COUNT"),
    ({**BASE, "DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS"),
    ({**BASE, "DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,2"}, "DISCORD_SHARD_IDS"),
    ({**BASE, "DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1,1"}, "DISCORD_SHARD_IDS"),
    ({**BASE, "DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "a"}, "DISCORD_SHARD_IDS"),
    ({**BASE, "DISCORD_GUILD_IDS": "12,abc"}, "DISCORD_GUILD_IDS"),
    ({**BASE, "DISCORD_API_BASE_URL": "localhost:5000"}, "DISCORD_API_BASE_URL"),
    ({**BASE, "DISCORD_API_BASE_URL": "https://user:hunter2@proxy.example.com/api/v10"}, "DISCORD_API_BASE_URL"),
    ({**BASE, "EVOLINK_BASE_URL": "https://user:hunter2@api.evolink.ai"}, "EVOLINK_BASE_URL"),
    ({**BASE, "DISCORD_GATEWAY_URL": "http://x/gateway"}, "DISCORD_GATEWAY_URL"),
    ({**BASE, "POLL_MIN_SECONDS": "fast"}, "POLL_MIN_SECONDS"),
    ({**BASE, "POLL_MAX_SECONDS": "-1"}, "POLL_MAX_SECONDS"),
    ({**BASE, "POLL_MIN_SECONDS": "nan"}, "POLL_MIN_SECONDS"),
    ({**BASE, "POLL_MIN_SECONDS": "30", "POLL_MAX_SECONDS": "10"}, "POLL_MAX_SECONDS"),
    ({**BASE, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ({**BASE, "ALERT_CHANNEL_ID": "#alerts"}, "ALERT_CHANNEL_ID"),
    ({**BASE, "POLL_CONCURRENCY": "1.5"}, "POLL_CONCURRENCY"),
    ({**BASE, "CALLBACK_URL": "http://bot.example.com/evolink"}, "CALLBACK_URL"),
    ({**BASE, "CALLBACK_URL": "https://127.0.0.1/evolink"}, "CALLBACK_URL"),
    ({**BASE, "CALLBACK_URL": "https://192.168.1.20/evolink"}, "CALLBACK_URL"),
    ({**BASE, "CALLBACK_URL": "https://[::1]:8443/evolink"}, "CALLBACK_URL"),
    ({**BASE, "CALLBACK_URL": "https://localhost/evolink"}, "CALLBACK_URL"),
    ({**BASE, "CALLBACK_URL": "https://bot.example.com/evolink?key=1"}, "CALLBACK_URL"),
    ({**BASE, "CALLBACK_URL": "https://bot.example.com:99999/evolink"}, "CALLBACK_URL"),
    ({**BASE, "CALLBACK_URL": "https://bot.example.com/" + "a" * 2000}, "CALLBACK_URL"),
    ({**BASE, "CALLBACK_LISTEN": "8080"}, "CALLBACK_LISTEN"),
    ({**BASE, "HTTP_LISTEN": "8080"}, "HTTP_LISTEN"),
    ({**BASE, "HTTP_LISTEN": "localhost:99999"}, "HTTP_LISTEN"),
    ({**BASE, "CALLBACK_LISTEN": "0.0.0.0:80800"}, "CALLBACK_LISTEN"),
    ({**BASE, "CALLBACK_POLL_SECONDS": "1", "POLL_MIN_SECONDS": "5"}, "CALLBACK_POLL_SECONDS"),
])
def test_a_bad_setting_is_one_line_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env, dotenv_path=None)
    message = str(caught.value)
    assert named in message and "\n" not in message
    assert TOKEN not in message and KEY not in message and "hunter2" not in message


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EVOLINK_"))}
    return subprocess.run([sys.executable, "-m", "bot", *args], env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_start_up_with_a_missing_setting_exits_with_one_line(tmp_path: Path) -> None:
    result = _run([], {"DISCORD_TOKEN": TOKEN}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "EVOLINK_API_KEY" in lines[0]
    assert TOKEN not in result.stderr + result.stdout


async def test_sync_command_syncs_and_exits(box: Sandbox, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EVOLINK_"))}
    env.update(box.env(tmp_path / "bot.db"))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "sync", cwd=tmp_path, env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, output.decode()
    names = {command["name"] for command in box.discord.commands[box.guild_id]}
    assert {"upscale", "tasks", "task"} <= names
    assert box.discord.identify_count == 0, "sync does not connect to the gateway"
    assert not (tmp_path / "bot.db").exists(), "sync opens no database"
