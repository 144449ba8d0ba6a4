"""The benchmark scripts run in their reduced mode and print their figures (no timing is asserted here).

The scripts run at the same time, each as its own subprocess, to keep this file well under a minute.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MACHINE_LINES = ("machine: cpu=", "mode: reduced")
EXPECTED: dict[str, tuple[str, ...]] = {
    "bench_submit.py": (
        "figure: A reservations per second = ",
        "figure: A reservation p50 latency = ",
        "figure: A reservation p99 latency = ",
        "figure: B refused = ",
        "figure: C submissions per second = ",
        "goal: A reservations per second >= 500",
    ),
    "bench_poll_scale.py": (
        "figure: tasks loaded = 1000",
        "figure: bot RSS peak (VmHWM) = ",
        "figure: bot CPU as % of one core = ",
        "figure: bot CPU per poll cycle (one query of every running task) = ",
        "figure: queries per running task in the window = ",
        "figure: queries for a 600 s task (progress reported linearly) = ",
        "figure: queries for a 600 s task with a fixed 8 s poll = 75",
        "goal: bot RSS peak < 200",
        "goal: bot CPU < 10",
        "goal: queries for a 600 s task <= 15",
    ),
    "bench_poll_scale.py --callbacks --complete": (
        "-- callbacks, tasks end and are delivered",
        "figure: tasks running at the window's start / end = ",
        "figure: callbacks sent / answered 2xx in the window = ",
        "figure: bot CPU as % of one core = ",
        "figure: queries for a 600 s task with callbacks (safety-net queries, then the one confirming it) = 2",
        "goal: bot CPU < 10",
    ),
    "bench_ack_latency.py": (
        "figure: interactions sent = 20",
        "figure: ack latency p50 = ",
        "figure: ack latency p99 = ",
        "goal: ack latency p99 < 100",
    ),
    "bench_notify_latency.py": (
        "figure: jobs = 20",
        "figure: channel post latency p50 (measured, scaled time) = ",
        "figure: channel post latency p99 (measured, scaled time) = ",
        "figure: channel post latency p99 (x100, real-time equivalent) = ",
        "figure: DM latency p50 (measured, scaled time) = ",
    ),
}


@pytest.fixture(scope="module")
def outputs() -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    running = {name: subprocess.Popen([sys.executable, str(BENCHMARKS / name.split()[0]), *name.split()[1:]],
                                      cwd=BENCHMARKS.parent,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      stdin=subprocess.DEVNULL)
               for name in EXPECTED}
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        for name, proc in running.items():
            out, err = proc.communicate(timeout=55)
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    yield results


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_benchmark_runs_reduced_and_prints_its_figures(
        script: str, outputs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = outputs[script]
    assert result.returncode == 0, f"{script} exited {result.returncode}:\n{result.stdout}\n{result.stderr[-3000:]}"
    for expected in (*MACHINE_LINES, *EXPECTED[script]):
        assert expected in result.stdout, f"{script} did not print {expected!r}:\n{result.stdout}"
    assert "n/a" not in result.stdout.split("params:")[-1], f"{script} printed a missing figure:\n{result.stdout}"
