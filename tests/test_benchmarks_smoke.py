"""The benchmark scripts run in their reduced mode and print their figures (no timing is asserted here).

The scripts run at the same time, each as its own subprocess, to keep this file well under a minute, and once per
test run: under pytest-xdist the tests of this file may land on every worker, and the first worker to need the
outputs runs the scripts while the others wait and read its results. The two that take `--database` also run once
on PostgreSQL (smaller still), and bench_processes.py (two bot processes, PostgreSQL only; about 3 s more for this
file) runs there only, on that worker's PostgreSQL server (tests/postgres.py: TEST_DATABASE_URL or a throwaway
cluster); without one those cases are skipped as the suite's PostgreSQL leg is.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import PostgresSource, no_postgres

# On one xdist worker (scripts/test runs --dist loadgroup): the scripts run for ~25 s, and every worker that
# needed their outputs would otherwise wait for them at once.
pytestmark = pytest.mark.xdist_group("benchmark-smoke")

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


# On PostgreSQL: the figures carry [postgres], and the server's CPU is reported (or said to be not measured).
ON_POSTGRES: dict[str, tuple[str, ...]] = {
    "bench_submit.py --database postgres --seconds 1": (
        "database: postgresql ",
        "figure: A reservations per second [postgres] = ",
        "figure: A reservation p99 latency [postgres] = ",
        "figure: A database server CPU per reservation [postgres] = ",
        "figure: B refused [postgres] = ",
        "figure: C submissions per second [postgres] = ",
        "goal: A reservations per second [postgres] >= 500",
    ),
    "bench_poll_scale.py --database postgres --tasks 300 --window 4": (
        "figure: tasks loaded [postgres] = 300",
        "figure: tasks running at the window's start / end [postgres] = 300 / 300",
        "figure: bot CPU as % of one core [postgres] = ",
        "figure: database server CPU over the window [postgres] = ",
        "goal: bot CPU [postgres] < 10",
        "goal: queries for a 600 s task <= 15",
    ),
    # Two processes only (PostgreSQL only): polling, the SIGKILL take-over (LEASE_SECONDS 3) and notify latency.
    "bench_processes.py --processes 2 --tasks 1000 --window 3 --notify-jobs 10": (
        "figure: tasks running at the window's start / end [2 processes] = 1000 / 1000",
        "figure: process 1 (shard 1 of 2) task queries per second (its /metrics) [2 processes] = ",
        "figure: task queries per second, sum of the processes' /metrics [2 processes] = ",
        "figure: database server CPU as % of one core [2 processes] = ",
        "figure: take-over delay: kill -> no task of the killed process more than 2 s overdue [2 processes] = ",
        "figure: jobs / posted in the channel / told by DM [2 processes] = 10 / 10 / 10",
        "goal: bot CPU per process [2 processes] < 10",
    ),
}


NO_POSTGRES = "no PostgreSQL"  # the key under which the outputs carry why the PostgreSQL runs did not happen


def _run_all(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Every script at once; the PostgreSQL runs only when this worker has a PostgreSQL server."""
    commands = {name: [sys.executable, str(BENCHMARKS / name.split()[0]), *name.split()[1:]] for name in EXPECTED}
    source: PostgresSource = request.getfixturevalue("postgres_source")
    if source.admin_url is not None:
        commands.update({name: [sys.executable, str(BENCHMARKS / name.split()[0]), *name.split()[1:],
                                "--postgres-url", source.admin_url] for name in ON_POSTGRES})
    running = {name: subprocess.Popen(command, cwd=BENCHMARKS.parent, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
               for name, command in commands.items()}
    results: dict[str, Any] = {NO_POSTGRES: (source.reason or "no PostgreSQL") if source.admin_url is None else None}
    try:
        for name, proc in running.items():
            out, err = proc.communicate(timeout=55)
            results[name] = {"returncode": proc.returncode, "stdout": out, "stderr": err}
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results


@pytest.fixture(scope="module")
def outputs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The scripts' outputs, made once per test run: xdist workers share the parent of their base temp folder,
    so the first one runs the scripts under a lock and leaves the results there for the others."""
    if not hasattr(request.config, "workerinput"):
        return _run_all(request)
    shared = tmp_path_factory.getbasetemp().parent / "benchmark-smoke"
    shared.mkdir(exist_ok=True)
    with (shared / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "outputs.json"
        if done.exists():
            return json.loads(done.read_text())
        results = _run_all(request)
        done.write_text(json.dumps(results))
        return results


def _check(script: str, result: dict[str, Any], expected: tuple[str, ...]) -> None:
    stdout = result["stdout"]
    assert result["returncode"] == 0, f"{script} exited {result['returncode']}:\n{stdout}\n{result['stderr'][-3000:]}"
    for line in (*MACHINE_LINES, *expected):
        assert line in stdout, f"{script} did not print {line!r}:\n{stdout}"
    assert "n/a" not in stdout.split("params:")[-1], f"{script} printed a missing figure:\n{stdout}"


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_benchmark_runs_reduced_and_prints_its_figures(script: str, outputs: dict[str, Any]) -> None:
    _check(script, outputs[script], EXPECTED[script])


@pytest.mark.parametrize("script", sorted(ON_POSTGRES))
def test_benchmark_runs_reduced_on_postgres(script: str, outputs: dict[str, Any]) -> None:
    if outputs[NO_POSTGRES] is not None:
        no_postgres(outputs[NO_POSTGRES])  # skipped (failed with UPSCALE_REQUIRE_POSTGRES=1) like the PostgreSQL leg
    _check(script, outputs[script], ON_POSTGRES[script])
