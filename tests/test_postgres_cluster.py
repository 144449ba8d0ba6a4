"""The PostgreSQL test infrastructure itself: the throwaway cluster, empty databases, the `backends` marker and
the loud skip (or failure, in CI) when there is no PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
from pathlib import Path

import asyncpg
import pytest

from sandbox import postgres_cluster
from sandbox.postgres_cluster import (
    PostgresCluster,
    PostgresUnavailable,
    create_database,
    drop_database,
    find_server_binaries,
)
from tests.postgres import REQUIRE_ENV, SKIP_PREFIX, PostgresSource, no_postgres

INNER_TESTS = """
import pytest

pytestmark = pytest.mark.backends("sqlite", "postgres")


def test_url(database_url, request):
    scheme = {"sqlite": "sqlite:///", "postgres": "postgresql://"}[request.node.callspec.id]
    assert database_url.startswith(scheme)


def test_without_a_database():
    pass


@pytest.mark.backends("sqlite")
def test_sqlite_only(storage_url):
    assert storage_url.startswith("sqlite:///")
"""


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def test_a_throwaway_cluster_runs_unprivileged_answers_and_leaves_nothing_behind() -> None:
    try:
        async with PostgresCluster() as cluster:
            conn = await asyncpg.connect(cluster.url)
            try:
                assert await conn.fetchval("SELECT 1") == 1
                settings = dict(await conn.fetch(
                    "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])",
                    ["fsync", "synchronous_commit", "full_page_writes", "listen_addresses", "max_connections"]))
            finally:
                await conn.close()
            assert settings == {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                                "listen_addresses": "127.0.0.1", "max_connections": "200"}
            pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
            server_uid = os.stat(f"/proc/{pid}").st_uid
            if os.geteuid() == 0:
                assert cluster.run_as is not None and server_uid == pwd.getpwnam(cluster.run_as).pw_uid != 0
            else:
                assert server_uid == os.geteuid()
            root, port = cluster.root, cluster.port
    except PostgresUnavailable as error:
        no_postgres(f"no throwaway cluster: {error}")
    assert root is not None and port is not None
    assert not root.exists(), "the cluster's folder is removed"
    assert _refused(port), "the server is stopped"


def _ended_pid() -> int:
    """The pid of a process that has ended: the stand-in for a test run that was killed."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    return ended.pid


def test_a_cluster_left_by_a_killed_run_is_removed_by_the_next_start(tmp_path: Path) -> None:
    """Only the folder here (a server in it would be stopped first by the same stop() the test above checks)."""
    orphan, running = tmp_path / f"{postgres_cluster.PREFIX}orphan", tmp_path / f"{postgres_cluster.PREFIX}running"
    for root, owner in ((orphan, _ended_pid()), (running, os.getpid())):
        (root / "data").mkdir(parents=True)
        (root / postgres_cluster.OWNER_FILE).write_text(str(owner))
    PostgresCluster()._reap_orphans(tmp_path)
    assert not orphan.exists(), "its owner is gone: removed"
    assert running.exists(), "its owner is alive: kept"


async def test_databases_are_created_empty_and_dropped_even_while_connected(postgres_source: PostgresSource) -> None:
    admin_url = postgres_source.require()
    url = await create_database(admin_url)
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT current_database()") == name
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        await drop_database(admin_url, url)  # with this connection still open, as a killed bot's would be
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    admin = await asyncpg.connect(admin_url)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
    finally:
        await admin.close()


def _fake_install(folder: Path, names: tuple[str, ...] = ("initdb", "pg_ctl", "postgres")) -> None:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)


def test_missing_server_binaries_are_named_in_one_line(tmp_path: Path) -> None:
    _fake_install(tmp_path / "17" / "bin", ("initdb", "pg_ctl"))  # no postgres beside them: not usable
    with pytest.raises(PostgresUnavailable) as raised:
        find_server_binaries(search_path=str(tmp_path / "empty"), patterns=(str(tmp_path / "*" / "bin"),))
    message = str(raised.value)
    assert "\n" not in message
    assert "initdb" in message and "pg_ctl" in message and "TEST_DATABASE_URL" in message
    assert str(tmp_path / "*" / "bin") in message, "says where it looked"


def test_the_highest_installed_version_is_chosen(tmp_path: Path) -> None:
    for version in ("9.6", "15", "14"):
        _fake_install(tmp_path / version / "bin")
    found = find_server_binaries(search_path=str(tmp_path / "empty"), patterns=(str(tmp_path / "*" / "bin"),))
    assert found == tmp_path / "15" / "bin"


def _inner_run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run INNER_TESTS with this suite's fixtures and hooks in a pytest of their own."""
    pytester.makeconftest('pytest_plugins = ["tests.conftest"]')
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-o", "asyncio_mode=auto",
                              "-o", "asyncio_default_fixture_loop_scope=function",
                              "-W", "ignore::pytest.PytestUnknownMarkWarning", *args)


def test_the_backends_marker_gives_one_test_per_backend(pytester: pytest.Pytester) -> None:
    result = _inner_run(pytester, "--collect-only", "-q")
    collected = {line for line in result.stdout.lines if "::" in line}
    assert collected == {"test_inner.py::test_url[sqlite]", "test_inner.py::test_url[postgres]",
                         "test_inner.py::test_without_a_database", "test_inner.py::test_sqlite_only[sqlite]"}


def test_the_postgres_case_gets_a_postgres_database(pytester: pytest.Pytester, postgres_source: PostgresSource,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", postgres_source.require())  # the inner run uses this worker's server
    result = _inner_run(pytester, "-v")
    result.assert_outcomes(passed=4)
    assert "test_inner.py::test_url[postgres] PASSED" in result.stdout.str()


def _without_postgres(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-postgres-here"))
    monkeypatch.setattr(postgres_cluster, "SEARCH_PATTERNS", (str(tmp_path / "no-postgres-here" / "*"),))


def test_without_postgres_the_leg_is_skipped_loudly(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    _without_postgres(monkeypatch, tmp_path)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    result = _inner_run(pytester, "-rs")
    result.assert_outcomes(passed=3, skipped=1, warnings=1)
    output = result.stdout.str()
    assert "PostgresLegSkipped" in output, "a warning"
    summary = [line for line in result.stdout.lines if "did not run on PostgreSQL" in line]
    assert len(summary) == 1 and SKIP_PREFIX in summary[0], output
    assert "no PostgreSQL server binaries" in summary[0] and "1 test did not run on PostgreSQL" in summary[0]


def test_without_postgres_when_required_the_leg_fails(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    _without_postgres(monkeypatch, tmp_path)
    monkeypatch.setenv(REQUIRE_ENV, "1")
    result = _inner_run(pytester)
    result.assert_outcomes(passed=3, errors=1)
    assert f"{REQUIRE_ENV}=1" in result.stdout.str()
