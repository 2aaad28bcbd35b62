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

import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from ..registry import ConfigError
from ..run_folder import SWEEP_CONFIG, DamagedRun, RunFolder, find, is_sweep
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

    from ..config import config_dir, setup

    setup()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
    except HydraException as e:
        raise ConfigError(" ".join(str(e).split("Config search path")[0].split())) from None
    return cfg.get("logger") or OmegaConf.create({})


def replay_folder(path: Path, asked: Asked) -> int:
    """Log the runs in `path`; returns how many runs a logger missed."""
    runs = find([path])
    if not runs:
        raise ConfigError(f"{path} has no run folder (no summary.json) in it")
    sweep = is_sweep(path)
    config = _sweep_config(path, asked) if sweep else None
    if sweep:
        sweep_started(config, path)
    summaries = {run: _summary(run) for run in runs}
    missed = sum(replay_run(run, summary, asked) for run, summary in summaries.items() if summary is not None)
    if sweep:
        sweep_ended(config, path, sum(s is not None and s.get("status") in FAILED for s in summaries.values()))
    return missed


def _summary(folder: RunFolder) -> dict | None:
    """The run's summary.json; None, after a line saying why, for one that cannot be read."""
    try:
        return folder.summary()
    except DamagedRun as e:
        print(f"{folder.path}: skipped: {e}", file=sys.stderr)
        return None


def replay_run(folder: RunFolder, summary: dict, asked: Asked) -> int:
    if summary.get("status") in (None, "running"):
        print(
            f"{folder.path}: skipped: its status is {summary.get('status')!r} (still running, or killed: resume "
            "it first)",
            file=sys.stderr,
        )
        return 0
    config = folder.config_tree()
    logger_cfg = asked.apply(config.get("logger"))
    if not logger_cfg:
        print(f"{folder.path}: no logger to log to (give logger=NAME)", file=sys.stderr)
        return 0
    run = RunInfo(folder.path, config, summary.get("choices") or {}, summary.get("overrides") or [])
    loggers = Loggers(logger_cfg, run)
    steps = folder.steps()
    for row in folder.metrics():
        loggers.log_epoch(row, steps)  # the steps go with the first epoch a logger has not logged yet
    loggers.close(summary)
    if "loggers" in summary:
        on_disk = folder.summary()
        on_disk["loggers"] = {**(on_disk.get("loggers") or {}), **summary["loggers"]}
        folder.write_summary(on_disk)
    for name, record in summary.get("loggers", {}).items():
        where = record.get("run_id") or record.get("dir") or ""
        detail = f"missed ({record.get('error')})" if record["status"] == "missed" else f"logged {where}".rstrip()
        print(f"{folder.path}: {name} {detail}", flush=True)
    return len(loggers.missed)


def _sweep_config(folder: Path, asked: Asked):
    """The sweep's logger config (its multirun.yaml's, with the command line's on top) and Hydra job name."""
    stored = OmegaConf.load(folder / SWEEP_CONFIG)
    logger = asked.apply(stored.get("logger"))
    job_name = OmegaConf.select(stored, "hydra.job.name", default="mnist_runner")
    overrides = OmegaConf.select(stored, "hydra.overrides.task", default=[])
    return OmegaConf.create({"logger": logger, "hydra": {"job": {"name": job_name}, "overrides": {"task": overrides}}})
