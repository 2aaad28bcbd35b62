"""Compare finished (or running, or crashed) runs: `mnist-runner-compare PATH...` (`python -m mnist_runner.compare`).

PATH is a run folder, a sweep folder or any folder above them; every `summary.json` below it is a
run. Prints one row per run with the choices and overrides that differ between the runs and the
metrics, or one row per group of seeds (`--groups`, docs/statistics.md). The command line only: the
reading, the tables, the statistics and the figures are the `results` package's.
"""

import argparse
import sys
from pathlib import Path

from .results.figures import plot, plot_groups
from .results.groups import GROUP_METRICS, grouped
from .results.runs import Run, read_runs
from .results.table import diff, filter_runs, render, select, table
from .run_folder import DamagedRun, RunFolder

# Command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnist-runner-compare",
        description="Compare mnist_runner runs: one row per run folder (a folder holding summary.json) "
        "found below each PATH, with the settings that differ and the final metrics.",
    )
    p.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="run folder, sweep folder or any folder above them"
    )
    p.add_argument(
        "--sort",
        metavar="KEY",
        help="column or config key to sort by (default best_test_acc); accuracies, params and "
        "epochs sort high to low, everything else low to high. Groups sort by a metric's mean or any group column",
    )
    p.add_argument("--reverse", action="store_true", help="reverse the sort order")
    p.add_argument("--top", type=int, metavar="N", help="show only the first N runs (or groups) after sorting")
    grouping = p.add_argument_group(
        "groups of seeds",
        "One row per group of runs; the statistics (mean, sample sd, min, max, 95% CI of the mean from "
        "Student's t) are over the group's completed runs, each a repetition (docs/statistics.md)",
    )
    grouping.add_argument("--group-by", metavar="KEY[,KEY...]", help="group the runs by these settings or config keys")
    grouping.add_argument(
        "--groups", action="store_true", help="group by every setting that differs between the runs except seed"
    )
    grouping.add_argument(
        "--baseline",
        metavar="KEY=VALUE[,...]",
        help="add each group's difference in mean to this group, its 95%% CI and Welch's t-test p-value "
        "(implies --groups when no --group-by is given)",
    )
    grouping.add_argument(
        "--metrics",
        metavar="M[,M...]",
        help=f"metrics to describe, from {', '.join(GROUP_METRICS)} (default: all; best_val.test_acc "
        "only when a run has it)",
    )
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep runs whose column or config key equals VALUE (repeatable; all must hold)",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="show failed runs too (they are counted on stderr and left out of the table unless --filter names status)",
    )
    p.add_argument("--format", choices=["table", "csv", "md", "json"], default="table")
    p.add_argument(
        "--all-columns", action="store_true", help="show every choice and override, not only those that differ"
    )
    p.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="also draw test accuracy and loss per epoch of every run (of every group: mean and a ±1 sd band)",
    )
    p.add_argument(
        "--diff", nargs=2, type=Path, metavar=("A", "B"), help="config differences and final metrics of two runs"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.diff:
        folders = [RunFolder(path.resolve()) for path in args.diff]
        for path, folder in zip(args.diff, folders):
            if not folder.is_run:
                print(f"Error: {path} is not a run folder (no summary.json)", file=sys.stderr)
                return 2
        try:
            runs = read_runs(args.diff, strict=True)
        except DamagedRun as e:
            print(f"Error: {e}", file=sys.stderr)
            return 1
        sys.stdout.write(diff(*runs))
        return 0
    if not args.paths:
        print("Error: give at least one PATH (or --diff A B)", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"Error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.top is not None and args.top < 1:
        print(f"Error: --top {args.top}: give a number of runs, 1 or more", file=sys.stderr)
        return 2
    if args.groups and args.group_by is not None:
        print("Error: --groups groups by every differing setting; --group-by names the keys: give one", file=sys.stderr)
        return 2
    runs = read_runs(args.paths)
    for line in runs.skipped:
        print(line, file=sys.stderr)
    if not runs:
        print(f"Error: no readable run (no summary.json) below {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    if args.groups or args.group_by is not None or args.baseline is not None or args.metrics is not None:
        return main_groups(args, runs)
    shown = runs
    if not args.all and not any(f.split("=", 1)[0] == "status" for f in args.filter):
        shown = [r for r in runs if r.status != "failed"]
        if len(shown) < len(runs):
            print(f"Note: {len(runs) - len(shown)} failed run(s) left out; --all shows them", file=sys.stderr)
    try:
        chosen = select(shown, args.filter, args.sort or "best_test_acc", args.reverse, args.top)
    except ValueError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    if not chosen:
        print("No run matches the filters." if shown else "No run to show.", file=sys.stderr)
        return 1
    columns, rows = table(chosen, args.all_columns, among=shown)  # a --top or --filter view keeps the columns
    if args.format in ("csv", "json"):
        for row, run in zip(rows, chosen):
            row["folder"] = str(run.path)
        columns.append("folder")
    sys.stdout.write(render(columns, rows, args.format))
    if args.plot:
        plot(chosen, args.plot, f"{len(chosen)} runs")
        print(f"Plot: {args.plot}", file=sys.stderr)
    return 0


def main_groups(args: argparse.Namespace, runs: list[Run]) -> int:
    """The grouped comparison: one row per group of runs that differ only in their seed."""
    try:
        chosen = filter_runs(runs, args.filter)
        if not chosen:
            print("No run matches the filters.", file=sys.stderr)
            return 1
        groups = grouped(chosen, args.group_by, args.metrics, args.baseline).sorted(args.sort, args.reverse, args.top)
    except ValueError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    if args.format in ("csv", "json"):
        if args.format == "json":
            for row, group in zip(groups.rows, groups.groups):
                row["folders"] = [str(r.path) for r in group.runs]
        sys.stdout.write(render(groups.columns, groups.rows, args.format))
    else:
        view_columns, view = groups.view()
        sys.stdout.write(render(view_columns, view, args.format, right=set(view_columns) - set(groups.keys)))
    for note in groups.notes():
        print(f"Note: {note}", file=sys.stderr)
    if args.plot:
        title = f"{len(groups.groups)} groups, {len(chosen)} runs: mean ± 1 sd over seeds"
        plot_groups(groups.groups, args.plot, title)
        print(f"Plot: {args.plot}", file=sys.stderr)
    baseline = groups.baseline
    if baseline is not None and len(baseline.completed) < 2:
        print(
            f"Error: --baseline {args.baseline}: the group {baseline.label} has n={len(baseline.completed)} "
            f"completed run(s): no standard deviation, so no interval or p-value; run more seeds",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
