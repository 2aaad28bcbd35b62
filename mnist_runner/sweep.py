"""The end of every multirun: a summary of the sweep in its folder, and a non-zero exit on failure.

`SweepSummary` is a Hydra callback, registered by config.py as the option `sweep_summary` of Hydra's
`hydra/callbacks` group (conf/config.yaml selects it), so no YAML file names a Python path.
It writes into the sweep folder:
- `sweep_summary.csv` and `sweep_summary.md`: the compare table of the sweep's jobs;
- `sweep.png`: test accuracy and loss per epoch of every job overlaid, plus final test accuracy
  against the swept key when exactly one numeric key was swept;
- when `seed` is among the swept keys: `sweep_groups.csv` and `sweep_groups.md`, one row per group of
  jobs that differ only in their seed (mean, sd, min, max, 95% CI: docs/statistics.md), and
  `sweep.png` draws each group's mean with a band of ±1 sd instead of one line per job.
Jobs that failed (or were killed or interrupted) are listed, and the multirun then exits with status 1.
With `logger=mlflow` the sweep is also an MLflow parent run, started when the multirun starts (its jobs
become its children) and given the summary files at the end (loggers.sweep_started / sweep_ended).
"""

import shlex
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from . import loggers
from .config import resume_command
from .files import write_atomic
from .results.figures import plot, plot_groups
from .results.groups import Group, grouped
from .results.runs import Run, read_runs
from .results.table import render, setting_columns, table

# Statuses that fail a sweep. At the end of a multirun every job has returned, so one still
# `running` was killed before it could record its end; one `interrupted` did not finish.
FAILED = {
    "failed": None,
    "running": "the job ended without recording an end (killed?)",
    "interrupted": "the job was interrupted",
}


class SweepSummary(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        loggers.sweep_started(config, Path(config.hydra.sweep.dir))  # MLflow's parent run (docs/trackers.md)

    def on_multirun_end(self, config, **kwargs) -> None:
        folder = Path(config.hydra.sweep.dir)
        failed = write_summary(folder)
        loggers.sweep_ended(config, folder, len(failed))  # the summary files to the parent run
        if failed:
            for run in failed:  # one line each, with the command that continues it when there is one
                print(f"Job {failure(run)}", file=sys.stderr)
            print(
                f"{len(failed)} job(s) failed: {', '.join(r.name for r in failed)}; see {folder / 'sweep_summary.md'}",
                file=sys.stderr,
            )
            print(f"Continue the whole sweep with: mnist-runner-resume {shlex.quote(str(folder))}", file=sys.stderr)
            raise SystemExit(1)  # Hydra passes exceptions from callbacks on as warnings; this ends the process


def write_summary(folder: Path) -> list[Run]:
    """Write the sweep's summary files into `folder`; returns the runs that failed."""
    runs = read_runs([folder])
    problems = runs.skipped
    for line in problems:
        print(line, file=sys.stderr)
    if not runs:
        print(f"Sweep summary: no run below {folder}", file=sys.stderr)
        return []
    runs.sort(key=_job_number)
    columns, rows = table(runs)
    write_atomic(folder / "sweep_summary.csv", render(columns, rows, "csv"))
    failed = [r for r in runs if r.status in FAILED]
    lines = [
        f"# Sweep {folder}",
        "",
        f"{len(runs)} jobs; sorted by job number.",
        "",
        render(columns, rows, "md").rstrip(),
    ]
    if failed:
        lines += ["", f"## Failed jobs ({len(failed)})", ""]
        lines += [f"- {failure(r, code='`')}" for r in failed]
    if problems:
        lines += ["", "## Skipped folders", "", *(f"- {p}" for p in problems)]
    write_atomic(folder / "sweep_summary.md", "\n".join(lines) + "\n")
    groups = write_groups(folder, runs) if "seed" in setting_columns(runs) else None
    try:
        title = f"Sweep {'/'.join(folder.parts[-2:])}: {len(runs)} jobs" + (f", {len(failed)} failed" if failed else "")
        if groups:
            plot_groups(groups, folder / "sweep.png", f"{title}, {len(groups)} groups (mean ± 1 sd)", True)
        else:
            plot(runs, folder / "sweep.png", title, versus=True)
    except Exception as e:  # the tables are written; a figure that cannot be drawn is reported
        print(f"Warning: sweep.png could not be drawn: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"Sweep summary: {folder / 'sweep_summary.md'}", flush=True)
    return failed


def failure(run: Run, code: str = "") -> str:
    """What happened to a job that fails the sweep, with its epochs and, when it can go on (stopped,
    killed, or lost by the scheduler: cluster.py), the command that continues it. `code` quotes names
    and commands: a backtick in Markdown, nothing on the console (so that the command can be pasted)."""
    why = run.summary.get("error") or FAILED[run.status] or "no error recorded"
    epochs, total = run.summary.get("epochs_completed"), run.flat.get("trainer.epochs")
    done = f" after {epochs} of {total} epochs" if epochs is not None and total is not None else ""
    line = f"{code}{run.name}{code} ({run.status}{done}): {why}"
    can_go_on = run.status in ("interrupted", "running") or "cluster" in run.summary
    if can_go_on and run.folder.has_config:
        line += f"; continue with: {code}{resume_command(run.path)}{code}"
    return line


def write_groups(folder: Path, runs: list[Run]) -> list[Group]:
    """`sweep_groups.csv` and `sweep_groups.md`: the jobs grouped by every swept key but `seed`."""
    groups = grouped(runs)
    write_atomic(folder / "sweep_groups.csv", render(groups.columns, groups.rows, "csv"))
    view_columns, view = groups.view()
    lines = [
        f"# Sweep {folder}: groups of seeds",
        "",
        f"{len(groups.groups)} group(s) of jobs that differ only in `seed`; statistics over each group's completed "
        "jobs: mean ± sample standard deviation, 95% confidence interval of the mean (Student's t), min–max.",
        "",
        render(view_columns, view, "md", right=set(view_columns) - set(groups.keys)).rstrip(),
    ]
    notes = groups.notes()
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    write_atomic(folder / "sweep_groups.md", "\n".join(lines) + "\n")
    return groups.groups


def _job_number(run: Run):
    head = run.path.name.split("_", 1)[0]
    return (0, int(head), "") if head.isdigit() else (1, 0, run.name)
