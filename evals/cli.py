"""Command line of the replay evals: `tgtg replay ...` and `python -m evals replay ...`.

Flags beat environment (`TGTG_GRID_DIR`, `TGTG_JOBS_FILE`) beat defaults. Progress goes to
stderr; `--json` prints the report object on stdout; files always go to `--out`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from evals.gridwindow import START_FORMS, parse_window_start
from evals.output_paths import check_output_path, write_failed
from graphs.settings import Settings
from tools.errors import DomainError
from tools.grid.forecast import PLANNING_MODE

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="evals",
    help="Replay recorded grid days and a job trace through routing policies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
DEFAULT_OUT = Path("evals") / "results"


@app.callback()
def main() -> None:
    """Replay recorded grid days and a job trace through routing policies."""


TEMPORAL_MODES = ("naive", "persistence")


def _fail(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(2)


def _settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root().obj
    if isinstance(root, dict) and isinstance(root.get("settings"), Settings):
        return root["settings"]
    return Settings()


class _ProgressHandler(logging.StreamHandler[TextIO]):
    """The replay's progress lines; `_tgtg_progress` marks it so it is added only once."""

    _tgtg_progress = True


def _setup_progress(quiet: bool) -> None:
    evals_logger = logging.getLogger("evals")
    if quiet or any(getattr(h, "_tgtg_progress", False) for h in evals_logger.handlers):
        return
    handler = _ProgressHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[replay] %(message)s"))
    evals_logger.addHandler(handler)
    evals_logger.setLevel(logging.INFO)


def run_replay_command(
    *,
    grid_dir: Path,
    jobs_file: Path,
    start: datetime,
    days: int,
    seed: int,
    fleet_scale: float,
    forecast: str,
    out: Path,
    arrival_scale: float = 1.0,
    pareto: bool = True,
    oracle_time_limit_s: float = 60.0,
    jobs_csv: Path | None = None,
) -> dict[str, Any]:
    """Run a replay, write its files into `out` (and `jobs_csv`) and return the report dict.

    Raises:
        DomainError: Bad input, or no recorded data for the window.
        OutputError: A file could not be written (`evals.output_paths`).
    """
    from evals.outputs import write_jobs_csv, write_outputs
    from evals.replay import ReplayConfig, run_replay
    from evals.report import build_report
    from evals.temporal import temporal_capture
    from evals.view import ForecastBook

    config = ReplayConfig(
        grid_dir=grid_dir,
        jobs_file=jobs_file,
        start=start,
        days=days,
        seed=seed,
        fleet_scale=fleet_scale,
        forecast=forecast,
        arrival_scale=arrival_scale,
        pareto=pareto,
        oracle_time_limit_s=oracle_time_limit_s,
    )
    result = run_replay(config)
    window = result.window
    modes = TEMPORAL_MODES if forecast in TEMPORAL_MODES else (*TEMPORAL_MODES, forecast)
    temporal = {
        mode: temporal_capture(window, ForecastBook(window, mode), arrivals=days * 24)
        for mode in modes
    }
    report = build_report(result, temporal)
    try:
        paths = write_outputs(report, out)
        if jobs_csv is not None:
            paths.append(write_jobs_csv(result, jobs_csv))
    except OSError as exc:
        raise write_failed(exc, out) from None
    report["files"] = [str(p) for p in paths]
    return report


