"""Unit tests of the task state machine and the poll schedule."""

from __future__ import annotations

import pytest

from bot.lifecycle import can_move, delivery_delay, next_status, poll_delay


@pytest.mark.parametrize(
    ("current", "upstream", "expected"),
    [
        ("submitting", "pending", "pending"),
        ("submitting", "processing", "processing"),
        ("pending", "processing", "processing"),
        ("pending", "completed", "completed"),
        ("processing", "completed", "completed"),
        ("processing", "failed", "failed"),
        ("processing", "cancelled", "cancelled"),
        ("pending", "cancelled", "cancelled"),
        # never backwards, never out of a final state
        ("processing", "pending", "processing"),
        ("completed", "processing", "completed"),
        ("failed", "completed", "failed"),
        ("expired", "completed", "expired"),
        # unknown upstream statuses keep the task where it is
        ("processing", "mystery_state", "processing"),
        ("pending", "", "pending"),
    ],
)
def test_next_status(current: str, upstream: str, expected: str) -> None:
    assert next_status(current, upstream) == expected


def test_final_states_have_no_way_out() -> None:
    for final in ("completed", "failed", "cancelled", "expired"):
        for other in ("submitting", "pending", "processing", "completed", "failed", "cancelled", "expired"):
            assert not can_move(final, other)
    assert not can_move("pending", "submitting")
    assert can_move("submitting", "failed")


def _queries_until(done_at: float, estimated: float | None, *, minimum: float = 5, maximum: float = 60) -> int:
    t, count = 0.0, 0
    while True:
        t += poll_delay(elapsed=t, estimated_time=estimated, progress=0, failures=0,
                        minimum=minimum, maximum=maximum)
        count += 1
        if t >= done_at:
            return count


def test_a_600_s_task_takes_at_most_15_queries() -> None:
    # A fixed 8 s poll would take 75.
    assert _queries_until(600, 600) <= 15


def test_a_task_running_past_its_estimate_is_still_polled_within_bounds() -> None:
    assert _queries_until(1800, 600) <= 15 + 20
    delay = poll_delay(elapsed=5000, estimated_time=600, progress=50, failures=0, minimum=5, maximum=60)
    assert 5 <= delay <= 60


def test_progress_brings_the_next_query_forward() -> None:
    slow = poll_delay(elapsed=100, estimated_time=600, progress=0, failures=0, minimum=5, maximum=60)
    nearly_done = poll_delay(elapsed=100, estimated_time=600, progress=95, failures=0, minimum=5, maximum=60)
    assert nearly_done < slow


def test_no_estimate_starts_at_the_minimum_and_widens() -> None:
    assert poll_delay(elapsed=0, estimated_time=None, progress=0, failures=0, minimum=5, maximum=60) == 5
    assert poll_delay(elapsed=100, estimated_time=None, progress=0, failures=0, minimum=5, maximum=60) == 20


def test_errors_back_off_exponentially_up_to_the_maximum() -> None:
    delays = [poll_delay(elapsed=0, estimated_time=600, progress=0, failures=n, minimum=5, maximum=60)
              for n in range(1, 6)]
    assert delays == [10, 20, 40, 60, 60]
    assert delivery_delay(1, minimum=5, maximum=60) == 10
    assert delivery_delay(50, minimum=5, maximum=60) == 60


def test_past_the_estimate_progress_keeps_the_next_query_close() -> None:
    # 700 s into a 600 s task at 95%: about 37 s left by progress, so do not wait the full 60 s.
    delay = poll_delay(elapsed=700, estimated_time=600, progress=95, failures=0, minimum=5, maximum=60)
    assert delay < 30
    stuck = poll_delay(elapsed=3000, estimated_time=600, progress=99, failures=0, minimum=5, maximum=60)
    assert stuck == 60, "a task stuck at 99% is not hammered: 2.5% of its age, here past the maximum"
