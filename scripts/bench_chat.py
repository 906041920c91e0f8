"""Benchmark: `tgtg chat` on the offline model, cold (a new process per turn) and warm.

Cold: runs `tgtg chat "<question>"` in a fresh interpreter RUNS times against a seeded
temporary data directory and reports min/median/max wall and CPU time (imports, settings,
database, graph compile, one turn). Python's bytecode cache matters: with
PYTHONDONTWRITEBYTECODE set every module is compiled from source on every start.
Warm: one process compiles the chat graph once and runs RUNS turns;
reports the median per turn. Run from the repository root:

    python scripts/bench_chat.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "where should I run 4 H100 for 6 hours"
ROOT = Path(__file__).resolve().parent.parent


def _env(data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTG_LLM_")}
    env["TGTG_DATA_DIR"] = data_dir
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tgtg(env: dict[str, str], *args: str) -> tuple[float, float]:
    """Run `tgtg ARGS` in a new process; return its wall time and CPU time (user + system)."""
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(
        [sys.executable, "-c", "from ui.cli import app; app()", *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start, _children_cpu() - cpu


def cold(runs: int, data_dir: str) -> tuple[list[float], list[float]]:
    """Return the wall and CPU times of `runs` chat turns, each in a new process.

    CPU time is what the turn costs on an idle machine; wall time also counts waiting for a
    core on a busy one.
    """
    env = _env(data_dir)
    _tgtg(env, "seed")
    _tgtg(env, "chat", QUESTION)  # first run migrates and writes bytecode caches
    timed = [_tgtg(env, "chat", QUESTION) for _ in range(runs)]
    return [w for w, _ in timed], [c for _, c in timed]


def warm(runs: int, data_dir: str) -> list[float]:
    """Return the time of `runs` chat turns in one process (graph compiled once)."""
    code = f"""
import sys, time
from typer.testing import CliRunner
from ui.cli import app
runner = CliRunner()
times = []
for _ in range({runs} + 1):
    start = time.perf_counter()
    result = runner.invoke(app, ["chat", {QUESTION!r}])
    assert result.exit_code == 0, result.output
    times.append(time.perf_counter() - start)
print(" ".join(str(t) for t in times[1:]))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(data_dir),
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return [float(t) for t in out.stdout.split()]


def _line(label: str, times: list[float]) -> str:
    return (
        f"{label}: min {min(times):.2f} s, median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s ({len(times)} runs)"
    )


def main() -> None:
    """Print cold and warm `tgtg chat` times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as data_dir:
        wall, cpu = cold(runs, data_dir)
        print(_line("cold tgtg chat, wall", wall))
        print(_line("cold tgtg chat, CPU (user + system)", cpu))
        print(_line("warm turn (same process)", warm(runs, data_dir)))


if __name__ == "__main__":
    main()
