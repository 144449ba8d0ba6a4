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
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import pytest

from sandbox.postgres_cluster import PostgresCluster, PostgresUnavailable

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


@dataclass
class PostgresSource:
    """Where this worker's PostgreSQL comes from: an admin URL that may CREATE DATABASE, or why there is none."""

    admin_url: str | None
    reason: str | None = None
    cluster: PostgresCluster | None = None

    def require(self) -> str:
        if self.admin_url is None:
            no_postgres(self.reason or "no PostgreSQL")
        return self.admin_url


@contextlib.contextmanager
def open_source() -> Iterator[PostgresSource]:
    """TEST_DATABASE_URL, else a throwaway cluster (stopped and removed on exit), else the reason there is none."""
    configured = os.environ.get("TEST_DATABASE_URL", "").strip()
    if configured:
        yield PostgresSource(configured)
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
    try:
        yield PostgresSource(cluster.url, cluster=cluster)
    finally:
        cluster.stop()


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to the end on its own loop in another thread: fixtures that are not async (so any test
    may use them) can still create and drop databases, without touching the test's own event loop."""

    async def run() -> T:
        return await make()

    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(run()))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


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
    return (f"{reason} — {len(reasons)} test{'s' if len(reasons) != 1 else ''} did not run on PostgreSQL "
            f"(set TEST_DATABASE_URL or install the PostgreSQL server)")
