"""The run folder: the one module that knows its layout and the schema of its summary.json.

Every tool reads and writes run folders through `RunFolder` (docs/outputs.md lists the files):
the run itself (run.py), resume (checkpoint.py), the comparison and the sweep summary (results/),
eval and predict, the trackers' replay, and the cluster's records of lost jobs. So a folder that is
damaged or half-written is handled here, once, the same way for every tool:

- a folder is a run when it holds `summary.json`; a run writes it before anything else and keeps it
  true at every moment (`status: running` while it trains), so a run still going is a run;
- `summary()` is the summary as an object whose known keys have their types (`SUMMARY_TYPES`); an
  empty, broken or half-written file, or a value of the wrong type, raises `DamagedRun` with one line
  saying what is wrong;
- `metrics()` is metrics.csv's rows with numbers parsed: none before the first epoch ends (no file
  yet); `DamagedRun` for a last line cut short (resume= mends it) or a line that cannot be read;
- `config_tree()` and `config()` are `.hydra/config.yaml` (a folder without it cannot be resumed).

Torch-free: the comparison and the sweep summary import it.
"""

import csv
import io
import json
from pathlib import Path

from .files import write_atomic, write_json

SUMMARY = "summary.json"
METRICS = "metrics.csv"
STEPS = "train_steps.csv"
MODEL = "model.pt"  # the final weights
BEST_MODEL = "model_best.pt"  # the weights of the best epoch on the monitored metric (monitor.py)
CHECKPOINT = "checkpoints/last.pt"  # the state after the last completed epoch
MODEL_SUMMARY = "model_summary.txt"
LOG = "mnist_runner.log"  # what the run said (console.py), and Hydra's log of the job
CONFUSION = "confusion_matrix.csv"
PLOTS = "plots"
LOGGERS = "loggers.json"  # what each tracker has logged (loggers/); also in a sweep folder
EVAL = "eval"  # mnist-runner-eval's results, one folder per evaluation
HYDRA_DIR = ".hydra"
CONFIG = f"{HYDRA_DIR}/config.yaml"  # the composed config
HYDRA = f"{HYDRA_DIR}/hydra.yaml"  # Hydra's own config: its runtime choices, the overrides
OVERRIDES = f"{HYDRA_DIR}/overrides.yaml"
SWEEP_CONFIG = "multirun.yaml"  # in a sweep folder: the sweep's config

ARTIFACTS = (SUMMARY, METRICS, STEPS, CONFUSION, MODEL_SUMMARY)  # the tables a tracker gets

# How a run ended, or that it has not: summary.json's `status`. A finished run is a result: continuing a
# sweep leaves it alone (continuing.py); pruned: an Optuna search stopped it early (hydra_plugins/).
STATUSES = ("running", "completed", "diverged", "interrupted", "failed", "pruned")
FINISHED = ("completed", "diverged", "pruned")

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


class DamagedRun(Exception):
    """A run folder file that cannot be read, in one line (the file and what is wrong with it)."""


def new_summary(choices: dict, overrides: list, **more) -> dict:
    """The summary.json a run starts with (a run, or a job the cluster lost before it could start)."""
    return {"status": "running", "choices": dict(choices), "overrides": list(overrides), **more, "epochs_completed": 0}


