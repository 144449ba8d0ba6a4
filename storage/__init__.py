"""Persistence behind one interface, so services never see SQL and a PostgreSQL driver can follow."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

# Task statuses, defined once: running upstream; ended as the provider reports it; ended on any account
# (`expired` is ours: the provider no longer knows the task).
ACTIVE_STATUSES = ("pending", "processing")
UPSTREAM_FINAL_STATUSES = ("completed", "failed", "cancelled")
FINAL_STATUSES = (*UPSTREAM_FINAL_STATUSES, "expired")


@dataclass(slots=True)
class TaskRecord:
    """One /upscale job as stored: the columns of the `tasks` table."""

    id: int
    guild_id: int | None
    channel_id: int
    user_id: int
    source_kind: str
    source_url: str
    source_label: str
    scale: int
    status: str
    created_at: float
    upstream_id: str | None = None
    upstream_status: str | None = None
    progress: int = 0
    estimated_time: float | None = None
    credits_reserved: float | None = None
    credits_used: float | None = None
    result_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    submitted_at: float | None = None
    finished_at: float | None = None
    next_poll_at: float | None = None
    poll_failures: int = 0
    card_message_id: int | None = None
    card_edited_at: float | None = None
    card_progress: int | None = None
    card_status: str | None = None
    card_state: str | None = None
    dm_state: str | None = None
    dm_message_id: int | None = None
    channel_state: str | None = None
    channel_message_id: int | None = None
    delivery_failures: int = 0
    notified_at: float | None = None
    quota_day: str | None = None
    quota_month: str | None = None
    quota_state: str | None = None
    credits_charged: float | None = None
    member_reset: int = 0
    callback_token: str | None = field(default=None, repr=False)
    lease_owner: str | None = None   # the process working on the task (PostgreSQL: several may run)
    lease_until: float | None = None  # ... until then; after it, another process may take the task over
    locale: str | None = None         # the member's Discord locale (their card, replies and DMs)
    guild_locale: str | None = None   # the server's preferred locale (the public channel post)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def display_id(self) -> str:
        """What members see and type: the upstream id once known, else our own number."""
        return self.upstream_id or f"#{self.id}"


TASK_COLUMNS = frozenset(f.name for f in fields(TaskRecord))


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """What counts against each limit right now, by limit name."""

    user_daily_jobs: float = 0
    user_concurrent_jobs: float = 0
    user_monthly_credits: float = 0
    server_daily_jobs: float = 0
    server_monthly_credits: float = 0

    def of(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass(frozen=True, slots=True)
class QuotaLogEntry:
    """One change in a server's quota audit log. Since migration sqlite 0008 / postgres 0006 a change is a `code`
    and its `params` (bot.quota.LOG_CODES), rendered in the reader's language; rows written before keep their
    English `action` words (and no code), shown as they are."""

    actor_id: int
    at: float
    code: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    action: str | None = None


@dataclass(frozen=True, slots=True)
class NewTask:
    """What the task service knows before the paid POST."""

    guild_id: int | None
    channel_id: int
    user_id: int
    source_kind: str
    source_url: str
    source_label: str
    scale: int
    created_at: float
    callback_token: str | None = None
    # The submitting process holds the row until the POST must have ended; if it dies first, the row falls due
    # then and whoever claims it tells the member (the POST is never repeated).
    lease_owner: str | None = None
    lease_until: float | None = None
    next_poll_at: float | None = None
    locale: str | None = None        # the member's Discord locale: their card, replies and DMs
    guild_locale: str | None = None  # the server's preferred locale: the public channel post


class Storage(Protocol):
    """The async interface every storage driver implements."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """A `SELECT 1`, for /healthz: raises if the database does not answer (the caller bounds the wait)."""
        ...

    async def count_active(self) -> int:
        """Tasks not yet ended (submitting, pending, processing), for the upscale_tasks_active gauge."""
        ...

    async def get_task(self, task_id: int) -> TaskRecord | None: ...

    async def get_task_by_upstream_id(self, upstream_id: str) -> TaskRecord | None: ...

    async def update_task(self, task_id: int, changes: Mapping[str, Any],
                          expect: Mapping[str, Any] | None = None) -> TaskRecord | None:
        """Apply `changes` only if every `expect` column still has its value (None means IS NULL).

        Returns the updated row, or None when nothing matched.

        The conditional update is what keeps two workers from both moving a task or both delivering it.
        """
        ...

    async def claim_due(self, now: float, limit: int, *, owner: str, lease: float,
                        exclude: Sequence[int] = ()) -> tuple[list[TaskRecord], int]:
        """Due tasks this process may work on, at most `limit`, leased to `owner` until `now + lease`; and how
        many of them were taken over from another process whose lease ran out.

        A `submitting` row is claimed only once its lease ran out (its POST must be over: the process making it
        died or stalled), never while its own process may still be sending it.
        PostgreSQL: rows locked FOR UPDATE SKIP LOCKED, so processes claiming together never get the same task.
        SQLite serves one process (start-up refuses a second), so leases are not needed there."""
        ...

    async def next_due_at(self, *, owner: str, exclude: Sequence[int] = ()) -> float | None:
        """When the next task becomes claimable by `owner`: its next query, or the end of another process's
        lease on it, whichever is later."""
        ...

    async def renew_lease(self, task_id: int, owner: str, until: float) -> bool:
        """Extend `owner`'s lease on a task; False when another process took it over (then stop working on it)."""
        ...

    async def result_dms(self, user_id: int) -> bool:
        """Whether the member gets results by DM too (the default), or turned that off with /dms."""
        ...

    async def set_result_dms(self, user_id: int, enabled: bool) -> None: ...

    async def take_turn(self, name: str, now: float, interval: float) -> bool:
        """True for the one caller, across processes, that may do `name` now: at most once per `interval`."""
        ...

    async def set_flag(self, name: str, on: bool, at: float) -> bool:
        """Set flag `name` (off until first set) as observed at `at` (unix time); True for the one caller, across
        processes, that turned it over. An observation older than the newest one applied changes nothing, so a
        process acting on a stale reading cannot undo what another saw later. Kept in `throttles`: `last_at` is
        the newest observation's time, negative while the flag is off."""
        ...

    async def make_due(self, task_id: int, callback_token: str, now: float) -> bool | None:
        """Set a running task's next query to `now` if `callback_token` is its token. Always a new value, so a
        query already in flight (whose update expects the old one) cannot push the task back. The lease is
        dropped too, so whichever process the callback woke claims the task at once instead of waiting for
        another process's lease to run out (a query that other process has in flight then fails its update).
        Returns True if made due, False if the task has ended, None if no task has this id and token."""
        ...

    async def poll_ending_within(self, now: float, spread: float) -> int:
        """Running tasks expected to have ended by `now + spread`: query each at a random moment in that time
        (sooner only, never later). Returns how many were running and expected to have ended."""
        ...

    async def tasks_with_status(self, status: str) -> list[TaskRecord]: ...

    async def user_tasks(self, user_id: int, limit: int, prefix: str = "") -> list[TaskRecord]: ...

    # Quotas (see storage/sqlite_quotas.py for what each does).
    async def create_task_within_limits(self, task: NewTask, *, day: str, month: str,
                                        limits: Mapping[str, int | None]) -> TaskRecord | None: ...

    async def quota_usage(self, guild_id: int | None, user_id: int, *, day: str, month: str) -> QuotaUsage: ...

    async def server_report(self, guild_id: int, *, day: str, month: str) -> dict[str, Any]: ...

    async def guild_limits(self, guild_id: int) -> dict[str, int | None]: ...

    async def set_guild_limit(self, guild_id: int, name: str, value: int | None) -> None: ...

    async def role_limits(self, guild_id: int) -> list[tuple[int, str, int]]: ...

    async def set_role_limit(self, guild_id: int, role_id: int, name: str, value: int | None) -> bool: ...

    async def blocked(self, guild_id: int | None, user_id: int) -> tuple[str | None] | None: ...

    async def set_blocked(self, guild_id: int, user_id: int, *, blocked: bool, actor_id: int, at: float,
                          reason: str | None = None) -> bool: ...

    async def reset_member_usage(self, guild_id: int, user_id: int, *, month: str) -> int: ...

    async def add_quota_log(self, guild_id: int, actor_id: int, at: float, code: str,
                            params: Mapping[str, Any]) -> None:
        """Log an admin change as a code and its values (JSON-serialisable), not as words."""
        ...

    async def quota_log(self, guild_id: int, limit: int = 20) -> list[QuotaLogEntry]:
        """The last `limit` changes, newest first."""
        ...

    # Copying a whole database (`python -m bot copy-db`, bot/copy_db.py; storage/*_copy.py). Tables are those of
    # storage.schema.TABLE_KEYS; table_counts, iter_rows, insert_rows, id_high_water and after_copy run inside
    # copy_session.
    def copy_session(self, *, write: bool) -> AbstractAsyncContextManager[None]:
        """One transaction for the whole copy: one snapshot to read from, or, with `write`, the target's writes,
        committed only when the block ends without an error (else nothing is left behind)."""
        ...

    async def database_identity(self) -> str:
        """The same for one database however it is reached, so it is never both source and target."""
        ...

    async def table_columns(self, table: str) -> list[str]: ...

    async def table_counts(self) -> dict[str, int]: ...

    def iter_rows(self, table: str, columns: Sequence[str], batch: int) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The table in primary-key order, `batch` rows at a time (a big table is never read whole)."""
        ...

    async def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...

    async def id_high_water(self) -> dict[str, int]:
        """For tasks and quota_log: the highest id ever handed out (the next new row gets a higher one)."""
        ...

    async def after_copy(self, high_water: Mapping[str, int]) -> None:
        """Make the target's next ids follow `high_water` (the source's id_high_water)."""
        ...


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(database_url: str) -> bool:
    return database_url.startswith(POSTGRES_SCHEMES)


def sqlite_path(database_url: str) -> str:
    """The file a sqlite:/// DATABASE_URL names (relative to the working directory unless absolute);
    ValueError with the message to show when the URL is not one."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or len(database_url) == len(prefix):
        raise ValueError("DATABASE_URL must look like sqlite:///path/to/file.db or "
                         "postgresql://user:password@host:5432/database")
    return database_url[len(prefix) :]


