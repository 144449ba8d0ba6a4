"""The suite's PostgreSQL leg: where its server comes from, running a test on both backends, and the loud skip.

A test (or module, via `pytestmark`) marked `@pytest.mark.backends("sqlite", "postgres")` that uses the
`database_url` fixture (directly or through `bot_runner`, `bot`, `bot_process`, `storage_url`, `storage`) runs
once per backend, with ids `[sqlite]` and `[postgres]`. The PostgreSQL server is `TEST_DATABASE_URL` when set,
else a throwaway cluster this worker starts (sandbox/postgres_cluster.py), else that leg is skipped, loudly:
a warning, and a line at the end of the run. With UPSCALE_REQUIRE_POSTGRES=1 (CI) a missing leg fails instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import warnings
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import pytest

from sandbox.postgres_cluster import PostgresCluster, PostgresUnavailable, create_database, drop_database

BACKENDS = ("sqlite", "postgres")
SKIP_PREFIX = "PostgreSQL leg SKIPPED"
REQUIRE_ENV = "UPSCALE_REQUIRE_POSTGRES"

T = TypeVar("T")


class PostgresLegSkipped(pytest.PytestWarning):
    """Shown in the warnings summary: some tests did not run on PostgreSQL."""


def required() -> bool:
    """CI sets UPSCALE_REQUIRE_POSTGRES=1: there, no PostgreSQL is a failure, never a skip."""
    return os.environ.get(REQUIRE_ENV, "").strip() == "1"


def no_postgres(reason: str) -> NoReturn:
    """Skip the calling test (or fail it when PostgreSQL is required) with the reason on one line."""
    message = f"{SKIP_PREFIX}: {reason}"
    if required():
        pytest.fail(f"{message} ({REQUIRE_ENV}=1: this run must include the PostgreSQL leg)", pytrace=False)
    pytest.skip(message)


class DatabaseSupply:
    """Empty databases made ahead on a thread of their own: CREATE DATABASE copies a template (0.05-0.2 s here),
    which then overlaps the tests' own waiting instead of adding to each test's setup. Drops go there too."""

    def __init__(self, admin_url: str, ahead: int = 2) -> None:
        self.admin_url = admin_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="postgres-databases", daemon=True)
        self._thread.start()
        self._ready = [self._submit(create_database(admin_url)) for _ in range(ahead)]
        self._dropping: list[Future[None]] = []

    def _submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    def take(self) -> str:
        """A new empty database's URL (waits if none is ready yet; raises what CREATE DATABASE raised)."""
        made = self._ready.pop(0)
        self._ready.append(self._submit(create_database(self.admin_url)))
        return made.result(timeout=120)

    def give_back(self, url: str) -> None:
        """Drop the database in the background (connections a killed bot left open are ended)."""
        self._dropping = [d for d in self._dropping if not d.done() or d.exception() is not None]
        self._dropping.append(self._submit(drop_database(self.admin_url, url)))

    def close(self) -> None:
        """Drop what was made ahead and wait for every drop, then stop the thread; failures become a warning."""
        failures: list[str] = []
        for made in self._ready:
            try:
                self._dropping.append(self._submit(drop_database(self.admin_url, made.result(timeout=120))))
            except Exception as error:
                failures.append(str(error))
        for drop in self._dropping:
            try:
                drop.result(timeout=120)
            except Exception as error:
                failures.append(str(error))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        if failures:
            warnings.warn(pytest.PytestWarning(f"test databases not dropped on {self.admin_url}: {failures[0]}"),
                          stacklevel=1)


@dataclass
class PostgresSource:
    """Where this worker's PostgreSQL comes from: an admin URL that may CREATE DATABASE, or why there is none."""

    admin_url: str | None
    reason: str | None = None
    cluster: PostgresCluster | None = None
    supply: DatabaseSupply | None = None

    def require(self) -> str:
        if self.admin_url is None:
            no_postgres(self.reason or "no PostgreSQL")
        return self.admin_url

    def new_database(self) -> str:
        """A new empty database for one test (skips or fails the test when there is no PostgreSQL)."""
        admin_url = self.require()
        if self.supply is None:
            self.supply = DatabaseSupply(admin_url)
        try:
            return self.supply.take()
        except Exception as error:
            raise RuntimeError(f"cannot CREATE DATABASE on the test PostgreSQL server: {error}") from error

    def drop_database(self, url: str) -> None:
        assert self.supply is not None
        self.supply.give_back(url)

    def close(self) -> None:
        if self.supply is not None:
            self.supply.close()
            self.supply = None


@contextlib.contextmanager
def open_source() -> Iterator[PostgresSource]:
    """TEST_DATABASE_URL, else a throwaway cluster (stopped and removed on exit), else the reason there is none."""
    configured = os.environ.get("TEST_DATABASE_URL", "").strip()
    if configured:
        source = PostgresSource(configured)
        try:
            yield source
        finally:
            source.close()
        return
    cluster = PostgresCluster()
    try:
        cluster.start()
    except PostgresUnavailable as error:
        reason = f"TEST_DATABASE_URL is unset and no throwaway cluster: {error}"
        if not required():
            warnings.warn(PostgresLegSkipped(f"{SKIP_PREFIX}: {reason}"), stacklevel=1)
        yield PostgresSource(None, reason)
        return
    source = PostgresSource(cluster.url, cluster=cluster)
    try:
        yield source
    finally:
        try:
            source.close()
        finally:
            cluster.stop()


def parametrize_backends(metafunc: pytest.Metafunc) -> None:
    """pytest_generate_tests: a test marked with `backends(...)` that uses `database_url` runs once per backend."""
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is None or "database_url" not in metafunc.fixturenames:
        return
    names = list(marker.args) or list(BACKENDS)
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"@pytest.mark.backends takes distinct names out of {BACKENDS}, got {tuple(names)}")
    metafunc.parametrize("database_url", names, indirect=True, ids=names)


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


def summary_line(stats: dict[str, list[Any]]) -> str | None:
    """The line for the end of the run when tests did not run on PostgreSQL (xdist forwards the skips here)."""
    reasons = [reason for report in stats.get("skipped", []) if SKIP_PREFIX in (reason := _skip_reason(report))]
    if not reasons:
        return None
    reason = reasons[0][reasons[0].index(SKIP_PREFIX):]
    hint = "" if "TEST_DATABASE_URL" in reason.split(":", 2)[-1] else " (set TEST_DATABASE_URL)"
    return f"{reason} — {len(reasons)} test{'s' if len(reasons) != 1 else ''} did not run on PostgreSQL{hint}"
