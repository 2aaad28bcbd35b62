"""Continuing a whole sweep (issue 19): after Ctrl-C or SIGKILL of the sweep's main process, on the basic
launcher and on joblib, `mnist-runner-resume SWEEP` keeps every finished job as it is (the same bytes, the
same mtime), continues the unfinished ones from their checkpoints, bit for bit as if never stopped, and
starts those that never started; and refuses, in one line, what it cannot continue."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli_in_process

from mnist_runner.continuing import alive, sweep_command
from mnist_runner.registry import ConfigError

pytestmark = pytest.mark.slow  # every test here runs sweeps in processes

SWEEP = ["trainer.epochs=4", "trainer.batch_size=10", "trainer.threads=1", "report.plots=false", "model=mlp_128"]
VALUES = "optimizer.lr=0.02,0.05,0.1"


def command(data_root, folder, *extra) -> tuple[list[str], dict]:
    env = {**os.environ, "MNIST_RUNNER_DATA": str(data_root), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "mnist_runner", "-m", *SWEEP, VALUES, f"hydra.sweep.dir={folder}", "device=cpu"]
    return [*args, "trainer.progress=false", *extra], env


def jobs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name[0].isdigit()), key=lambda p: p.name)


def summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def snapshot(job: Path) -> dict:
    """Every file of a job folder: its bytes and its mtime."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in job.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_root) -> Path:
    base = tmp_path_factory.mktemp("uninterrupted")
    args, env = command(data_root, base / "sweep")
    result = subprocess.run(args, cwd=base, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return base / "sweep"


def kill_during_job(args, env, cwd: Path, folder: Path, job: int, epoch: int) -> subprocess.Popen:
    """Start the sweep (in a process group of its own) and SIGKILL its main process once job `job` has
    checkpointed epoch `epoch`."""
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        for checkpoint in folder.glob(f"{job}_*/checkpoints/last.pt"):
            try:
                if torch.load(checkpoint, weights_only=True)["epoch"] >= epoch:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return proc
            except Exception:  # being written
                pass
        time.sleep(0.02)
    pytest.fail(f"job {job} did not reach epoch {epoch}: {proc.communicate()[1]}")


def wait_until_no_job_runs(folder: Path, timeout: float = 120) -> None:
    """The launcher's workers may finish the job they have after the main process died: let them end."""
    deadline = time.time() + timeout
    while any(alive(summary(j)) for j in jobs(folder) if (j / "summary.json").is_file()):
        assert time.time() < deadline, "a job kept running"
        time.sleep(0.2)


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_sweep_killed_mid_job_continues_as_if_never_stopped(launcher, uninterrupted, tmp_path, data_root):
    extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    folder = tmp_path / "sweep"
    args, env = command(data_root, folder, *extra)
    killed = kill_during_job(args, env, tmp_path, folder, job=1, epoch=2)
    wait_until_no_job_runs(folder)
    with contextlib.suppress(ProcessLookupError):  # joblib's idle workers outlive their killed parent
        os.killpg(killed.pid, signal.SIGKILL)
    before = {j.name: (summary(j)["status"], snapshot(j)) for j in jobs(folder) if (j / "summary.json").is_file()}
    finished_before = {name for name, (status, _) in before.items() if status == "completed"}
    if launcher == "basic":  # job 0 done, job 1 killed in its third epoch, job 2 never started
        assert [before[j.name][0] for j in jobs(folder)] == ["completed", "running"]

    result = subprocess.run(
        [sys.executable, "-c", "from mnist_runner.train import resume_main; resume_main()", str(folder)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    for job in jobs(folder):
        if job.name in finished_before:  # finished before: not launched, not a byte or an mtime changed
            assert snapshot(job) == before[job.name][1], job.name
        assert summary(job)["status"] == "completed"
    for job, reference in zip(jobs(folder), jobs(uninterrupted)):
        assert job.name == reference.name
        ours, theirs = (torch.load(j / "model.pt", weights_only=True) for j in (job, reference))
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), job.name  # bit for bit
    if launcher == "basic":  # the killed job went on from its checkpoint; the next one started afresh
        assert [r["from_epoch"] in (2, 3) for r in summary(jobs(folder)[1])["resumed"]] == [True]
        assert "resumed" not in summary(jobs(folder)[2])
    assert (folder / "sweep_summary.md").is_file() and "3 jobs" in (folder / "sweep_summary.md").read_text()


def test_ctrl_c_of_the_sweep_then_the_same_command_again(tmp_path, data_root, uninterrupted):
    folder = tmp_path / "sweep"
    args, env = command(data_root, folder)
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not list(folder.glob("0_*/checkpoints/last.pt")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert summary(jobs(folder)[0])["status"] == "interrupted" and len(jobs(folder)) == 1
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # the same
    assert again.returncode == 0, again.stderr
    assert [summary(j)["status"] for j in jobs(folder)] == ["completed"] * 3
    for job, reference in zip(jobs(folder), jobs(uninterrupted)):
        ours, theirs = (torch.load(j / "model.pt", weights_only=True) for j in (job, reference))
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), job.name


def test_a_finished_sweep_continued_launches_nothing(tmp_path, data_root):
    result = run_cli_in_process(tmp_path, data_root, "-m", *SWEEP[:2], "optimizer.lr=0.05,0.1", "hydra.sweep.dir=s")
    assert result.returncode == 0, result.stderr
    before = {j: snapshot(j) for j in jobs(tmp_path / "s")}
    argv = sweep_command(tmp_path / "s", ["trainer.threads=1"])
    assert argv[0] == "-m" and argv[-1] == f"hydra.sweep.dir={tmp_path / 's'}" and "trainer.threads=1" in argv
    assert argv[-2].startswith("hydra.job.config.override_dirname.exclude_keys=[") and "trainer.threads]" in argv[-2]
    again = run_cli_in_process(tmp_path, data_root, *argv)
    assert again.returncode == 0, again.stderr
    assert "Launching" not in again.stdout + again.stderr
    assert {j: snapshot(j) for j in jobs(tmp_path / "s")} == before


def test_what_cannot_be_continued_is_one_line(tmp_path, data_root):
    with pytest.raises(ConfigError, match=f"^{tmp_path} is not a sweep folder \\(no multirun.yaml in it\\)"):
        sweep_command(tmp_path, [])
    result = run_cli_in_process(tmp_path, data_root, "-m", *SWEEP[:2], "optimizer.lr=0.05,0.1", "hydra.sweep.dir=s")
    assert result.returncode == 0
    with pytest.raises(ConfigError, match="optimizer.lr=0.3 cannot be given when continuing the sweep"):
        sweep_command(tmp_path / "s", ["optimizer.lr=0.3"])
    with pytest.raises(ConfigError, match="trainer.epochs=9 cannot be given"):
        sweep_command(tmp_path / "s", ["trainer.epochs=9"])
    job = jobs(tmp_path / "s")[0]
    live = {**summary(job), "status": "running", "process": {"host": os.uname().nodename, "pid": os.getppid()}}
    (job / "summary.json").write_text(json.dumps(live))
    again = run_cli_in_process(tmp_path, data_root, *sweep_command(tmp_path / "s", []))
    assert again.returncode == 2 and f"the sweep's job {job} is still running (pid {os.getppid()}" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
