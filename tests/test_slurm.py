"""Sweeps on a cluster (issue 11): resume commands that work when pasted, lost jobs, time limits, requeue.

The tests marked `slurm` run a real SLURM sweep (hydra/launcher=slurm) and are skipped when `sinfo`
does not answer; `../shared/slurm/start-local-slurm.sh` starts a one-node SLURM (as root; .ci/run
does when it can). Their jobs are tiny: fixture data, 1 CPU each. The others need no SLURM.
"""

import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import compose_config, run_cli_in_process, run_folders
from hydra.core.override_parser.overrides_parser import OverridesParser

from mnist_runner import config, sweep, train
from mnist_runner.config import hydra_quoted, quote_resume_args, resume_command


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_slurm = pytest.mark.skipif(
    not slurm_answers(),
    reason="no SLURM here: `sinfo` does not answer (as root, ../shared/slurm/start-local-slurm.sh starts a "
    "one-node SLURM; .ci/run does when it can)",
)
slurm = [pytest.mark.slurm, pytest.mark.slow, needs_slurm]

# Momentum and a step schedule (as test_reliability.py), so optimizer and scheduler state must survive a requeue.
ARGS = [
    "trainer.batch_size=10",
    "trainer.log_interval=5",
    "optimizer.momentum=0.5",
    "scheduler=step",
    "scheduler.step_size=1",
    "scheduler.gamma=0.9",
    "report.plots=false",
]
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1"]


# --- resume commands that work when pasted (no SLURM needed) --------------------------------------

FOLDERS = [
    "multirun/2026-11-27/14-03-12/0_dataset.per_class=200,model=lenet_full",
    "/tmp/a b/it's here",
    "C:\\runs\\x",
    "ends with \\",
    "outputs/2026-11-27/14-03-12",
]


@pytest.mark.parametrize("folder", FOLDERS)
def test_resume_values_reach_hydra_unchanged(folder):
    (override,) = OverridesParser.create().parse_overrides([f"resume={hydra_quoted(folder)}"])
    assert override.value() == folder
    assert hydra_quoted("outputs/2026-11-27/14-03-12") == "outputs/2026-11-27/14-03-12"  # plain stays plain


@pytest.mark.parametrize("name", ["0_dataset.per_class=200,model=lenet_full", "a b 'quoted'", "plain"])
def test_the_printed_resume_command_survives_the_shell_and_hydra(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    argv = shlex.split(resume_command(folder))  # what a shell makes of the pasted line
    assert argv[:3] == ["python", "-m", "mnist_runner"]
    (override,) = OverridesParser.create().parse_overrides(quote_resume_args(argv)[3:])
    assert (override.key_or_group, override.value()) == ("resume", str(folder))


def test_only_folders_get_quoted(tmp_path):
    job = tmp_path / "0_a=1,b=2"
    job.mkdir()
    args = ["mnist-runner", f"resume={job}", "resume=x,y", "optimizer.lr=0.1,0.2", "resume='q=1'"]
    assert quote_resume_args(args) == ["mnist-runner", f"resume='{job}'", *args[2:]]  # a sweep over folders stays
    assert quote_resume_args(["resume=not/there=1"]) == ["resume='not/there=1'"]  # a clear "not a run folder"


@pytest.mark.slow
def test_a_sweep_job_folder_resumes_as_written(tmp_path, data_root, monkeypatch):
    """`mnist-runner resume=.../0_a=1,b=2` and `mnist-runner-resume FOLDER`: no quoting, no folder left behind."""
    job = tmp_path / "runs" / "0_optimizer.lr=0.05,trainer.epochs=1"
    run_dir = f"hydra.run.dir={hydra_quoted(str(job))}"
    first = run_cli_in_process(tmp_path, data_root, "trainer.epochs=1", "optimizer.lr=0.05", *ARGS, run_dir)
    assert first.returncode == 0, first.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli_in_process(elsewhere, data_root, f"resume={job}", "trainer.epochs=2")
    assert result.returncode == 0, result.stderr
    assert json.loads((job / "summary.json").read_text())["epochs_completed"] == 2
    assert list(elsewhere.iterdir()) == []  # no empty outputs/ (or date folder) left behind by the resumed run

    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MNIST_RUNNER_DATA", str(data_root))
    monkeypatch.setattr(sys, "argv", ["mnist-runner-resume", str(job), "trainer.epochs=3", "trainer.progress=false"])
    config._claimed.clear()  # a fresh run folder, as a new process would get
    train.resume_main()
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    assert [r["from_epoch"] for r in summary["resumed"]] == [1, 2]
    assert list(elsewhere.iterdir()) == []
