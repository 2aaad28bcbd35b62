"""Continuing a sweep: the jobs that are done stay as they are, the others go on (docs/sweeps.md).

A sweep is continued by running it again into its own folder: `mnist-runner-resume SWEEP` rebuilds
its command from the folder's multirun.yaml (with the launcher it used, unless the command names
another), and so does the same command with the same `hydra.sweep.dir`. Then, job by job:

- a job whose folder holds a finished run (completed, diverged, pruned) is not launched at all, so
  nothing of it is rewritten (`Unfinished`, around the sweep's launcher);
- a job whose folder holds a run that did not finish (interrupted, killed, failed, lost by the
  cluster) continues from its last checkpoint in its own folder, as `resume=` would (train.py);
- a job with no folder yet starts.

A job whose process is still alive on this machine (its summary.json names it) stops the
continuation with one line: two processes must not train into one folder.
"""

import os
import socket
from pathlib import Path

from .registry import ConfigError
from .run_folder import FINISHED, SWEEP_CONFIG, DamagedRun, RunFolder, is_sweep


def this_process() -> dict:
    """summary.json's `process`: where the run trains, to tell a dead run from a live one."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def alive(summary: dict) -> bool:
    """Whether the process that wrote `summary` (status running) still runs, as far as this machine can tell."""
    process = summary.get("process") or {}
    if summary.get("status") != "running" or process.get("host") != socket.gethostname() or not process.get("pid"):
        return False
    try:
        os.kill(int(process["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return int(process["pid"]) != os.getpid()


def finished(folder: Path) -> float | None:
    """The value a job folder's finished run returned to the sweeper (its best test accuracy, NaN without),
    or None when the folder holds no finished run. A live run is refused (ConfigError)."""
    run = RunFolder(folder)
    if not run.is_run:
        return None
    try:
        summary = run.summary()
    except DamagedRun as e:
        raise ConfigError(f"the sweep's job {run.path} cannot be continued: {e}") from None
    if alive(summary):
        pid = summary["process"]["pid"]
        raise ConfigError(
            f"the sweep's job {run.path} is still running (pid {pid} on this machine); wait for it, or stop it, "
            "before continuing the sweep"
        )
    if summary.get("status") not in FINISHED:
        return None
    return float(summary.get("best_test_acc", float("nan")))


class Unfinished:
    """A sweep's launcher that launches only the jobs not finished yet, each under its own job number, and
    answers for the finished ones with the value they returned. Everything else is the launcher's."""

    def __init__(self, launcher, config, config_loader):
        self.launcher, self.config, self.config_loader = launcher, config, config_loader

    def __getattr__(self, name):
        return getattr(self.launcher, name)

    def launch(self, job_overrides, initial_job_idx: int):
        from hydra.core.utils import JobReturn, JobStatus

        sweep = Path(str(self.config.hydra.sweep.dir))
        if not any(sweep.glob("*/summary.json")):  # a new sweep: every job runs
            return self.launcher.launch(job_overrides, initial_job_idx)
        done = [
            finished(job_folder(self.config, self.config_loader, list(o), initial_job_idx + i))
            for i, o in enumerate(job_overrides)
        ]
        returns, start = [], 0
        for i in range(len(job_overrides) + 1):  # launch each stretch of unfinished jobs in one call
            if i == len(job_overrides) or done[i] is not None:
                if start < i:
                    returns += self.launcher.launch(job_overrides[start:i], initial_job_idx + start)
                if i < len(job_overrides):
                    returns.append(JobReturn(list(job_overrides[i]), status=JobStatus.COMPLETED, _return_value=done[i]))
                start = i + 1
        return returns


def job_folder(config, config_loader, overrides: list[str], num: int) -> Path:
    """The folder of the sweep's job `num` with `overrides`, as the launcher will name it."""
    from omegaconf import open_dict

    cfg = config_loader.load_sweep_config(config, overrides)
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = cfg.hydra.job.id = num
    return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)


# Keys a continued sweep may change: what does not change what its jobs compute (checkpoint.RESUMABLE's),
# and how they are run (the launcher and its settings, the search's number of trials).
CONTINUABLE = ("hydra/launcher", "hydra.launcher.", "hydra.sweeper.n_trials")


def sweep_command(folder, overrides: list[str]) -> list[str]:
    """The command line (for train.main) that continues the sweep in `folder`, with `overrides` on top of its
    own; ConfigError, in one line, for a folder that is no sweep and for an override that changes its jobs."""
    from omegaconf import OmegaConf

    from .checkpoint import RESUMABLE

    folder = Path(folder)
    if not is_sweep(folder):
        raise ConfigError(
            f"{folder} is not a sweep folder (no {SWEEP_CONFIG} in it); give a folder a multirun (-m) made, "
            "e.g. multirun/YYYY-MM-DD/HH-MM-SS, or a run folder to resume one run"
        )
    allowed = [k for k in RESUMABLE[1:] if k != "trainer.epochs"]  # more epochs: not for the finished jobs
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if not (key.startswith(CONTINUABLE) or key in allowed or key.startswith("device")):
            raise ConfigError(
                f"{override} cannot be given when continuing the sweep in {folder}: it would change what its jobs "
                f"compute; only the launcher (hydra/launcher, hydra.launcher.*), hydra.sweeper.n_trials and "
                f"{', '.join(allowed)} may change"
            )
    hydra = OmegaConf.load(folder / SWEEP_CONFIG).hydra
    stored = {o.split("=", 1)[0].lstrip("+~"): o for o in hydra.overrides.task}
    excluded = list(hydra.job.config.override_dirname.exclude_keys)  # what the jobs' folder names leave out
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra"):
            continue
        if key in stored and stored[key] != override and key not in excluded:
            raise ConfigError(
                f"{override} cannot be given when continuing the sweep in {folder}: its jobs' folders are named by "
                f"{stored[key]}; continue it with that"
            )
        excluded.append(key)  # a new setting must not rename the jobs' folders
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    own = [o for o in hydra.overrides.hydra if not o.startswith(("hydra.sweep.dir=", "hydra.mode="))]
    own += [o for key, o in stored.items() if key not in given]
    names = f"hydra.job.config.override_dirname.exclude_keys=[{','.join(dict.fromkeys(excluded))}]"
    return ["-m", *own, *overrides, names, f"hydra.sweep.dir={folder}"]
