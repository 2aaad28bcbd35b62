"""Experiment loggers (`logger=...`): where a run's numbers go besides its own folder (docs/trackers.md).

- `none`: nothing more;
- `tensorboard`: scalars per epoch and the hyperparameters with the final metrics in `RUN_FOLDER/tensorboard/`;
- `mlflow`: one MLflow run per job (a multirun's jobs under one parent run), at `logger.mlflow.tracking_uri`;
- `wandb`: one Weights & Biases run per job, offline unless asked otherwise (`wandb sync` later).

Several at once: `logger=[tensorboard,mlflow]`. Each option of the group is composed under its own name
(`cfg.logger.mlflow.experiment`), so the group's config is a dict keyed by logger.

A logger gets the run as its folder records it (`RunInfo`), the epochs one by one (`log_epoch`) and the
final summary (`close`); the live run and `python -m mnist_runner.loggers FOLDER` (a finished folder
logged afterwards) drive it the same way. `Loggers` holds the run's loggers: a logger that fails (a
tracker that cannot be reached) costs the run one warning line, is dropped for the rest of the run and
is recorded as `missed` in summary.json. What each logger has logged (its run id, the last epoch)
is kept in `RUN_FOLDER/loggers.json`, so a resumed or replayed run continues the same tracker run and
never logs an epoch twice.

Torch-free, and no tracker package is imported before a logger that needs it is built.
"""

import inspect
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from .. import console
from ..registry import LOGGERS, ConfigError
from ..run_folder import DamagedRun, RunFolder

REPLAY = "python -m mnist_runner.loggers"


@dataclass
class RunInfo:
    """A run as a logger sees it: its folder, its composed config (resolved, plain) and what was chosen."""

    folder: Path
    config: dict
    choices: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)

    @property
    def name(self) -> str:
        """The tracker run's name: the folder's last two parts (`2024-05-01/12-00-00`, `12-00-00/0_seed=1`)."""
        return "/".join(self.folder.resolve().parts[-2:])

    @property
    def job_name(self) -> str:
        """Hydra's job name (`hydra.job.name`, `mnist_runner`): the default experiment or project."""
        try:
            return str(OmegaConf.select(RunFolder(self.folder).hydra(), "job.name") or "mnist_runner")
        except DamagedRun:
            return "mnist_runner"

    def hparams(self) -> dict:
        """The choices and the overridden keys: what this run was asked for."""
        chosen = {k: v for k, v in self.choices.items() if isinstance(v, str)}
        return {**chosen, **dict(o.lstrip("+~").split("=", 1) for o in self.overrides if "=" in o)}


class Logger:
    """The interface a logger fills in. `state` is its entry of loggers.json: what it has logged so far.

    A builder registered in LOGGERS is called as `builder(run, state, **options)`, its options being the
    keys of conf/logger/NAME.yaml; it starts (or, with a run id in `state`, continues) its tracker run.
    """

    def __init__(self, run: RunInfo, state: dict):
        self.run, self.state = run, state

    def log_epoch(self, row: dict, steps: list[tuple[int, float]]) -> None:
        """One epoch's metrics.csv row, and its logged training losses as (examples_seen, loss)."""

    def close(self, summary: dict) -> None:
        """The run has ended (summary.json's status): final tags, artifacts, the tracker run's end."""


@LOGGERS.register("tensorboard")
def _tensorboard(run: RunInfo, state: dict, subdir: str = "tensorboard") -> Logger:
    from .tensorboard_logger import TensorBoardLogger

    return TensorBoardLogger(run, state, subdir=subdir)


@LOGGERS.register("mlflow")
def _mlflow(
    run: RunInfo, state: dict, tracking_uri: str | None = None, experiment: str | None = None, log_model: bool = True
) -> Logger:
    from .mlflow_logger import MlflowLogger

    return MlflowLogger(run, state, tracking_uri=tracking_uri, experiment=experiment, log_model=log_model)


@LOGGERS.register("wandb")
def _wandb(
    run: RunInfo,
    state: dict,
    project: str | None = None,
    entity: str | None = None,
    mode: str | None = None,
    log_model: bool = True,
) -> Logger:
    from .wandb_logger import WandbLogger

    return WandbLogger(run, state, project=project, entity=entity, mode=mode, log_model=log_model)