@app.command("replay")
def replay(
    ctx: typer.Context,
    grid_dir: Annotated[
        Path | None, typer.Option("--grid-dir", help="Recorded <ZONE>.csv folder (TGTG_GRID_DIR).")
    ] = None,
    jobs: Annotated[
        Path | None, typer.Option("--jobs", help="Job trace CSV (TGTG_JOBS_FILE).")
    ] = None,
    start: Annotated[
        str,
        typer.Option("--start", help=f"First hour, {START_FORMS}; its day seeds the trace days."),
    ] = "2023-06-01",
    days: Annotated[int, typer.Option("--days", help="Days to replay.")] = 7,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of origins and slack classes, 0 or more.")
    ] = 0,
    fleet_scale: Annotated[
        float, typer.Option("--fleet-scale", help="Multiply the seeded fleet's GPU capacity.")
    ] = 1.0,
    forecast: Annotated[
        str,
        typer.Option(
            "--forecast",
            help="perfect | naive | persistence | dayahead | model (forecast policies use it); "
            "default: the planner's",
        ),
    ] = PLANNING_MODE,
    arrival_scale: Annotated[
        float, typer.Option("--arrival-scale", help="Trace days overlaid per replayed day.")
    ] = 1.0,
    out: Annotated[Path, typer.Option("--out", help="Output folder for files.")] = DEFAULT_OUT,
    pareto: Annotated[
        bool, typer.Option("--pareto/--no-pareto", help="Sweep score weights for the front.")
    ] = True,
    oracle_time_limit: Annotated[
        float,
        typer.Option(
            "--oracle-time-limit", help="Seconds for the whole oracle solve (LP, MILP, search)."
        ),
    ] = 60.0,
    jobs_csv: Annotated[
        Path | None,
        typer.Option("--jobs-csv", help="Also write one CSV row per job and policy to this file."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress on stderr.")] = False,
) -> None:
    """Replay recorded grid days and jobs through every policy and the oracle."""
    settings = _settings(ctx)
    grid = grid_dir or settings.grid_dir
    trace = jobs or settings.jobs_file
    if grid is None or not Path(grid).is_dir():
        raise _fail(f"--grid-dir {str(grid)!r} is not a folder: pass the recorded CSV directory")
    if trace is None or not Path(trace).is_file():
        raise _fail(f"--jobs {str(trace)!r} is not a file: pass the job trace CSV")
    if days < 1:
        raise _fail(f"--days {days!r}: replay at least 1 day")
    if seed < 0:
        raise _fail(f"--seed {seed!r}: give 0 or more")
    if oracle_time_limit <= 0:
        raise _fail(f"--oracle-time-limit {oracle_time_limit!r}: give a budget > 0 seconds")
    _setup_progress(quiet)
    try:
        check_output_path(out, "--out", folder=True)
        if jobs_csv is not None:
            check_output_path(jobs_csv, "--jobs-csv", folder=False)
        report = run_replay_command(
            grid_dir=Path(grid),
            jobs_file=Path(trace),
            start=parse_window_start(start),
            days=days,
            seed=seed,
            fleet_scale=fleet_scale,
            forecast=forecast,
            out=out,
            arrival_scale=arrival_scale,
            pareto=pareto,
            oracle_time_limit_s=oracle_time_limit,
            jobs_csv=jobs_csv,
        )
    except DomainError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps(report))
        return
    from evals.outputs import markdown_summary

    print(markdown_summary(report))
    print(f"files in {out}")


def _git_revision() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


