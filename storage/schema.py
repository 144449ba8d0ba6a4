"""What both storage drivers share: the numbered migrations of each dialect, and the task columns they accept."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

from storage import ACTIVE_STATUSES, TASK_COLUMNS, QuotaLogEntry

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# A task not yet ended: being submitted, or running upstream (it holds a member's concurrent-job slot).
NOT_ENDED = "status IN ({})".format(", ".join(f"'{status}'" for status in ("submitting", *ACTIVE_STATUSES)))

# A task running upstream with a query scheduled (the rows a callback or a restart may make due sooner).
SCHEDULED_RUNNING = "status IN ({}) AND next_poll_at IS NOT NULL".format(
    ", ".join(f"'{status}'" for status in ACTIVE_STATUSES))


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(number, name, sql) for every file in storage/migrations/<dialect>, in order. Each dialect numbers its
    own: a SQLite database and a PostgreSQL one reach the same schema by different steps."""
    found = []
    for entry in resources.files("storage").joinpath("migrations", dialect).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def conditional_update(task_id: int, changes: Mapping[str, Any], expect: Mapping[str, Any],
                       mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    """`UPDATE tasks SET ... WHERE id = ... AND <every expected value> RETURNING *` and its parameters; `mark(n)`
    writes the n-th placeholder in the driver's style (`?` or `$n`). None expects IS NULL."""
    check_columns(changes)
    check_columns(expect)
    params: list[Any] = [*changes.values(), task_id]
    sets = ", ".join(f"{name} = {mark(index)}" for index, name in enumerate(changes, 1))
    conditions = [f"id = {mark(len(params))}"]
    for name, value in expect.items():
        if value is None:
            conditions.append(f"{name} IS NULL")
        else:
            params.append(value)
            conditions.append(f"{name} = {mark(len(params))}")
    return f"UPDATE tasks SET {sets} WHERE {' AND '.join(conditions)} RETURNING *", params


def check_columns(names: Mapping[str, Any]) -> None:
    """Column names are put into SQL text, so only the task table's own names are allowed."""
    unknown = set(names) - TASK_COLUMNS
    if unknown:
        raise ValueError(f"unknown task columns: {sorted(unknown)}")


# `python -m bot copy-db`: every table with rows to move and its primary key (rows stream in key order), in the
# order copied. usage_counters is derived from tasks: the target's own triggers rebuild it as the tasks go in, and
# the copy compares it with the source's afterwards instead of copying it. Migration bookkeeping is not copied.
COPIED_TABLES: dict[str, tuple[str, ...]] = {
    "tasks": ("id",),
    "guild_limits": ("guild_id", "name"),
    "role_limits": ("guild_id", "role_id", "name"),
    "blocked_members": ("guild_id", "user_id"),
    "quota_log": ("id",),
    "member_settings": ("user_id",),
}
USAGE_TABLE = "usage_counters"
USAGE_COLUMNS = ("guild_key", "user_id", "period", "jobs", "credits")
TABLE_KEYS: dict[str, tuple[str, ...]] = {**COPIED_TABLES, USAGE_TABLE: USAGE_COLUMNS[:3]}
# Tables whose `id` is kept as it is: the target's next id must follow the source's highest.
ID_TABLES = ("tasks", "quota_log")

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def check_copy_names(table: str, columns: Sequence[str]) -> None:
    """Table and column names go into SQL text (they come from the catalog, but a copy must not trust that)."""
    if table not in TABLE_KEYS:
        raise ValueError(f"not a copied table: {table!r}")
    bad = [name for name in columns if not _IDENTIFIER.match(name)]
    if bad or not columns:
        raise ValueError(f"bad column names for {table}: {bad or 'none'}")


def log_params(params: Mapping[str, Any]) -> str:
    """An audit-log entry's values as the JSON text both dialects store (keys sorted: one text per entry)."""
    return json.dumps(dict(params), sort_keys=True, ensure_ascii=False)


def log_entry(actor_id: int, at: float, code: str | None, params: str | None, action: str | None) -> QuotaLogEntry:
    """A quota_log row as read back: a code with its values, or (rows from before codes) the English words."""
    return QuotaLogEntry(actor_id=int(actor_id), at=float(at), code=code, params=json.loads(params) if params else {},
                         action=action)