class RunFolder:
    """One run's folder: its files by name, read and written here."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunFolder) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    def file(self, name: str) -> Path:
        """The path of one of the names above (`MODEL`, `CHECKPOINT`, ...)."""
        return self.path / name

    @property
    def is_run(self) -> bool:
        return self.file(SUMMARY).is_file()

    @property
    def has_config(self) -> bool:
        """Whether the folder holds its composed config, which resume, eval and predict need."""
        return self.file(CONFIG).is_file()

    def require_config(self, key: str | None = None) -> None:
        """ConfigError, in one line, unless the folder holds its composed config. `key`: the override that
        named the folder (`resume`), for the message."""
        if self.has_config:
            return
        from .registry import ConfigError

        given, example = (f"{key}={str(self.path)!r}", f"{key}=") if key else (str(self.path), "")
        raise ConfigError(
            f"{given} is not a run folder (no {CONFIG} in it); give a folder the runner made, "
            f"e.g. {example}outputs/YYYY-MM-DD/HH-MM-SS"
        )

    # --- summary.json ------------------------------------------------------------------------------

    def summary(self) -> dict:
        """summary.json, checked (see the module's docstring); DamagedRun when it cannot be read."""
        data = _read_json(self.file(SUMMARY))
        for key, kind in SUMMARY_TYPES.items():
            if data.get(key) is not None and not isinstance(data[key], kind):
                expected = "a number" if kind is _NUMBER else f"a {kind.__name__}"
                raise DamagedRun(f"{SUMMARY}: {key!r} is {data[key]!r}, not {expected}")
        return data

    def write_summary(self, summary: dict) -> None:
        """Write summary.json whole (a reader never sees half of it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.file(SUMMARY), summary)

    # --- loggers.json (loggers/) ---------------------------------------------------------------------

    def logged(self) -> dict:
        """loggers.json: what each tracker has logged of this run (or, in a sweep folder, its parent run);
        {} when there is none, or none that can be read (a tracker then starts its run afresh)."""
        try:
            return _read_json(self.file(LOGGERS)) if self.file(LOGGERS).is_file() else {}
        except DamagedRun:
            return {}

    def write_logged(self, states: dict) -> None:
        write_json(self.file(LOGGERS), states)

    # --- the tables --------------------------------------------------------------------------------

    def metrics(self) -> list[dict]:
        """metrics.csv's completed rows, numbers parsed (`epoch` an int)."""
        rows = _read_csv(self.file(METRICS), {"epoch"})
        if rows and not {"epoch", "test_acc", "test_loss"} <= set(rows[0]):
            raise DamagedRun(f"{METRICS} lacks the columns epoch, test_acc, test_loss")
        return rows

    def steps(self) -> list[tuple[int, float]]:
        """train_steps.csv as (examples_seen, loss)."""
        return [(int(r["examples_seen"]), r["loss"]) for r in _read_csv(self.file(STEPS), {"step", "examples_seen"})]

    # --- the config Hydra composed -----------------------------------------------------------------

    def config_tree(self) -> dict:
        """`.hydra/config.yaml` as plain data ({} when absent), read with libyaml: fast, for tables."""
        return _read_yaml(self.file(CONFIG), {})

    def config(self):
        """`.hydra/config.yaml` as an OmegaConf config, read by OmegaConf as Hydra wrote it: what resume,
        eval and predict rebuild the run from."""
        return _load_omegaconf(self.file(CONFIG))

    def hydra(self):
        """`.hydra/hydra.yaml`'s `hydra` node (the runtime choices, the overrides, the job's name)."""
        return _load_omegaconf(self.file(HYDRA)).hydra

    def hydra_overrides(self) -> list[str]:
        """The command line's overrides as Hydra recorded them (`.hydra/overrides.yaml`; summary.json's
        `overrides` says the same for a run of this runner, and is what the tables read first)."""
        return [str(o) for o in _read_yaml(self.file(OVERRIDES), [])]

    def write_config(self, cfg) -> None:
        """`.hydra/` for a job that never started (cluster.py), from its config with the `hydra` node, as Hydra
        writes it for a job that runs: so that resume= can start it."""
        import copy

        from omegaconf import OmegaConf, open_dict

        task = copy.deepcopy(cfg)
        with open_dict(task):
            del task["hydra"]
        self.file(HYDRA_DIR).mkdir(parents=True, exist_ok=True)
        write_atomic(self.file(CONFIG), OmegaConf.to_yaml(task))
        write_atomic(self.file(HYDRA), OmegaConf.to_yaml({"hydra": cfg.hydra}))
        write_atomic(self.file(OVERRIDES), OmegaConf.to_yaml(cfg.hydra.overrides.task))

    def holds_results(self) -> bool:
        """Whether anything in the folder came of training: more than Hydra's files, the job's log, the
        model summary and a summary.json whose run completed no epoch (a run refused before it started)."""
        if not self.path.is_dir():
            return False
        setup = {HYDRA_DIR, SUMMARY, MODEL_SUMMARY}
        if any(p.name not in setup and p.suffix != ".log" for p in self.path.iterdir()):
            return True
        try:
            return self.is_run and self.summary().get("epochs_completed", 0) > 0
        except DamagedRun:
            return True  # not ours to judge: keep it

    # --- weights -----------------------------------------------------------------------------------

    def weights(self) -> str | None:
        """Which file holds the trained weights: model.pt, else the last checkpoint of a run that did not
        finish; None before the first epoch ended."""
        return next((name for name in (MODEL, CHECKPOINT) if self.file(name).is_file()), None)


def find(paths) -> list[RunFolder]:
    """Every run folder at or below `paths` (each once, in the order found, sorted within each path)."""
    found: dict[Path, RunFolder] = {}
    for base in map(Path, paths):
        summaries = [base / SUMMARY] if (base / SUMMARY).is_file() else sorted(base.rglob(SUMMARY))
        for summary in summaries:
            folder = summary.parent.resolve()
            found.setdefault(folder, RunFolder(folder))
    return list(found.values())


def is_sweep(path) -> bool:
    """Whether `path` is a sweep folder: Hydra's multirun.yaml is in it."""
    return (Path(path) / SWEEP_CONFIG).is_file()


# --- the readers ---------------------------------------------------------------------------------


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DamagedRun(f"{path.name} cannot be read ({e})") from None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DamagedRun(f"there is no {path.name}")
    text = _text(path)
    if not text.strip():
        raise DamagedRun(f"{path.name} is empty (half-written?)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DamagedRun(f"{path.name} is broken or half-written ({e})") from None
    if not isinstance(data, dict):
        raise DamagedRun(f"{path.name} holds a {type(data).__name__}, not an object")
    return data


def _read_csv(path: Path, integers: set[str]) -> list[dict]:
    """A CSV file's complete rows with numbers parsed; [] when there is no file."""
    if not path.is_file():
        return []
    text = _text(path)
    if text and not text.endswith("\n"):  # a write cut short (resume= truncates it: checkpoint.truncate_csv)
        raise DamagedRun(f"{path.name} is half-written (its last line is incomplete)")
    rows = []
    for n, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        if None in row or None in row.values():
            raise DamagedRun(f"{path.name} line {n} has the wrong number of fields")
        try:
            rows.append({k: int(v) if k in integers else float(v) for k, v in row.items()})
        except ValueError:
            raise DamagedRun(f"{path.name} line {n} holds a value that is not a number") from None
    return rows


def _load_omegaconf(path: Path):
    from omegaconf import OmegaConf

    if not path.is_file():
        raise DamagedRun(f"there is no {path.parent.name}/{path.name}")
    try:
        return OmegaConf.load(path)
    except Exception as e:  # yaml's and OmegaConf's errors
        raise DamagedRun(f"{path.parent.name}/{path.name} cannot be read ({type(e).__name__})") from None


def _read_yaml(path: Path, absent):
    """A YAML file read with libyaml when PyYAML has it (the same values as yaml.safe_load, about 10x
    faster); `absent` when there is no such file."""
    if not path.is_file():
        return absent
    import yaml

    try:
        data = yaml.load(_text(path), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise DamagedRun(f"{path.parent.name}/{path.name} cannot be read ({type(e).__name__})") from None
    return absent if data is None else data
