"""Groups of runs that differ only in their seed: described, compared with a baseline, drawn.

A group is the runs with equal values of the group keys (`--group-by`, or every setting that differs
but `seed`); only its completed runs enter the statistics (results.stats: mean, sample sd, min, max,
the 95% interval of the mean, Welch's comparison with a baseline group). `grouped(runs, ...)` is the
whole pipeline that `mnist-runner-compare --groups` and the sweep summary both run: groups, table,
the view for people and the notes a reader must know (docs/statistics.md).
"""

from collections import Counter
from dataclasses import dataclass

from . import stats
from .runs import Run
from .table import as_text, is_missing, matches, setting_columns, sort_key

GROUP_METRICS = ["final_test_acc", "best_test_acc", "final_test_loss", "best_val.test_acc"]
STATISTICS = ["mean", "std", "min", "max", "ci_low", "ci_high"]
DIFFERENCE = ["diff", "diff_ci_low", "diff_ci_high", "p"]
# Group columns that sort high to low: n, and an accuracy's mean, min, max, interval ends and difference
# (its sd and p-value, and every loss column, sort low to high).
_HIGHER_FIRST = {"n"} | {
    f"{m}_{s}" for m in GROUP_METRICS if "acc" in m for s in STATISTICS + DIFFERENCE if s not in ("std", "p")
}


@dataclass
class Group:
    """Runs with equal values of the group keys. Only completed runs enter the statistics."""

    settings: dict  # group key -> value
    runs: list[Run]

    @property
    def completed(self) -> list[Run]:
        return [r for r in self.runs if r.status == "completed"]

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={as_text(v)}" for k, v in self.settings.items()) or "all runs"

    def excluded(self) -> str:
        """The runs left out of the statistics, by status: `1 diverged, 1 failed` ('' when none)."""
        counts = Counter(r.status for r in self.runs if r.status != "completed")
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))

    def values(self, metric: str) -> list[float]:
        return [v for v in (r.metric(metric) for r in self.completed) if v is not None]

    def epochs(self) -> list[int]:
        return sorted({r.row()["epochs"] for r in self.completed if r.row()["epochs"] is not None})


def group_keys(runs: list[Run], group_by: str | None) -> list[str]:
    """The keys of `--group-by KEY[,KEY...]`, checked; None: every setting that differs except `seed`."""
    if group_by is None:
        return [k for k in setting_columns(runs) if k != "seed"]
    keys = [k.strip() for k in group_by.split(",")]
    for key in keys:
        if not key:
            raise ValueError(f"--group-by {group_by!r}: give KEY[,KEY...], comma-separated")
        if all(is_missing(r.value(key)) for r in runs):
            known = ", ".join(setting_columns(runs, all_columns=True))
            raise ValueError(f"--group-by {key}: no run has that key; group by a setting ({known}) or a config key")
    return keys


def group_metrics(runs: list[Run], wanted: str | None = None) -> list[str]:
    """The metrics of `--metrics A,B`, checked; None: all but best_val.test_acc, which only runs with a
    validation split have."""
    if wanted is None:
        with_val = any(r.metric("best_val.test_acc") is not None for r in runs)
        return GROUP_METRICS if with_val else GROUP_METRICS[:3]
    metrics = [m.strip() for m in wanted.split(",")]
    for metric in metrics:
        if metric not in GROUP_METRICS:
            raise ValueError(f"--metrics {metric}: not a metric of groups; choose from {', '.join(GROUP_METRICS)}")
    return metrics


def make_groups(runs: list[Run], keys: list[str]) -> list[Group]:
    """One group per combination of the keys' values, in the order the runs are given."""
    by_values = stats.group(runs, key=lambda r: tuple(as_text(r.value(k)) for k in keys))
    return [Group({k: members[0].value(k) for k in keys}, members) for members in by_values.values()]


def find_baseline(groups: list[Group], keys: list[str], spec: str) -> Group:
    """The one group that `--baseline KEY=VALUE[,KEY=VALUE...]` names."""
    wanted = []
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--baseline {spec!r} is not KEY=VALUE[,KEY=VALUE...]")
        if key not in keys:
            grouped = f"the groups differ in {', '.join(keys)}" if keys else "all runs form one group"
            raise ValueError(f"--baseline {spec}: {key} is not a group key ({grouped}); name the baseline by those")
        wanted.append((key, value))
    found = [g for g in groups if all(matches(g.settings[k], v) for k, v in wanted)]
    if not found:
        raise ValueError(f"--baseline {spec}: no group has {spec}; the groups are {'; '.join(g.label for g in groups)}")
    if len(found) > 1:
        raise ValueError(
            f"--baseline {spec} names {len(found)} groups ({'; '.join(g.label for g in found)}); "
            f"add KEY=VALUE for another group key"
        )
    return found[0]


