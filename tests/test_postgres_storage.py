"""The PostgreSQL driver's own promises: the URL forms it takes, migrating once when processes start together,
the pool size. (Everything the bot does with its storage runs on both backends in the other test files.)"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg
import pytest

from storage import open_storage
from storage.postgres import PostgresStorage
from storage.schema import migrations
from tests.postgres import PostgresSource

pytestmark = pytest.mark.backends("postgres")


async def _applied(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [row[0] for row in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


async def test_processes_starting_together_migrate_once(database_url: str) -> None:
    opened = await asyncio.gather(*(open_storage(database_url, pool_size=2) for _ in range(5)))
    try:
        assert await _applied(database_url) == [number for number, _, _ in migrations("postgres")]
        for storage in opened:  # every one of them works on the migrated schema
            assert await storage.user_tasks(1, 10) == []
    finally:
        await asyncio.gather(*(storage.close() for storage in opened))


async def test_the_pool_has_database_pool_size_connections_at_most(database_url: str) -> None:
    storage = await open_storage(database_url, pool_size=3)
    try:
        assert isinstance(storage, PostgresStorage)
        assert storage._pool.get_max_size() == 3
        # More concurrent queries than connections still all complete (they wait for a free one).
        results = await asyncio.gather(*(storage.user_tasks(n, 1) for n in range(12)))
        assert results == [[] for _ in range(12)]
    finally:
        await storage.close()


async def test_the_postgres_scheme_and_a_unix_socket_host_work(database_url: str,
                                                               postgres_source: PostgresSource) -> None:
    parts = urlsplit(database_url)
    short = database_url.replace("postgresql://", "postgres://", 1)
    storage = await open_storage(short)
    await storage.close()
    cluster = postgres_source.cluster
    if cluster is None or cluster.root is None:
        pytest.skip("the socket folder of a TEST_DATABASE_URL server is unknown; the throwaway cluster's is tested")
    socket_url = f"postgresql://{parts.username}@{parts.path}?host={cluster.root}&port={parts.port}"
    storage = await open_storage(socket_url)
    try:
        assert await storage.user_tasks(1, 10) == []
        conn = await asyncpg.connect(socket_url)
        try:
            assert await conn.fetchval("SELECT inet_server_addr()") is None, "connected over the unix socket"
        finally:
            await conn.close()
    finally:
        await storage.close()
