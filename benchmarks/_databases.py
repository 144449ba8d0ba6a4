"""The databases a benchmark runs on: `--database sqlite|postgres|both`, and the PostgreSQL server behind it.

PostgreSQL is `--postgres-url`, else TEST_DATABASE_URL, else a throwaway cluster (sandbox/postgres_cluster.py)
started once per run; each phase gets a fresh database on it. With PostgreSQL the database work runs in the
server's processes, not the bot's, so a comparison with SQLite (whose work is inside the bot) must add the
server's CPU: `PostgresServer.cpu_seconds()` reads it from /proc when the server runs on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from _bench import proc_stat_fields, process_tree_cpu_seconds

from bot.config import Settings
from sandbox.postgres_cluster import PostgresCluster, create_database, drop_database, new_database_name

CHOICES = ("sqlite", "postgres", "both")
# The bot's default DATABASE_POOL_SIZE: the PostgreSQL runs use it, as a bot with default settings would.
POOL_SIZE: int = next(f.default for f in dataclasses.fields(Settings) if f.name == "database_pool_size")
SQLITE_SETTINGS = "file, WAL, synchronous=NORMAL (as the bot opens it)"
# What the summary line shows of the server's settings (the throwaway cluster sets the first three off).
SHOWN_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_connections")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", choices=CHOICES, default="sqlite",
                        help="sqlite (default), postgres, or both: SQLite then PostgreSQL in the same run, with "
                             "identical parameters, figures side by side at the end")
    parser.add_argument("--postgres-url", metavar="URL",
                        help="a PostgreSQL URL allowed to CREATE DATABASE (default: TEST_DATABASE_URL, else a "
                             "throwaway cluster started for this run)")


def backends(choice: str) -> tuple[str, ...]:
    return ("sqlite", "postgres") if choice == "both" else (choice,)


class PostgresServer:
    """The PostgreSQL server of one benchmark run: its admin URL, fresh databases on it (dropped at `stop()`),
    its version and settings, and its CPU (postmaster and children) when its processes are on this machine."""

    def __init__(self, url: str | None = None) -> None:
        self.configured = (url or os.environ.get("TEST_DATABASE_URL", "")).strip() or None
        self.cluster: PostgresCluster | None = None
        self.admin_url = ""
        self.postmaster: int | None = None
        self.not_measured = ""
        self.version = ""
        self.settings: dict[str, str] = {}
        self._databases: list[str] = []

    async def start(self) -> None:
        if self.configured:
            self.admin_url = self.configured
        else:
            self.cluster = PostgresCluster()
            await asyncio.to_thread(self.cluster.start)
            self.admin_url = self.cluster.url
        conn = await asyncpg.connect(self.admin_url)
        try:
            self.version = str(await conn.fetchval("SHOW server_version"))
            for name in SHOWN_SETTINGS:
                self.settings[name] = str(await conn.fetchval(f"SHOW {name}"))
            backend_pid, client_port = await conn.fetchrow("SELECT pg_backend_pid(), inet_client_port()")
            self.postmaster = self._postmaster_of(int(backend_pid), client_port)
        finally:
            await conn.close()

    def _postmaster_of(self, backend_pid: int, client_port: int | None) -> int | None:
        """The postmaster's pid if the server runs on this machine (else None, and `not_measured` says why).

        Our own cluster names it in postmaster.pid. For a given URL, the backend serving our connection must be a
        local process whose title names our client port; its parent is then the postmaster."""
        if self.cluster is not None:
            return int((self.cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])
        host = urlsplit(self.admin_url).hostname or ""
        if host not in LOCAL_HOSTS:
            self.not_measured = f"the server ({host}) is not on this machine"
            return None
        try:
            title = Path(f"/proc/{backend_pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int(proc_stat_fields(backend_pid)[1])
            parent_name = Path(f"/proc/{parent}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            title, parent, parent_name = "", 0, ""
        if client_port is None or f"({client_port})" not in title or parent_name != "postgres":
            self.not_measured = "the server's processes are not visible on this machine (another host, a container)"
            return None
        return parent

    def describe(self) -> str:
        """One line: where the server comes from, its version and settings, and whether its CPU is measured."""
        source = ("a throwaway cluster (sandbox/postgres_cluster.py), tuned for tests, not durability"
                  if self.cluster else "the server at --postgres-url / TEST_DATABASE_URL")
        shown = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        cpu = (f"server CPU measured from /proc (postmaster pid {self.postmaster} and its children)"
               if self.postmaster else f"server CPU not measured: {self.not_measured}")
        return (f"postgresql {self.version}, {source}; {shown}; asyncpg {asyncpg.__version__}, "
                f"pool of {POOL_SIZE} (the bot's default DATABASE_POOL_SIZE); {cpu}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds of every server process so far (None when not measured). Includes the
        whole server: with a shared TEST_DATABASE_URL server, other clients' work too."""
        if self.postmaster is None:
            return None
        return process_tree_cpu_seconds(self.postmaster)

    async def new_database(self, purpose: str) -> str:
        """A fresh, empty database for one phase; its URL."""
        url = await create_database(self.admin_url, new_database_name(f"bench_{purpose}"))
        self._databases.append(url)
        return url

    async def stop(self) -> None:
        for url in self._databases:
            with contextlib.suppress(Exception):
                await drop_database(self.admin_url, url)
        self._databases.clear()
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.stop)


@contextlib.asynccontextmanager
async def postgres_if_needed(choice: str, url: str | None) -> AsyncIterator[PostgresServer | None]:
    """The run's PostgresServer when `choice` includes PostgreSQL (started once, stopped at the end), else None."""
    if "postgres" not in backends(choice):
        yield None
        return
    server = PostgresServer(url)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def databases_for(choice: str, url: str | None) -> AsyncIterator[PostgresServer | None]:
    """postgres_if_needed(), after printing which databases the run uses (the first lines of its output)."""
    async with postgres_if_needed(choice, url) as server:
        if "sqlite" in backends(choice):
            print(f"database: {describe_sqlite()}")
        if server is not None:
            print(f"database: {server.describe()}", flush=True)
        yield server


def describe_sqlite() -> str:
    return f"sqlite {sqlite3.sqlite_version}, {SQLITE_SETTINGS}; aiosqlite, one connection"
