"""Runs as the comparison, the sweep summary and a notebook read them: `load_runs(*paths)`.

A `Run` is one run folder's files as read by `run_folder.RunFolder` (so a damaged or half-written
folder is handled as every tool handles it), with its settings: the group choices and the overridden
keys, which the tables compare. `Runs` is the list of runs below some folders, and what a notebook
does with them: `frame()` (one row per run, as `mnist-runner-compare --format csv`) and `epochs()`
(one row per run and epoch). pandas is imported by those two and `Run.metrics` only.
"""

import os
from pathlib import Path

from ..run_folder import DamagedRun, RunFolder, find


class Run:
    """One run: its folder, summary.json, metrics.csv's rows and its composed config."""

    def __init__(self, folder: RunFolder):
        self.folder = folder
        self.summary: dict = folder.summary()
        self.rows: list[dict] = folder.metrics()  # metrics.csv's rows, numbers parsed
        self.tree: dict = folder.config_tree()  # .hydra/config.yaml ({} when absent)
        self.flat: dict = flatten(self.tree) if isinstance(self.tree, dict) else {}
        self.settings: dict = _settings(self.summary, folder)  # group choices, then overridden keys
        self.name: str = folder.path.name  # set relative to the runs read with it (name_runs)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r})"

    # --- the Python API (docs/python.md) -----------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def config(self):
        """The composed config (`.hydra/config.yaml`) as an OmegaConf config: `run.config.optimizer.lr`."""
        from omegaconf import OmegaConf

        return OmegaConf.create(self.tree)

    @property
    def metrics(self):
        """metrics.csv as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def load_model(self):
        """The trained model (model.pt, else the last checkpoint's weights) in eval mode, on the CPU."""
        from ..eval import load_trained

        return load_trained(self.path).model

    # --- for the tables ----------------------------------------------------------------------------

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
        return self.flat.get(key)

    def metric(self, name: str) -> float | None:
        """A metric of the groups (results.groups.GROUP_METRICS): a column of row(), or summary.json's
        `best_val.test_acc`."""
        if name == "best_val.test_acc":
            best_val = self.summary.get("best_val")
            value = best_val.get("test_acc") if isinstance(best_val, dict) else None
        else:
            value = self.row().get(name)
        return float(value) if is_number(value) else None

    def row(self) -> dict:
        """The run's numbers in the table (results.table.METRICS), from summary.json, else metrics.csv."""
        s, m = self.summary, self.rows
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


class Runs(list):
    """The runs below some folders (`load_runs`); `skipped` says which folders could not be read, and why."""

    def __init__(self, runs=(), skipped=()):
        super().__init__(runs)
        self.skipped: list[str] = list(skipped)

    def frame(self):
        """One row per run: the settings that differ between the runs, the final and best metrics and
        the folder, as `mnist-runner-compare --format csv` prints them."""
        import pandas as pd

        from .table import table

        columns, rows = table(list(self))
        return pd.DataFrame(
            [{**row, "folder": str(run.path)} for row, run in zip(rows, self)], columns=[*columns, "folder"]
        )

    def epochs(self):
        """One row per run and epoch: the run, the settings that differ between the runs, then metrics.csv's
        columns (a validation split's where a run has one)."""
        import pandas as pd

        from .table import setting_columns

        keys = setting_columns(list(self))
        rows = []
        for run in self:
            settings = {"run": run.name, **{k: run.setting(k) for k in keys}}
            rows += [{**settings, **row} for row in run.rows]
        columns = ["run", *keys, *dict.fromkeys(c for run in self for r in run.rows for c in r)]
        return pd.DataFrame(rows, columns=columns)


def load_runs(*paths) -> Runs:
    """The runs at or below `paths` (run folders, sweep folders, or any folders above them).

    A folder that cannot be read is left out and named, with why, in the result's `skipped`.
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no such folder: {', '.join(missing)}")
    return read_runs(paths)


def read_runs(paths, strict: bool = False) -> Runs:
    """Every readable run below `paths`, named relative to the folder that holds them all; with
    `strict`, DamagedRun for the first that cannot be read, else it is left out and named in `skipped`."""
    runs, skipped = [], []
    for folder in find(paths):
        try:
            runs.append(Run(folder))
        except DamagedRun as e:
            if strict:
                raise DamagedRun(f"{folder.path}: {e}") from None
            skipped.append(f"skipped {folder.path}: {e}")
    name_runs(runs)
    return Runs(runs, skipped)


def name_runs(runs: list[Run]) -> None:
    """Each run's name: its folder relative to the folder that holds them all."""
    if not runs:
        return
    folders = [r.path for r in runs]
    common = Path(os.path.commonpath(folders)) if len(folders) > 1 else folders[0].parent
    for run in runs:
        run.name = str(run.path.relative_to(common)) if run.path != common else run.path.name


def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested config as dotted keys: {"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _settings(summary: dict, folder: RunFolder) -> dict:
    """Group choices (`model`: `lenet_full`) and overridden keys (`optimizer.lr`: `0.05`)."""
    choices = list((summary.get("choices") or {}).items())[::-1]  # Hydra lists them last group first
    settings = {k: v for k, v in choices if v is not None}
    overrides = summary.get("overrides")
    for item in folder.hydra_overrides() if overrides is None else overrides:  # an older or foreign run: Hydra's
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
    import yaml

    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return text
