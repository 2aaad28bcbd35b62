"""Compare finished (or running, or crashed) runs: `python -m mnist_runner.compare PATH...`.

PATH is a run folder, a sweep folder or any folder above them; every `summary.json` below it is a
run. Prints one row per run with the choices and overrides that differ between the runs and the
metrics. Reads files only (no torch), so it answers at once.
"""

import argparse
import csv
import io
import json
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

METRICS = ["status", "params", "final_test_acc", "best_test_acc", "final_test_loss", "epochs", "wall_seconds"]
HIGHER_IS_BETTER = {"final_test_acc", "best_test_acc", "params", "epochs"}
# Settings that say where or how verbosely a run ran, not what it computed: hidden unless they
# are asked for (--all-columns) or filtered on.
QUIET_KEYS = {"dataset.root", "dataset.download", "trainer.progress"}
# libyaml's safe loader when PyYAML has it: the same values as yaml.safe_load, about 10x faster
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str):
    return yaml.load(text, Loader=_YAML_LOADER)


class RunReadError(Exception):
    """A run folder whose files cannot be read: reported and skipped."""


@dataclass
class Run:
    folder: Path
    summary: dict
    metrics: list[dict]  # metrics.csv rows, numbers parsed
    config: dict  # .hydra/config.yaml flattened to dotted keys ({} when absent)
    settings: dict = field(default_factory=dict)  # group choices, then overridden keys
    name: str = ""

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unknown"))

    def value(self, key: str):
        """A column, a setting or any key of the composed config (dotted), else None."""
        row = self.row()
        return row[key] if key in row else self.setting(key)

    def setting(self, key: str):
        """The run's value of a setting: as chosen or overridden, else as composed."""
        if key in self.settings:
            return self.settings[key]
        return self.config.get(key)

    def metric(self, name: str) -> float | None:
        """A metric of GROUP_METRICS: a column of row(), or `best_val.test_acc` of summary.json."""
        if name == "best_val.test_acc":
            best_val = self.summary.get("best_val")
            value = best_val.get("test_acc") if isinstance(best_val, dict) else None
        else:
            value = self.row().get(name)
        return float(value) if _is_number(value) else None

    def row(self) -> dict:
        s, m = self.summary, self.metrics
        final = s.get("final") or {}
        best = s.get("best_test_acc")
        if best is None and m:
            best = max(r["test_acc"] for r in m)
        return {
            "run": self.name,
            "status": self.status,
            "params": (s.get("params") or {}).get("total"),
            "final_test_acc": final.get("test_acc", m[-1]["test_acc"] if m else None),
            "best_test_acc": best,
            "final_test_loss": final.get("test_loss", m[-1]["test_loss"] if m else None),
            "epochs": s.get("epochs_completed", len(m)),
            "wall_seconds": s.get("wall_seconds"),
        }


# ---------------------------------------------------------------------------------------------
# Reading run folders


def find_runs(paths: list[Path]) -> tuple[list[Run], list[str]]:
    """Every readable run below `paths`, and one line per folder that was skipped."""
    runs, problems, seen = [], [], set()
    for base in paths:
        found = [base / "summary.json"] if (base / "summary.json").is_file() else sorted(base.rglob("summary.json"))
        for path in found:
            folder = path.parent.resolve()
            if folder in seen:
                continue
            seen.add(folder)
            try:
                runs.append(read_run(folder))
            except RunReadError as e:
                problems.append(f"skipped {folder}: {e}")
    name_runs(runs)
    return runs, problems


def read_run(folder: Path) -> Run:
    summary = _read_json(folder / "summary.json")
    metrics = _read_metrics(folder / "metrics.csv")
    config = _read_config(folder / ".hydra" / "config.yaml")
    run = Run(folder, summary, metrics, config)
    run.settings = _settings(summary, folder)
    return run


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise RunReadError(f"{path.name} cannot be read ({e})") from None
    except json.JSONDecodeError as e:
        raise RunReadError(f"{path.name} is broken or half-written ({e})") from None
    if not isinstance(data, dict):
        raise RunReadError(f"{path.name} holds a {type(data).__name__}, not an object")
    for key, kind in SUMMARY_TYPES.items():
        if data.get(key) is not None and not isinstance(data[key], kind):
            expected = "a number" if kind is _NUMBER else f"a {kind.__name__}"
            raise RunReadError(f"{path.name}: {key!r} is {data[key]!r}, not {expected}")
    return data


