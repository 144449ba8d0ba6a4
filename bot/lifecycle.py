"""The task state machine and the poll schedule, as pure functions (unit-tested without I/O)."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field

from storage import ACTIVE_STATUSES, FINAL_STATUSES, UPSTREAM_FINAL_STATUSES


def new_owner() -> str:
    """A name for this process on the tasks it leases: host, pid, and a random part (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Lease:
    """This process's claim on the tasks it works on: whose (owner) and for how long (LEASE_SECONDS). When a
    process dies, its tasks are taken over by the others once their leases run out."""

    owner: str = field(default_factory=new_owner)
    seconds: float = 30.0

# Which of our statuses may follow which. `submitting` ends in `failed` when the POST fails or the process
# died mid-POST; an upstream task may jump straight to a final status between two polls.
TRANSITIONS: dict[str, frozenset[str]] = {
    "submitting": frozenset({*ACTIVE_STATUSES, *UPSTREAM_FINAL_STATUSES}),
    "pending": frozenset({*ACTIVE_STATUSES, *FINAL_STATUSES}),
    "processing": frozenset({"processing", *FINAL_STATUSES}),
    **{status: frozenset() for status in FINAL_STATUSES},
}

_UPSTREAM_TO_OURS = {status: status for status in (*ACTIVE_STATUSES, *UPSTREAM_FINAL_STATUSES)}


def can_move(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def next_status(current: str, upstream_status: str) -> str:
    """Our status after upstream reported `upstream_status`.

    An unknown upstream status keeps the task where it is (still running, polled with back-off); a status
    that would move the task backwards (processing -> pending) is ignored the same way.
    """
    mapped = _UPSTREAM_TO_OURS.get(upstream_status)
    if mapped is None or not can_move(current, mapped):
        return current
    return mapped


def is_active(status: str) -> bool:
    return status in ACTIVE_STATUSES


def poll_delay(*, elapsed: float, estimated_time: float | None, progress: int, failures: int,
               minimum: float, maximum: float) -> float:
    """Seconds until the next query of a running task.

    Follows the provider's estimate: poll rarely while much time is left, more often near the expected end,
    then slowly widen again once the estimate has passed. Errors back off exponentially. This keeps a
    600 s task to about a dozen queries where a fixed 8 s poll would take 75.
    """
    if failures > 0:
        return min(maximum, minimum * (2 ** min(failures, 16)))
    if estimated_time and estimated_time > 0:
        remaining = estimated_time - elapsed
        by_progress = elapsed * (100 - progress) / progress if 0 < progress < 100 and elapsed > 0 else None
        if by_progress is not None:
            # Progress is a second opinion on how much is left; trust whichever says "sooner". Past the
            # estimate it is the only opinion left (a floor keeps a task stuck at 99% from being hammered).
            remaining = min(remaining, by_progress) if remaining > 0 else max(by_progress, 0.05 * elapsed)
        delay = remaining / 2 if remaining > 0 else elapsed * 0.1
    else:
        delay = max(minimum, elapsed * 0.2)
    return max(minimum, min(maximum, delay))


def delivery_delay(failures: int, *, minimum: float, maximum: float) -> float:
    """Back-off between attempts to tell a member when Discord is failing."""
    return min(maximum, minimum * (2 ** min(failures, 16)))