def shown_url(database_url: str) -> str:
    """DATABASE_URL as it may be printed: the password, in the user part or the query, replaced by ***."""
    if not is_postgres(database_url):
        return database_url
    scheme, _, rest = database_url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    pairs = [f"{key}=***" if key.lower() in ("password", "sslpassword") else f"{key}{eq}{value}"
             for key, eq, value in (pair.partition("=") for pair in query.split("&") if pair)]
    return f"{scheme}://{netloc}{slash}{path}" + (f"?{'&'.join(pairs)}" if pairs else "")


def database_password(database_url: str) -> str | None:
    """The password a PostgreSQL DATABASE_URL carries (in the user part or the query), to keep it out of logs."""
    if not is_postgres(database_url):
        return None
    rest = database_url.partition("://")[2]
    rest, _, query = rest.partition("?")
    user = rest.partition("/")[0].rpartition("@")[0]
    if ":" in user:
        from urllib.parse import unquote

        return unquote(user.split(":", 1)[1]) or None
    for key, _, value in (pair.partition("=") for pair in query.split("&")):
        if key.lower() == "password" and value:
            from urllib.parse import unquote

            return unquote(value)
    return None


async def open_storage(database_url: str, *, pool_size: int = 10) -> Storage:
    """Open the driver DATABASE_URL names (sqlite:///file or postgresql://...) with its migrations applied."""
    if is_postgres(database_url):
        from storage.postgres import PostgresStorage

        return await PostgresStorage.open(database_url, pool_size=pool_size)
    from storage.sqlite import SQLiteStorage

    return await SQLiteStorage.open(sqlite_path(database_url))