@app.command("agents")
def agents(
    ctx: typer.Context,
    suite: Annotated[
        str, typer.Option("--suite", help="Folder under evals/datasets.")
    ] = "operator",
    trials: Annotated[int, typer.Option("--trials", help="Runs per task (k <= trials).")] = 1,
    k: Annotated[
        list[int] | None, typer.Option("--k", help="pass^k to report; repeatable.")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use the offline model even if a key is set.")
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="JSONL file the trial records are appended to.")
    ] = DEFAULT_OUT / "agents.jsonl",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="OpenAI-compatible endpoint (else TGTG_LLM_BASE_URL)."),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option("--model", help="Model id served there (else TGTG_LLM_MODEL).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Key for --base-url (else TGTG_LLM_API_KEY; 'local')."),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--task", help="Run only this task id; repeatable.")
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option("--record", help="Write each trial's model exchanges to DIR/<task>.json."),
    ] = None,
) -> None:
    """Run the operator chat task suite on a model and report average reward and pass^k."""
    from pydantic import SecretStr

    from agents.models import ModelEndpointError, make_chat_model
    from agents.offline import OfflineChatModel
    from evals.metrics import summarise
    from evals.recording import Recorder
    from evals.run import prompt_hashes, run_suite
    from evals.tasks import load_suite

    if trials < 1:
        raise _fail(f"--trials {trials!r}: run each task at least once")
    ks = k or [1]
    if any(x < 1 or x > trials for x in ks):
        raise _fail(f"--k {ks!r}: each k must be between 1 and --trials {trials!r}")
    settings = _settings(ctx)
    overrides: dict[str, Any] = {}
    if base_url is not None:
        overrides["llm_base_url"] = base_url
        overrides["llm_api_key"] = SecretStr(api_key or "local")
    elif api_key is not None:
        overrides["llm_api_key"] = SecretStr(api_key)
    if model_name is not None:
        overrides["llm_model"] = model_name
    settings = settings.model_copy(update=overrides)
    try:
        tasks = load_suite(suite)
        if only:
            unknown = sorted(set(only) - {t.id for t in tasks})
            if unknown:
                raise _fail(f"--task {unknown!r}: not in suite {suite!r}; see evals/datasets")
            tasks = [t for t in tasks if t.id in set(only)]
        model = OfflineChatModel() if offline else make_chat_model(settings.model_endpoint())
    except (DomainError, ModelEndpointError) as exc:
        raise _fail(str(exc)) from None
    is_offline = isinstance(model, OfflineChatModel)
    if record is not None and is_offline:
        raise _fail(f"--record {record}: recording needs a real model (--base-url or a key)")
    recorders: list[Recorder] = []
    meta = {
        "model": "offline" if is_offline else settings.llm_model,
        "base_url": None if is_offline else settings.llm_base_url,
        "temperature": settings.llm_temperature,
        "prompt_hashes": prompt_hashes(),
        "git_revision": _git_revision(),
        "suite": suite,
        "started_at": datetime.now(UTC).isoformat(),
    }

    def factory(clock: Any = None, org_id: str | None = None) -> Any:
        if is_offline:
            return OfflineChatModel(clock=clock, org_id=org_id)
        if record is None:
            return make_chat_model(settings.model_endpoint(), verify=False)
        recorders.append(Recorder())
        timeout = settings.llm_timeout_s
        return make_chat_model(
            settings.model_endpoint(),
            verify=False,
            http_client=recorders[-1].client(timeout=timeout),
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as sink:

        def keep(result: dict[str, Any]) -> None:
            sink.write(json.dumps({**meta, **result}) + "\n")
            # A trial cut short by the endpoint (timeout, 5xx) is not a model's answer to keep.
            if record is not None and recorders and not result["infra_error"]:
                recorders[-1].save(
                    record / f"{result['task_id']}.json",
                    task_id=result["task_id"],
                    model=settings.llm_model,
                    reward=result["reward"],
                    note=f"{settings.llm_model} on task {result['task_id']}, trial "
                    f"{result['trial']}: {', '.join(result['tool_calls']) or 'no tool call'}",
                )
            if not as_json:
                mark = "✅" if result["reward"] >= 1.0 else ("⚠️" if result["infra_error"] else "❌")
                print(f"{mark} {result['task_id']} (trial {result['trial']})")

        results = run_suite(tasks, factory, trials=trials, on_result=keep)
    summary = {**summarise(results, ks), "model": meta["model"], "records": str(out)}
    if as_json:
        print(json.dumps(summary))
        return
    passes = ", ".join(f"pass^{x} {summary[f'pass^{x}']:.3f}" for x in ks)
    print(
        f"{summary['tasks']} tasks, {summary['trials']} trials, average reward "
        f"{summary['average_reward']:.3f}, {passes}, infra errors {summary['infra_errors']}"
    )
    if summary["failed_tasks"]:
        print("failed: " + ", ".join(summary["failed_tasks"]))


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of an agent task file."""
    from evals.tasks import task_schema

    print(json.dumps(task_schema(), indent=2))


@app.command("incidents")
def incidents(
    ctx: typer.Context,
    grid_dir: Annotated[
        Path | None, typer.Option("--grid-dir", help="Recorded <ZONE>.csv folder (TGTG_GRID_DIR).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Replay recorded days with injected incidents and check every workload's end state."""
    from evals.incident_replay import load_days, replay_day

    grid = grid_dir or _settings(ctx).grid_dir
    if grid is None or not Path(grid).is_dir():
        raise _fail(f"--grid-dir {str(grid)!r} is not a folder: pass the recorded CSV directory")
    try:
        results = [replay_day(day, Path(grid)) for day in load_days()]
    except DomainError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps(results))
    else:
        for r in results:
            print(f"{'✅' if r['passed'] else '❌'} {r['id']}: {len(r['incidents'])} incidents")
            for problem in r["problems"]:
                print(f"   {problem}")
    if not all(r["passed"] for r in results):
        raise typer.Exit(1)
