"""What both storage drivers share: the numbered migrations of each dialect, and the task columns they accept."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from storage import ACTIVE_STATUSES, TASK_COLUMNS

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

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


def check_columns(names: Mapping[str, Any]) -> None:
    """Column names are put into SQL text, so only the task table's own names are allowed."""
    unknown = set(names) - TASK_COLUMNS
    if unknown:
        raise ValueError(f"unknown task columns: {sorted(unknown)}")