_NUMBER = (int, float)
SUMMARY_TYPES = {
    "status": str,
    "choices": dict,
    "overrides": list,
    "params": dict,
    "final": dict,
    "best_test_acc": _NUMBER,
    "epochs_completed": int,
    "wall_seconds": _NUMBER,
}


def _read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise RunReadError(f"{path.name} cannot be read ({e})") from None
    if text and not text.endswith("\n"):
        raise RunReadError(f"{path.name} is half-written (its last line is incomplete)")
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for n, row in enumerate(reader, start=2):
        if None in row or None in row.values():
            raise RunReadError(f"{path.name} line {n} has the wrong number of fields")
        try:
            rows.append({k: int(v) if k == "epoch" else float(v) for k, v in row.items()})
        except ValueError:
            raise RunReadError(f"{path.name} line {n} holds a value that is not a number") from None
    if rows and not {"epoch", "test_acc", "test_loss"} <= set(rows[0]):
        raise RunReadError(f"{path.name} lacks the columns epoch, test_acc, test_loss")
    return rows


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = _load_yaml(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RunReadError(f".hydra/config.yaml cannot be read ({type(e).__name__})") from None
    return flatten(data) if isinstance(data, dict) else {}


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _settings(summary: dict, folder: Path) -> dict:
    """Group choices (`model`: `lenet_full`) and overridden keys (`optimizer.lr`: `0.05`)."""
    choices = list((summary.get("choices") or {}).items())[::-1]  # Hydra lists them last group first
    settings = {k: v for k, v in choices if v is not None}
    overrides = summary.get("overrides")
    if overrides is None:  # an older or foreign run: Hydra's own record
        path = folder / ".hydra" / "overrides.yaml"
        try:
            overrides = _load_yaml(path.read_text()) if path.is_file() else []
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            raise RunReadError(".hydra/overrides.yaml cannot be read") from None
    for item in overrides or []:
        key, sep, value = str(item).lstrip("+~").partition("=")
        if sep and key not in settings:
            settings[key] = _scalar(value)
    return settings


def _scalar(text: str):
    """An override's value as Hydra reads it: 1e-3 is a number, true a bool, lenet_full text."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    try:
        return _load_yaml(text)
    except yaml.YAMLError:
        return text


def name_runs(runs: list[Run]) -> None:
    """Each run's name: its folder relative to the folder that holds them all."""
    if not runs:
        return
    folders = [r.folder for r in runs]
    common = Path(os.path.commonpath(folders)) if len(folders) > 1 else folders[0].parent
    for run in runs:
        run.name = str(run.folder.relative_to(common)) if run.folder != common else run.folder.name


# ---------------------------------------------------------------------------------------------
# The table


def setting_columns(runs: list[Run], all_columns: bool = False) -> list[str]:
    """Group choices, then overridden keys A-Z: those whose values differ between runs, or all of them."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.settings if k not in keys]
    keys = [k for k in keys if "." not in k] + sorted(k for k in keys if "." in k)
    if all_columns:
        return keys
    return [k for k in keys if k not in QUIET_KEYS and len({_text(r.setting(k)) for r in runs}) > 1]


def table(runs: list[Run], all_columns: bool = False, among: list[Run] | None = None) -> tuple[list[str], list[dict]]:
    """Columns and rows for `runs`; settings are those that differ `among` all runs found (default `runs`)."""
    columns = ["run", *setting_columns(among or runs, all_columns), *METRICS]
    rows = []
    for run in runs:
        row = run.row()
        rows.append({c: row[c] if c in row else run.setting(c) for c in columns})
    return columns, rows


def filter_runs(runs: list[Run], filters: list[str]) -> list[Run]:
    """The runs whose column or config key equals the value of every KEY=VALUE in `filters`."""
    for item in filters:
        key, sep, wanted = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--filter {item!r} is not KEY=VALUE")
        runs = [r for r in runs if _matches(r.value(key), wanted)]
    return runs


def select(runs: list[Run], filters: list[str], sort: str, reverse: bool, top: int | None) -> list[Run]:
    runs = filter_runs(runs, filters)
    if runs and all(_missing(r.value(sort)) for r in runs) and sort not in METRICS:
        columns = ", ".join(["run", *setting_columns(runs, True), *METRICS])
        raise ValueError(f"--sort {sort}: no run has that key; sort by a column ({columns}) or a config key")
    descending = (sort in HIGHER_IS_BETTER) != reverse
    present = [r for r in runs if not _missing(r.value(sort))]
    absent = [r for r in runs if _missing(r.value(sort))]  # always last
    present.sort(key=lambda r: _sort_key(r.value(sort)), reverse=descending)
    runs = present + absent
    return runs[:top] if top is not None else runs


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _sort_key(value):
    return (0, float(value), "") if _is_number(value) else (1, 0.0, _text(value))


def _matches(value, wanted: str) -> bool:
    if value is None:
        return wanted.lower() in ("", "none", "null")
    try:
        return math.isclose(float(value), float(wanted), rel_tol=1e-9)
    except (TypeError, ValueError):
        return _text(value) == wanted


def _text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _cell(column: str, value) -> str:
    if value is None:
        return "-"
    if column == "wall_seconds" and isinstance(value, (int, float)):
        return f"{value:.1f}"
    if isinstance(value, float) and column in METRICS:
        return f"{value:.4f}"
    return _text(value)


def render(columns: list[str], rows: list[dict], fmt: str, right: set[str] | None = None) -> str:
    """Rows as `fmt` (table, md, csv, json); table and md right-align numeric columns, or those in `right`."""
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: "" if r[c] is None else r[c] for c in columns} for r in rows)
        return out.getvalue()
    cells = [[short_name(r[c]) if c == "run" else _cell(c, r[c]) for c in columns] for r in rows]
    numeric = [all(_is_number(r[c]) for r in rows if r[c] is not None) for c in columns]
    if right is not None:
        numeric = [c in right for c in columns]
    if fmt == "md":
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]

    def line(values):
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)]) + "\n"


def short_name(name: str) -> str:
    """A sweep job's folder `3_model=lenet_subset,optimizer.lr=0.1` shown as `3_…`: its settings
    have columns of their own (csv and json keep the whole path)."""
    head, sep, tail = name.rpartition("/")
    number, underscore, rest = tail.partition("_")
    if number.isdigit() and underscore and len(rest) > 3:
        tail = f"{number}_…"
    return f"{head}{sep}{tail}"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Overlay plot and two-run diff


def legend_labels(runs: list[Run]) -> list[str]:
    """Each run named by the settings that differ (its folder name when none do)."""
    keys = setting_columns(runs)
    labels = []
    for run in runs:
        parts = [f"{k}={_text(run.setting(k))}" for k in keys]
        labels.append(", ".join(parts) or run.name)
    if len(set(labels)) < len(labels):  # same settings, different runs: say which folder
        labels = [f"{label} ({run.name})" if keys else label for label, run in zip(labels, runs)]
    return labels


def plot(runs: list[Run], path: Path, title: str, versus: bool = False) -> Path:
    """Test accuracy and loss per epoch of `runs` overlaid; with `versus`, final test accuracy
    against the swept key when exactly one numeric key differs."""
    from .plots import plot_overlay

    extra = numeric_sweep(runs) if versus else None
    curves = [(label, r.metrics) for label, r in zip(legend_labels(runs), runs) if r.metrics]
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
        if not _is_number(value):
            return None
        if acc is not None:
            points.append((float(value), float(acc)))
    return (key, points) if len(points) >= 2 else None


def diff(a: Run, b: Run) -> str:
    """The config keys that differ between two runs, then their final metrics side by side."""
    keys = setting_columns([a, b], all_columns=True)
    config_keys = sorted(set(a.config) | set(b.config))
    rows = [(k, _text(a.setting(k)), _text(b.setting(k))) for k in keys]
    rows += [(k, _text(a.config.get(k)), _text(b.config.get(k))) for k in config_keys if k not in keys]
    differing = [r for r in rows if r[1] != r[2]]
    ra, rb = a.row(), b.row()
    metrics = [(m, _cell(m, ra[m]), _cell(m, rb[m])) for m in METRICS]
    head = ("key", f"A: {a.name}", f"B: {b.name}")
    width = max(len(r[0]) for r in [head, *differing, *metrics])
    wa = max(len(r[1]) for r in [head, *differing, *metrics])

    def line(r):
        return f"{r[0]:<{width}}  {r[1]:<{wa}}  {r[2]}".rstrip()

    out = [f"A: {a.folder}", f"B: {b.folder}", "", line(head)]
    out += [line(r) for r in differing] or ["(no differences in the configuration)"]
    if not a.config or not b.config:
        out.append("(one run has no .hydra/config.yaml: only choices and overrides compared)")
    out += ["", line(("metric", "A", "B")), *map(line, metrics)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Groups: runs that differ only in their seed, described and compared with a baseline (docs/statistics.md)

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
        return ", ".join(f"{k}={_text(v)}" for k, v in self.settings.items()) or "all runs"

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
        if all(_missing(r.value(key)) for r in runs):
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
    from . import stats

    by_values = stats.group(runs, key=lambda r: tuple(_text(r.value(k)) for k in keys))
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
    matches = [g for g in groups if all(_matches(g.settings[k], v) for k, v in wanted)]
    if not matches:
        raise ValueError(f"--baseline {spec}: no group has {spec}; the groups are {'; '.join(g.label for g in groups)}")
    if len(matches) > 1:
        raise ValueError(
            f"--baseline {spec} names {len(matches)} groups ({'; '.join(g.label for g in matches)}); "
            f"add KEY=VALUE for another group key"
        )
    return matches[0]


def group_table(
    groups: list[Group], keys: list[str], metrics: list[str], baseline: Group | None = None
) -> tuple[list[str], list[dict]]:
    """Columns and rows of the grouped comparison, as numbers (csv and json write these).

    Per metric: `_mean`, `_std` (sample), `_min`, `_max`, `_ci_low`, `_ci_high` (95% CI of the mean);
    with a baseline, `_diff` (mean minus the baseline's), `_diff_ci_low`, `_diff_ci_high` (Welch) and `_p`.
    """
    from . import stats

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
    present = [p for p in pairs if not _missing(p[0][column])]
    present.sort(key=lambda p: _sort_key(p[0][column]), reverse=descending)
    pairs = present + [p for p in pairs if _missing(p[0][column])]
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
        cells = {k: _text(row[k]) for k in keys}
        cells.update(n=str(row["n"]), excluded=row["excluded"] or "-", epochs=_text(row["epochs"]))
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
        repeated = sorted({_text(s) for s in seeds if s is not None and seeds.count(s) > 1})
        if repeated:
            notes.append(
                f"{g.label}: seed {', '.join(repeated)} appears more than once; "
                f"such runs are not independent repetitions"
            )
    epochs = {g.label: g.epochs() for g in groups if g.completed}
    if len({tuple(e) for e in epochs.values()}) > 1:
        counts = "; ".join(f"{label}: {_text(_span(e))}" for label, e in epochs.items())
        notes.append(
            f"the groups ran different numbers of epochs ({counts}); final_* compare each run's last "
            f"epoch, best_* the best of the epochs it ran"
        )
    losses = {_text(r.setting("loss")) for g in groups for r in g.completed}
    if len(losses) > 1:
        notes.append(
            f"the runs minimize different losses ({', '.join(sorted(losses))}): their test losses are on different "
            f"scales, so compare their accuracies"
        )
    pooled = [
        k
        for k in setting_columns(runs)
        if k not in keys and k != "seed" and any(len({_text(r.setting(k)) for r in g.runs}) > 1 for g in groups)
    ]
    if pooled:
        notes.append(f"groups pool runs that also differ in {', '.join(pooled)}; add to --group-by to split them")
    return notes


def plot_groups(groups: list[Group], path: Path, title: str, versus: bool = False) -> Path:
    """Per group, the mean test accuracy and test loss per epoch of its completed runs with a band of
    ±1 sample standard deviation; with `versus`, the mean final test accuracy (±1 sd) against the group
    key when there is exactly one and it is numeric."""
    import numpy as np

    from . import stats
    from .plots import _integer_epochs, _save, colormap, figure, versus_axes

    shown = [g for g in groups if any(r.metrics for r in g.completed)]
    points = []  # (value of the one numeric group key, final test accuracy) for the third panel
    if versus and len(groups[0].settings) == 1 and all(_is_number(v) for g in shown for v in g.settings.values()):
        points = [(float(v), stats.describe(g.values("final_test_acc"))) for g in shown for v in g.settings.values()]
        points = sorted((p for p in points if p[1].n), key=lambda p: p[0])
    panels = 3 if len(points) >= 2 else 2
    legend_columns = 1 if len(shown) <= 6 else 2
    legend = 0.21 * math.ceil(len(shown) / legend_columns) + 0.15 if shown else 0  # inches, below the panels
    width, height = 6 * panels, 5 + legend
    fig = figure(figsize=(width, height))  # fixed margins, as plots.plot_overlay (no layout engine pass)
    fig.subplots_adjust(
        left=0.8 / width, right=1 - 0.25 / width, bottom=(legend + 0.7) / height, top=1 - 0.8 / height, wspace=0.25
    )
    axes = fig.subplots(1, panels)
    cmap = colormap("tab10" if len(shown) <= 10 else "tab20")
    all_epochs = []
    for i, g in enumerate(shown):
        color, left_out = cmap(i % cmap.N), g.excluded()
        label = f"{g.label} (n={len(g.completed)}" + (f"; left out: {left_out})" if left_out else ")")
        for ax, column in zip(axes, ("test_acc", "test_loss")):
            curve = stats.mean_curve([[(row["epoch"], row[column]) for row in r.metrics] for r in g.completed])
            epochs = [c[0] for c in curve]
            mean = np.array([c[2] for c in curve])
            std = np.array([c[3] or 0.0 for c in curve])
            all_epochs += epochs
            ax.plot(
                epochs,
                mean,
                "-",
                marker="o",
                ms=4 if len(epochs) > 1 else 8,
                color=color,
                label=label if column == "test_acc" else None,
            )
            if len(epochs) > 1:
                ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, lw=0)
            else:
                ax.errorbar(epochs, mean, yerr=std, fmt="none", ecolor=color, capsize=6)
    for ax, what in zip(axes[:2], ("test accuracy", "test loss")):
        _integer_epochs(ax, all_epochs or [1])
        ax.set_xlabel("epoch", fontsize=12)
        ax.set_ylabel(f"{what} (mean ± 1 sd over seeds)", fontsize=12)
        ax.set_title(f"{what.capitalize()} per epoch", fontsize=13)
        ax.grid(alpha=0.3)
    if panels == 3:
        key = next(iter(groups[0].settings))
        ax = axes[2]
        x = [p[0] for p in points]
        ax.errorbar(
            x, [p[1].mean for p in points], yerr=[p[1].std or 0.0 for p in points], fmt="o-", color="black", capsize=4
        )
        versus_axes(ax, key, x, "final test accuracy (mean ± 1 sd)")
    fig.suptitle(title, fontsize=14, y=1 - 0.1 / height, va="top")
    if shown:
        anchor = (0.5, 0.05 / height)
        fig.legend(loc="lower center", bbox_to_anchor=anchor, ncols=legend_columns, fontsize=10, frameon=False)
    _save(fig, path)
    return path


# ---------------------------------------------------------------------------------------------
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
        runs = []
        for path in args.diff:
            if not (path / "summary.json").is_file():
                print(f"Error: {path} is not a run folder (no summary.json)", file=sys.stderr)
                return 2
            try:
                runs.append(read_run(path.resolve()))
            except RunReadError as e:
                print(f"Error: {path}: {e}", file=sys.stderr)
                return 1
        name_runs(runs)
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
    runs, problems = find_runs(args.paths)
    for line in problems:
        print(line, file=sys.stderr)
    if not runs:
        print(f"Error: no readable run (no summary.json) below {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    if args.groups or args.group_by is not None or args.baseline is not None or args.metrics is not None:
        return main_groups(args, runs)
    try:
        chosen = select(runs, args.filter, args.sort or "best_test_acc", args.reverse, args.top)
    except ValueError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    if not chosen:
        print("No run matches the filters.", file=sys.stderr)
        return 1
    columns, rows = table(chosen, args.all_columns, among=runs)  # a --top or --filter view keeps the columns
    if args.format in ("csv", "json"):
        for row, run in zip(rows, chosen):
            row["folder"] = str(run.folder)
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
        keys = group_keys(chosen, args.group_by)
        metrics = group_metrics(chosen, args.metrics)
        groups = make_groups(chosen, keys)
        baseline = find_baseline(groups, keys, args.baseline) if args.baseline else None
        columns, rows = group_table(groups, keys, metrics, baseline)
        rows, groups = sort_groups(rows, groups, metrics, args.sort, args.reverse)
    except ValueError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    rows, groups = rows[: args.top], groups[: args.top]
    if args.format in ("csv", "json"):
        if args.format == "json":
            for row, group in zip(rows, groups):
                row["folders"] = [str(r.folder) for r in group.runs]
        sys.stdout.write(render(columns, rows, args.format))
    else:
        view_columns, view = group_view(columns, rows, keys, metrics, baseline, groups)
        sys.stdout.write(render(view_columns, view, args.format, right=set(view_columns) - set(keys)))
    for note in group_notes(groups, keys, chosen):
        print(f"Note: {note}", file=sys.stderr)
    if args.plot:
        plot_groups(groups, args.plot, f"{len(groups)} groups, {len(chosen)} runs: mean ± 1 sd over seeds")
        print(f"Plot: {args.plot}", file=sys.stderr)
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
