"""The comparison's figures: runs overlaid, and groups of seeds as mean curves with bands.

The numbers come from the runs here; the drawing is plots.py's (`plot_overlay`, `plot_bands`).
"""

from pathlib import Path

from . import stats
from .groups import Group
from .runs import Run, is_number
from .table import as_text, setting_columns


def legend_labels(runs: list[Run]) -> list[str]:
    """Each run named by the settings that differ and that it has (its folder name when none do)."""
    keys = setting_columns(runs)
    labels = []
    for run in runs:
        parts = [f"{k}={as_text(run.setting(k))}" for k in keys if run.setting(k) is not None]
        labels.append(", ".join(parts) or run.name)
    if len(set(labels)) < len(labels):  # same settings, different runs: say which folder
        labels = [f"{label} ({run.name})" if keys else label for label, run in zip(labels, runs)]
    return labels


def plot(runs: list[Run], path: Path, title: str, versus: bool = False) -> Path:
    """Test accuracy and loss per epoch of `runs` overlaid; with `versus`, final test accuracy
    against the swept key when exactly one numeric key differs."""
    from ..plots import plot_overlay

    extra = numeric_sweep(runs) if versus else None
    curves = [(label, r.rows) for label, r in zip(legend_labels(runs), runs) if r.rows]
    plot_overlay(curves, path, title, extra)
    return path


def numeric_sweep(runs: list[Run]):
    """(key, [(value, final test acc)]) when exactly one setting differs and it is numeric."""
    keys = setting_columns(runs)
    if len(keys) != 1:
        return None
    key = keys[0]
    points = []
    for run in runs:
        value, acc = run.setting(key), run.row()["final_test_acc"]
        if not is_number(value):
            return None
        if acc is not None:
            points.append((float(value), float(acc)))
    return (key, points) if len(points) >= 2 else None


def plot_groups(groups: list[Group], path: Path, title: str, versus: bool = False) -> Path:
    """Per group, the mean test accuracy and test loss per epoch of its completed runs with a band of
    ±1 sample standard deviation; with `versus`, the mean final test accuracy (±1 sd) against the group
    key when there is exactly one and it is numeric."""
    from ..plots import plot_bands

    shown = [g for g in groups if any(r.rows for r in g.completed)]
    bands = []
    for g in shown:
        left_out = g.excluded()
        settings = ", ".join(f"{k}={as_text(v)}" for k, v in g.settings.items() if v is not None) or "all runs"
        label = f"{settings} (n={len(g.completed)}" + (f"; left out: {left_out})" if left_out else ")")
        curves = [_mean_curve(g, column) for column in ("test_acc", "test_loss")]
        bands.append((label, *curves))
    points = None
    if versus and len(groups[0].settings) == 1 and all(is_number(v) for g in shown for v in g.settings.values()):
        described = [(float(v), stats.describe(g.values("final_test_acc"))) for g in shown for v in g.settings.values()]
        points = sorted((x, s.mean, s.std or 0.0) for x, s in described if s.n)
        points = (next(iter(groups[0].settings)), points) if len(points) >= 2 else None
    plot_bands(bands, path, title, points)
    return path


def _mean_curve(group: Group, column: str) -> list[tuple[int, float, float]]:
    """(epoch, mean, sd or 0) of `column` over the group's completed runs."""
    curves = [[(row["epoch"], row[column]) for row in r.rows] for r in group.completed]
    return [(epoch, mean, std or 0.0) for epoch, _, mean, std in stats.mean_curve(curves)]
