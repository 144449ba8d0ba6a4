"""The reduced crash campaign (benchmarks/crash_campaign.py): SIGKILLs at chosen and random moments."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from crash_campaign import run_campaign


async def test_reduced_crash_campaign_loses_nothing_and_posts_nothing_twice() -> None:
    result = await run_campaign(tasks=12, kills=4, seed=11, query_fault_rate=0.2, timeout=120)
    print(result)
    assert result["settled_before_deadline"] is True
    assert result["tasks"] >= 8
    assert (result["tasks_lost"], result["duplicate_channel_posts"], result["duplicate_dms"],
            result["quota_ledger_mismatches"]) == (0, 0, 0, 0)
    assert sum(result["kills"].values()) == 4  # type: ignore[attr-defined]
