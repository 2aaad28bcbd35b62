"""Log finished run folders afterwards: `python -m mnist_runner.loggers PATH... [logger=NAME] [logger.NAME.KEY=VALUE]`.

PATH is a run folder, a sweep folder (its jobs go under one MLflow parent run, one W&B group) or any
folder above run folders. The loggers are those the overrides name (`logger=mlflow`,
`logger=[mlflow,wandb]`; `logger.mlflow.tracking_uri=http://host:5000` alone names mlflow), with each
run's own settings for them and the keys given here on top; without overrides, each run's own loggers.
A run its tracker missed (summary.json: `"loggers": {"mlflow": {"status": "missed"}}`) continues in the
same tracker run when it got one, from the first epoch it did not log; a run logged before is not
logged twice. summary.json then records the logger's new status.

Exit codes: 0 every run logged, 1 a logger missed a run, 2 bad arguments.
"""

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from ..files import write_json
from ..registry import ConfigError
from ..sweep import FAILED
from . import Loggers, RunInfo, selected, sweep_ended, sweep_started


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    overrides = [a for a in args if "=" in a and not Path(a).exists()]
    paths = [Path(a) for a in args if a not in overrides]
    try:
        for path in paths:
            if not path.is_dir():
                raise ConfigError(f"{path} is not a folder; give run or sweep folders")
        asked = Asked.parse(overrides)
        missed = sum(replay_folder(path, asked) for path in paths)
    except ConfigError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    return 1 if missed else 0


@dataclass
class Asked:
    """The loggers the command line names (None: each run's own) and the keys it sets (logger, key)."""

    loggers: dict | None = None
    keys: set = field(default_factory=set)

    @classmethod
    def parse(cls, overrides: list[str]) -> "Asked":
        if not overrides:
            return cls()
        keys = set()
        for o in overrides:
            parts = o.lstrip("+~").split("=", 1)[0].split(".")
            if parts[0] != "logger":
                raise ConfigError(f"{o}: only logger=... and logger.NAME.KEY=VALUE may be given here")
            if len(parts) >= 3:
                keys.add((parts[1], parts[2]))
        if not any(o.startswith("logger=") for o in overrides):  # logger.mlflow.x=y alone: logger=mlflow
            overrides = [f"logger=[{','.join(sorted({name for name, _ in keys}))}]", *overrides]
        return cls(selected(compose_logger(overrides)), keys)

    def apply(self, own) -> dict:
        """The loggers for a run that had `own`: its settings, with what the command line sets on top."""
        own = selected(own)
        if self.loggers is None:
            return own
        return {
            name: {**options, **own.get(name, {}), **{k: v for k, v in options.items() if (name, k) in self.keys}}
            for name, options in self.loggers.items()
        }


def compose_logger(overrides: list[str]):
    """The `logger` node that `python -m mnist_runner OVERRIDES` would compose."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from ..config import config_dir

    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
    except HydraException as e:
        raise ConfigError(" ".join(str(e).split("Config search path")[0].split())) from None
    return cfg.get("logger") or OmegaConf.create({})


def replay_folder(path: Path, asked: Asked) -> int:
    """Log the runs in `path`; returns how many runs a logger missed."""
    if (path / "summary.json").is_file():
        return replay_run(path, asked)
    runs = sorted(p.parent for p in path.rglob("summary.json"))
    if not runs:
        raise ConfigError(f"{path} has no run folder (no summary.json) in it")
    sweep = (path / "multirun.yaml").is_file()
    config = _sweep_config(path, asked) if sweep else None
    if sweep:
        sweep_started(config, path)
    missed = sum(replay_run(run, asked) for run in runs)
    if sweep:
        statuses = [_read_json(run / "summary.json").get("status") for run in runs]
        sweep_ended(config, path, sum(s in FAILED for s in statuses))
    return missed


def replay_run(folder: Path, asked: Asked) -> int:
    summary = _read_json(folder / "summary.json")
    if summary.get("status") in (None, "running"):
        print(
            f"{folder}: skipped: its status is {summary.get('status')!r} (still running, or killed: resume it first)",
            file=sys.stderr,
        )
        return 0
    config_path = folder / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    logger_cfg = asked.apply((config or {}).get("logger"))
    if not logger_cfg:
        print(f"{folder}: no logger to log to (give logger=NAME)", file=sys.stderr)
        return 0
    run = RunInfo(folder, config or {}, summary.get("choices") or {}, summary.get("overrides") or [])
    loggers = Loggers(logger_cfg, run)
    steps = [(int(r["examples_seen"]), float(r["loss"])) for r in _read_csv(folder / "train_steps.csv")]
    for row in _read_csv(folder / "metrics.csv"):
        row = {k: _number(v) for k, v in row.items()}
        loggers.log_epoch(row, steps)  # the steps go with the first epoch a logger has not logged yet
    loggers.close(summary)
    if "loggers" in summary:
        on_disk = _read_json(folder / "summary.json")
        on_disk["loggers"] = {**(on_disk.get("loggers") or {}), **summary["loggers"]}
        write_json(folder / "summary.json", on_disk)
    for name, record in summary.get("loggers", {}).items():
        where = record.get("run_id") or record.get("dir") or ""
        detail = f"missed ({record.get('error')})" if record["status"] == "missed" else f"logged {where}".rstrip()
        print(f"{folder}: {name} {detail}", flush=True)
    return len(loggers.missed)


def _sweep_config(folder: Path, asked: Asked):
    """The sweep's logger config (its multirun.yaml's, with the command line's on top) and Hydra job name."""
    stored = OmegaConf.load(folder / "multirun.yaml")
    logger = asked.apply(stored.get("logger"))
    job_name = OmegaConf.select(stored, "hydra.job.name", default="mnist_runner")
    overrides = OmegaConf.select(stored, "hydra.overrides.task", default=[])
    return OmegaConf.create({"logger": logger, "hydra": {"job": {"name": job_name}, "overrides": {"task": overrides}}})


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text