def group_table(
    groups: list[Group], keys: list[str], metrics: list[str], baseline: Group | None = None
) -> tuple[list[str], list[dict]]:
    """Columns and rows of the grouped comparison, as numbers (csv and json write these).

    Per metric: `_mean`, `_std` (sample), `_min`, `_max`, `_ci_low`, `_ci_high` (95% CI of the mean);
    with a baseline, `_diff` (mean minus the baseline's), `_diff_ci_low`, `_diff_ci_high` (Welch) and `_p`.
    """
    columns = [*keys, "n", "excluded", "epochs"]
    for metric in metrics:
        columns += [f"{metric}_{s}" for s in STATISTICS + (DIFFERENCE if baseline else [])]
    rows = []
    for g in groups:
        epochs = g.epochs()
        row = {**g.settings, "n": len(g.completed), "excluded": g.excluded(), "epochs": _span(epochs)}
        for metric in metrics:
            sample = stats.describe(g.values(metric))
            row.update({f"{metric}_{s}": getattr(sample, s) for s in STATISTICS})
            if baseline is None:
                continue
            row.update({f"{metric}_{d}": None for d in DIFFERENCE})
            values, reference = g.values(metric), baseline.values(metric)
            if g is not baseline and values and reference:
                c = stats.welch(values, reference)
                row.update(
                    {
                        f"{metric}_diff": c.diff,
                        f"{metric}_diff_ci_low": c.ci_low,
                        f"{metric}_diff_ci_high": c.ci_high,
                        f"{metric}_p": c.p_value,
                    }
                )
        rows.append(row)
    return columns, rows


def _span(values: list[int]):
    if not values:
        return None
    return values[0] if len(values) == 1 else f"{values[0]}-{values[-1]}"


