"""The end of every multirun: a summary of the sweep in its folder, and a non-zero exit on failure.

`SweepSummary` is a Hydra callback, registered by config.py as the option `sweep_summary` of Hydra's
`hydra/callbacks` group (conf/config.yaml selects it), so no YAML file names a Python path.
It writes into the sweep folder:
- `sweep_summary.csv` and `sweep_summary.md`: the compare table of the sweep's jobs;
- `sweep.png`: test accuracy and loss per epoch of every job overlaid, plus final test accuracy
  against the swept key when exactly one numeric key was swept.
Jobs that failed (or were killed or interrupted) are listed, and the multirun then exits with status 1.
"""

import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from . import compare
from .files import write_atomic

# Statuses that fail a sweep. At the end of a multirun every job has returned, so one still
# `running` was killed before it could record its end; one `interrupted` did not finish.
FAILED = {
    "failed": None,
    "running": "the job ended without recording an end (killed?)",
    "interrupted": "the job was interrupted",
}


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        folder = Path(config.hydra.sweep.dir)
        failed = write_summary(folder)
        if failed:
            print(
                f"{len(failed)} job(s) failed: {', '.join(r.name for r in failed)}; see {folder / 'sweep_summary.md'}",
                file=sys.stderr,
            )
            raise SystemExit(1)  # Hydra passes exceptions from callbacks on as warnings; this ends the process


def write_summary(folder: Path) -> list[compare.Run]:
    """Write the sweep's summary files into `folder`; returns the runs that failed."""
    runs, problems = compare.find_runs([folder])
    for line in problems:
        print(line, file=sys.stderr)
    if not runs:
        print(f"Sweep summary: no run below {folder}", file=sys.stderr)
        return []
    runs.sort(key=_job_number)
    columns, rows = compare.table(runs)
    write_atomic(folder / "sweep_summary.csv", compare.render(columns, rows, "csv"))
    failed = [r for r in runs if r.status in FAILED]
    lines = [
        f"# Sweep {folder}",
        "",
        f"{len(runs)} jobs; sorted by job number.",
        "",
        compare.render(columns, rows, "md").rstrip(),
    ]
    if failed:
        lines += ["", f"## Failed jobs ({len(failed)})", ""]
        lines += [
            f"- `{r.name}` ({r.status}): {r.summary.get('error') or FAILED[r.status] or 'no error recorded'}"
            for r in failed
        ]
    if problems:
        lines += ["", "## Skipped folders", "", *(f"- {p}" for p in problems)]
    write_atomic(folder / "sweep_summary.md", "\n".join(lines) + "\n")
    try:
        title = f"Sweep {'/'.join(folder.parts[-2:])}: {len(runs)} jobs" + (f", {len(failed)} failed" if failed else "")
        compare.plot(runs, folder / "sweep.png", title, versus=True)
    except Exception as e:  # the tables are written; a figure that cannot be drawn is reported
        print(f"Warning: sweep.png could not be drawn: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"Sweep summary: {folder / 'sweep_summary.md'}", flush=True)
    return failed


def _job_number(run: compare.Run):
    head = run.folder.name.split("_", 1)[0]
    return (0, int(head), "") if head.isdigit() else (1, 0, run.name)
