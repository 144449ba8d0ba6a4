"""The reduced upstream fault campaign (benchmarks/upstream_faults.py): 20% of task queries fail."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from upstream_faults import run_upstream_faults


async def test_every_task_is_delivered_once_and_retry_after_is_honoured() -> None:
    result = await run_upstream_faults(tasks=12, fault_rate=0.2, seed=5, timeout=90)
    print(result)
    assert sum(result["faults_injected"].values()) > 0, "the campaign did inject faults"
    assert result["delivered_in_channel"] == result["delivered_by_dm"] == 12
    assert result["duplicate_channel_posts"] == result["duplicate_dms"] == 0
    assert result["early_retries (before Retry-After)"] == 0