def sort_groups(
    rows: list[dict], groups: list[Group], metrics: list[str], sort: str | None, reverse: bool
) -> tuple[list[dict], list[Group]]:
    """Rows (and their groups) sorted by a metric's mean or any group column; missing values last."""
    sort = sort or ("best_test_acc" if "best_test_acc" in metrics else metrics[0])
    column = f"{sort}_mean" if sort in GROUP_METRICS else sort
    if column not in rows[0]:
        raise ValueError(
            f"--sort {sort}: groups have no such column; sort by a metric ({', '.join(metrics)}), "
            f"a group key, n, or a column of --format csv such as {metrics[0]}_std"
        )
    descending = (column in _HIGHER_FIRST) != reverse
    pairs = list(zip(rows, groups))
    present = [p for p in pairs if not is_missing(p[0][column])]
    present.sort(key=lambda p: sort_key(p[0][column]), reverse=descending)
    pairs = present + [p for p in pairs if is_missing(p[0][column])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def group_view(
    columns: list[str],
    rows: list[dict],
    keys: list[str],
    metrics: list[str],
    baseline: Group | None = None,
    groups: list[Group] | None = None,
) -> tuple[list[str], list[dict]]:
    """The grouped table for people (table and md): per metric `mean ± sd`, `95% CI`, `min–max`, and with
    a baseline `diff [95% CI]` and `p`. `groups` (the rows' groups) marks the baseline's row."""
    view_columns = [*keys, "n", *(["excluded"] if any(r["excluded"] for r in rows) else []), "epochs"]
    for metric in metrics:
        view_columns += [f"{metric} mean ± sd", f"{metric} 95% CI", f"{metric} min–max"]
        if baseline is not None:
            view_columns += [f"{metric} diff [95% CI]", f"{metric} p"]
    view = []
    for i, row in enumerate(rows):
        cells = {k: as_text(row[k]) for k in keys}
        cells.update(n=str(row["n"]), excluded=row["excluded"] or "-", epochs=as_text(row["epochs"]))
        is_baseline = baseline is not None and groups is not None and groups[i] is baseline
        for metric in metrics:
            s = {name: row[f"{metric}_{name}"] for name in STATISTICS}
            cells[f"{metric} mean ± sd"] = _pm(s["mean"], s["std"])
            cells[f"{metric} 95% CI"] = _interval(s["ci_low"], s["ci_high"], "{:.4f}")
            cells[f"{metric} min–max"] = "-" if s["min"] is None else f"{s['min']:.4f}–{s['max']:.4f}"
            if baseline is not None:
                d = {name: row[f"{metric}_{name}"] for name in DIFFERENCE}
                diff = "-" if d["diff"] is None else f"{d['diff']:+.4f}"
                if d["diff_ci_low"] is not None:
                    diff += " " + _interval(d["diff_ci_low"], d["diff_ci_high"], "{:+.4f}")
                cells[f"{metric} diff [95% CI]"] = "baseline" if is_baseline else diff
                cells[f"{metric} p"] = "baseline" if is_baseline else _p_value(d["p"])
        view.append(cells)
    return view_columns, view


def _pm(mean, std) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def _interval(low, high, spec: str) -> str:
    return "-" if low is None else f"[{spec.format(low)}, {spec.format(high)}]"


def _p_value(p) -> str:
    if p is None:
        return "-"
    if p < 1e-15:  # beyond double precision: the t distribution's tail underflows
        return "<1e-15"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def group_notes(groups: list[Group], keys: list[str], runs: list[Run]) -> list[str]:
    """What a reader of the grouped table must know: small or empty groups, different epoch counts,
    settings pooled into a group, repeated seeds."""
    notes = []
    for g in groups:
        if not g.completed:
            notes.append(f"{g.label}: no completed run ({g.excluded() or 'none'}), so no statistics")
        elif len(g.completed) == 1:
            notes.append(
                f"{g.label}: n=1 (one completed run): no standard deviation, interval or p-value; run more seeds"
            )
        seeds = [r.summary.get("seed", r.setting("seed")) for r in g.completed]
        repeated = sorted({as_text(s) for s in seeds if s is not None and seeds.count(s) > 1})
        if repeated:
            notes.append(
                f"{g.label}: seed {', '.join(repeated)} appears more than once; "
                f"such runs are not independent repetitions"
            )
    epochs = {g.label: g.epochs() for g in groups if g.completed}
    if len({tuple(e) for e in epochs.values()}) > 1:
        counts = "; ".join(f"{label}: {as_text(_span(e))}" for label, e in epochs.items())
        notes.append(
            f"the groups ran different numbers of epochs ({counts}); final_* compare each run's last "
            f"epoch, best_* the best of the epochs it ran"
        )
    losses = {as_text(r.setting("loss")) for g in groups for r in g.completed}
    if len(losses) > 1:
        notes.append(
            f"the runs minimize different losses ({', '.join(sorted(losses))}): their test losses are on different "
            f"scales, so compare their accuracies"
        )
    pooled = [
        k
        for k in setting_columns(runs)
        if k not in keys and k != "seed" and any(len({as_text(r.setting(k)) for r in g.runs}) > 1 for g in groups)
    ]
    if pooled:
        notes.append(f"groups pool runs that also differ in {', '.join(pooled)}; add to --group-by to split them")
    return notes


@dataclass
class Grouped:
    """The grouped comparison of some runs: the groups, their table as numbers (csv, json) and more."""

    runs: list[Run]
    keys: list[str]
    metrics: list[str]
    groups: list[Group]
    columns: list[str]
    rows: list[dict]
    baseline: Group | None = None

    def sorted(self, sort: str | None, reverse: bool = False, top: int | None = None) -> "Grouped":
        """The same, with the rows (and groups) sorted (sort_groups) and cut to the first `top`."""
        rows, groups = sort_groups(self.rows, self.groups, self.metrics, sort, reverse)
        return Grouped(self.runs, self.keys, self.metrics, groups[:top], self.columns, rows[:top], self.baseline)

    def view(self) -> tuple[list[str], list[dict]]:
        """The table for people (group_view)."""
        return group_view(self.columns, self.rows, self.keys, self.metrics, self.baseline, self.groups)

    def notes(self) -> list[str]:
        return group_notes(self.groups, self.keys, self.runs)


def grouped(runs: list[Run], group_by: str | None = None, metrics: str | None = None, baseline: str | None = None):
    """Group `runs` by `group_by` (KEY[,KEY...]; None: every setting that differs but seed), describe
    `metrics` (M[,M...]; None: all they have) and, with `baseline` (KEY=VALUE[,...]), compare each group
    with that one. ValueError for a key, metric or baseline that does not fit the runs."""
    keys = group_keys(runs, group_by)
    chosen = group_metrics(runs, metrics)
    groups = make_groups(runs, keys)
    reference = find_baseline(groups, keys, baseline) if baseline else None
    columns, rows = group_table(groups, keys, chosen, reference)
    return Grouped(runs, keys, chosen, groups, columns, rows, reference)
