"""The comparison table: one row per run, the settings that differ between the runs, then the metrics.

`table(runs)` makes the columns and rows (what `mnist-runner-compare --format csv` prints, and
`Runs.frame()` returns), `filter_runs`/`select` choose and sort the runs, `render` writes rows as a
table, Markdown, CSV or JSON, and `diff` puts two runs' configurations side by side.
"""

import csv
import io
import json
import math

from .runs import Run, is_number

METRICS = ["status", "params", "final_test_acc", "best_test_acc", "final_test_loss", "epochs", "wall_seconds"]
HIGHER_IS_BETTER = {"final_test_acc", "best_test_acc", "params", "epochs"}
# Settings that say where or how verbosely a run ran, not what it computed: hidden unless they
# are asked for (--all-columns) or filtered on.
QUIET_KEYS = {"dataset.root", "dataset.download", "trainer.progress"}


def setting_columns(runs: list[Run], all_columns: bool = False) -> list[str]:
    """Group choices, then overridden keys A-Z: those whose values differ between runs, or all of them."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.settings if k not in keys]
    keys = [k for k in keys if "." not in k] + sorted(k for k in keys if "." in k)
    if all_columns:
        return keys
    return [k for k in keys if k not in QUIET_KEYS and len({as_text(r.setting(k)) for r in runs}) > 1]


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
        runs = [r for r in runs if matches(r.value(key), wanted)]
    return runs


def select(runs: list[Run], filters: list[str], sort: str, reverse: bool, top: int | None) -> list[Run]:
    runs = filter_runs(runs, filters)
    if runs and all(is_missing(r.value(sort)) for r in runs) and sort not in METRICS:
        columns = ", ".join(["run", *setting_columns(runs, True), *METRICS])
        raise ValueError(f"--sort {sort}: no run has that key; sort by a column ({columns}) or a config key")
    descending = (sort in HIGHER_IS_BETTER) != reverse
    present = [r for r in runs if not is_missing(r.value(sort))]
    absent = [r for r in runs if is_missing(r.value(sort))]  # always last
    present.sort(key=lambda r: sort_key(r.value(sort)), reverse=descending)
    runs = present + absent
    return runs[:top] if top is not None else runs


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def sort_key(value):
    return (0, float(value), "") if is_number(value) else (1, 0.0, as_text(value))


def matches(value, wanted: str) -> bool:
    if value is None:
        return wanted.lower() in ("", "none", "null")
    try:
        return math.isclose(float(value), float(wanted), rel_tol=1e-9)
    except (TypeError, ValueError):
        return as_text(value) == wanted


def as_text(value) -> str:
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
    return as_text(value)


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
    numeric = [all(is_number(r[c]) for r in rows if r[c] is not None) for c in columns]
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


def diff(a: Run, b: Run) -> str:
    """The config keys that differ between two runs, then their final metrics side by side."""
    keys = setting_columns([a, b], all_columns=True)
    config_keys = sorted(set(a.flat) | set(b.flat))
    rows = [(k, as_text(a.setting(k)), as_text(b.setting(k))) for k in keys]
    rows += [(k, as_text(a.flat.get(k)), as_text(b.flat.get(k))) for k in config_keys if k not in keys]
    differing = [r for r in rows if r[1] != r[2]]
    ra, rb = a.row(), b.row()
    metrics = [(m, _cell(m, ra[m]), _cell(m, rb[m])) for m in METRICS]
    head = ("key", f"A: {a.name}", f"B: {b.name}")
    width = max(len(r[0]) for r in [head, *differing, *metrics])
    wa = max(len(r[1]) for r in [head, *differing, *metrics])

    def line(r):
        return f"{r[0]:<{width}}  {r[1]:<{wa}}  {r[2]}".rstrip()

    out = [f"A: {a.path}", f"B: {b.path}", "", line(head)]
    out += [line(r) for r in differing] or ["(no differences in the configuration)"]
    if not a.flat or not b.flat:
        out.append("(one run has no .hydra/config.yaml: only choices and overrides compared)")
    out += ["", line(("metric", "A", "B")), *map(line, metrics)]
    return "\n".join(out) + "\n"