def needs(package: str, logger: str, extra: str | None = None):
    """Import `package` for `logger=NAME`, or say in one line how to install it (ConfigError)."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise ConfigError(
            f"logger={logger} needs the {package} package ({e}); "
            f"install it with: pip install 'mnist-runner[{extra or logger}]'"
        ) from None


def selected(cfg) -> dict[str, dict]:
    """The `logger` config as {name: options}: `{}` for none; a dict keyed by logger name.

    Run folders written before several loggers could be chosen have `{name: tensorboard, subdir: ...}`.
    """
    if cfg is None:
        return {}
    tree = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    if "name" in tree and not isinstance(tree["name"], dict):  # the single-logger layout
        name = tree.pop("name")
        return {} if name == "none" else {name: tree}
    return {name: dict(options or {}) for name, options in tree.items() if name != "none"}


def _build(name: str, options: dict, run: RunInfo, state: dict) -> Logger:
    builder = LOGGERS.get(name)
    allowed = [p for p in inspect.signature(builder).parameters if p not in ("run", "state")]
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"logger.{name}.{key}={options[key]!r} is not an option of logger {name}; "
                f"its options: {', '.join(allowed) or '(none)'}"
            )
    return builder(run, state, **options)


class Loggers:
    """The run's loggers. A logger that raises is dropped after one warning line and recorded as missed.

    A missing tracker package or a bad option is a ConfigError (exit 2) when the loggers are built;
    anything else a logger raises (an unreachable server) costs only that logger.
    """

    def __init__(self, cfg, run: RunInfo):
        self.run = run
        self.folder = RunFolder(run.folder)
        self.states = self.folder.logged()
        self.active: dict[str, Logger] = {}
        self.missed: dict[str, str] = {}
        for name, options in selected(cfg).items():
            state = self.states.setdefault(name, {})
            state.pop("missed", None)
            try:
                self.active[name] = _build(name, options, run, state)
            except ConfigError:
                raise
            except Exception as e:
                self._miss(name, e)
        self._save()

    def log_epoch(self, row: dict, steps: list[tuple[int, float]]) -> None:
        for name, logger in list(self.active.items()):
            state = self.states[name]
            if row["epoch"] <= state.get("epochs_logged", 0):
                continue  # logged before this run was interrupted and resumed (or replayed)
            new_steps = [s for s in steps if s[0] > state.get("examples_logged", 0)]
            if self._call(name, logger.log_epoch, row, new_steps):
                state["epochs_logged"] = row["epoch"]
                if new_steps:
                    state["examples_logged"] = max(s[0] for s in new_steps)
        self._save()

    def close(self, summary: dict) -> None:
        """End every logger; `summary["loggers"]` records for each whether it logged the run or missed it."""
        for name, logger in list(self.active.items()):
            if self._call(name, logger.close, summary):
                self.states[name]["closed"] = summary.get("status")
        self._save()
        if self.states:
            summary["loggers"] = {
                name: self.record(name) for name in self.states if name in self.active or name in self.missed
            }

    def record(self, name: str) -> dict:
        state = self.states[name]
        public = {k: v for k, v in state.items() if k not in ("missed", "closed")}
        if name in self.missed:
            how = f"{REPLAY} {self.run.folder} logger={name}"
            return {"status": "missed", "error": self.missed[name], **public, "log_afterwards": how}
        return {"status": "logged", **public}

    def _call(self, name: str, method, *args) -> bool:
        try:
            method(*args)
            return True
        except Exception as e:
            self._miss(name, e)
            return False

    def _miss(self, name: str, error: Exception) -> None:
        self.active.pop(name, None)
        self.missed[name] = reason = one_line(error)
        self.states.setdefault(name, {})["missed"] = reason
        console.warn(
            f"Warning: logger {name} failed ({reason}); the run goes on without it. "
            f"Log it afterwards: {REPLAY} {self.run.folder} logger={name}"
        )

    def _save(self) -> None:
        if self.states:
            self.folder.write_logged(self.states)


def one_line(error: Exception, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or "no message"
    text = f"{type(error).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def start(cfg, folder: Path, choices: dict, overrides: list[str]) -> Loggers:
    """The loggers `cfg.logger` names, started for the run in `folder` (cfg: the run's composed config)."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation only Hydra's running app can resolve: the config as written
        config = OmegaConf.to_container(cfg, resolve=False)
    return Loggers(cfg.get("logger"), RunInfo(Path(folder), config, dict(choices), list(overrides)))


# --- multiruns: the sweep's own tracker run (MLflow's parent run, W&B's group) ------------------

_group: list[str | None] = [None]  # the W&B group sweep_started set, for sweep_ended to unset


def sweep_started(config, folder: Path) -> None:
    """At the start of a multirun (sweep.py's callback): a parent run, a group, for the jobs to join."""
    loggers = selected(config.get("logger"))
    if "wandb" in loggers and "WANDB_RUN_GROUP" not in os.environ:
        os.environ["WANDB_RUN_GROUP"] = _group[0] = "/".join(Path(folder).resolve().parts[-2:])
    if "mlflow" in loggers:
        from .mlflow_logger import start_parent

        job_name = str(OmegaConf.select(config, "hydra.job.name", default=None) or "mnist_runner")
        overrides = list(OmegaConf.select(config, "hydra.overrides.task", default=None) or [])
        try:
            start_parent(Path(folder), job_name, overrides, **loggers["mlflow"])
        except ConfigError as e:
            print(f"Error: {e}", file=sys.stderr)
        except Exception as e:
            print(
                f"Warning: logger mlflow: the sweep's parent run could not be started ({one_line(e)}); "
                "the jobs are logged without it",
                file=sys.stderr,
                flush=True,
            )


def sweep_ended(config, folder: Path, failed: int) -> None:
    """At the end of a multirun: the sweep summary files to the parent run, which ends."""
    if _group[0] is not None and os.environ.get("WANDB_RUN_GROUP") == _group.pop():
        del os.environ["WANDB_RUN_GROUP"]
    _group[:] = [None]
    loggers = selected(config.get("logger"))
    if "mlflow" in loggers:
        from .mlflow_logger import end_parent

        try:
            end_parent(Path(folder), failed)
        except Exception as e:
            print(
                f"Warning: logger mlflow: the sweep's parent run could not be ended ({one_line(e)}); "
                f"log the sweep afterwards: {REPLAY} {folder} logger=mlflow",
                file=sys.stderr,
                flush=True,
            )
