"""Sweeps on a cluster (issue 11): resume commands that work when pasted, lost jobs, time limits, requeue.

The tests marked `slurm` run a real SLURM sweep (hydra/launcher=slurm) and are skipped when `sinfo`
does not answer; `../shared/slurm/start-local-slurm.sh` starts a one-node SLURM (as root; .ci/run
does when it can). Their jobs are tiny: fixture data, 1 CPU each. The others need no SLURM.
"""

import csv
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import pytest
import torch
from conftest import compose_config, run_cli_in_process
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from mnist_runner import sweep
from mnist_runner.config import hydra_quoted, quote_resume_args, resume_command
from mnist_runner.train import resume_main


@functools.cache
def slurm_answers() -> bool:
    """Whether `sinfo` answers: asked once, when a SLURM test first runs (with SLURM installed but its
    controller down, sinfo takes about 9 s to give up: not at collection, which every run pays)."""
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def slurm_up():
    if not slurm_answers():
        pytest.skip(
            "no SLURM here: `sinfo` does not answer (as root, ../shared/slurm/start-local-slurm.sh starts a "
            "one-node SLURM; .ci/run does when it can)"
        )


needs_slurm = pytest.mark.usefixtures("slurm_up")

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
    resume_main()
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    assert [r["from_epoch"] for r in summary["resumed"]] == [1, 2]
    assert list(elsewhere.iterdir()) == []


# --- lost jobs, as the launcher records them (no SLURM needed) ------------------------------------


def job_config(sweep_dir: Path, num: int, *overrides: str):
    cfg = compose_config(f"hydra.sweep.dir={sweep_dir}", *overrides)
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = num
    return cfg


def test_lost_jobs_are_recorded_and_listed_with_the_command_that_continues_them(tmp_path):
    from mnist_runner import cluster

    # job 0 was cancelled while it waited in the queue: it gets a folder, its config and a summary.json
    never = job_config(tmp_path, 0, "optimizer.lr=0.05", "trainer.epochs=4")
    cluster.record_lost(never, "slurm", "12_0", "CANCELLED by 0")
    folder = cluster.job_folder(never)
    assert folder == tmp_path.resolve() / "0_optimizer.lr=0.05,trainer.epochs=4"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_completed"] == 0
    assert summary["error"] == "SLURM job 12_0 was cancelled (CANCELLED by 0), before it started"
    assert summary["cluster"] == {"executor": "slurm", "job_id": "12_0", "state": "CANCELLED by 0"}
    assert OmegaConf.load(folder / ".hydra" / "config.yaml").optimizer.lr == 0.05  # resume= can start it
    assert OmegaConf.load(folder / ".hydra" / "overrides.yaml") == ["optimizer.lr=0.05", "trainer.epochs=4"]

    # job 1 was killed for memory in its third epoch: its own summary.json says so now
    killed = job_config(tmp_path, 1, "optimizer.lr=0.1", "trainer.epochs=4")
    ran = cluster.job_folder(killed)
    (ran / ".hydra").mkdir(parents=True)
    shutil.copy(folder / ".hydra" / "config.yaml", ran / ".hydra" / "config.yaml")
    (ran / "summary.json").write_text(json.dumps({"status": "running", "epochs_completed": 2}))
    cluster.record_lost(killed, "slurm", "12_1", "OUT_OF_MEMORY")
    summary = json.loads((ran / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_completed"] == 2
    assert summary["error"].startswith("SLURM job 12_1 was killed for using more memory than it asked for")

    # a job killed after it finished keeps its result
    done = job_config(tmp_path, 2, "optimizer.lr=0.2", "trainer.epochs=4")
    cluster.job_folder(done).mkdir()
    (cluster.job_folder(done) / "summary.json").write_text(json.dumps({"status": "completed", "epochs_completed": 4}))
    cluster.record_lost(done, "slurm", "12_2", "NODE_FAIL")
    assert json.loads((cluster.job_folder(done) / "summary.json").read_text())["status"] == "completed"

    failed = sweep.write_summary(tmp_path)
    assert [r.path.name[0] for r in failed] == ["0", "1"]
    md = (tmp_path / "sweep_summary.md").read_text()
    assert "## Failed jobs (2)" in md
    assert "(interrupted after 0 of 4 epochs): SLURM job 12_0 was cancelled" in md
    assert f"; continue with: `{resume_command(folder)}`" in md
    line = sweep.failure(failed[1])  # the console's line: the command last, nothing around it
    assert line.startswith("1_optimizer.lr=0.1,trainer.epochs=4 (failed after 2 of 4 epochs): SLURM job 12_1")
    assert line.endswith(f"; continue with: {resume_command(ran)}")
    with open(tmp_path / "sweep_summary.csv", newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["interrupted", "failed", "completed"]


def test_a_job_sacct_calls_ended_is_waited_for_while_squeue_lists_it(tmp_path, monkeypatch):
    """Requeued: for a while sacct can show how the earlier attempt ended (FAILED) while squeue lists the job."""
    from types import SimpleNamespace

    from submitit.slurm.slurm import SlurmInfoWatcher

    from mnist_runner import cluster

    class Job:  # a submitit SlurmJob whose sacct answers, one a second, are `looks`
        job_id, watcher = "12_0", SlurmInfoWatcher()
        paths = SimpleNamespace(result_pickle=tmp_path / "12_0_0_result.pkl")
        looks = iter(["FAILED", "FAILED", "PENDING", "RUNNING", "COMPLETED"])

        def done(self):
            if self.job_id not in self.watcher._finished:  # submitit asks sacct only for jobs not ended
                self.watcher._info_dict[self.job_id] = {"State": next(self.looks)}
                if self.watcher.is_done(self.job_id, mode="cache"):
                    self.watcher._finished.add(self.job_id)
            if self.state == "COMPLETED":
                self.paths.result_pickle.touch()
            return self.watcher.is_done(self.job_id, mode="cache")

        @property
        def state(self):
            return self.watcher.get_state(self.job_id, mode="cache")

    squeue = []
    monkeypatch.setattr(cluster, "_queued", lambda job_id: squeue.append(job_id) or True)
    monkeypatch.setattr(cluster.time, "sleep", lambda seconds: None)
    launcher = SimpleNamespace(_EXECUTOR="slurm")
    launcher._requeued = lambda job: cluster.ClusterLauncher._requeued(launcher, job)
    assert cluster.ClusterLauncher._wait(launcher, Job()) == "COMPLETED"
    assert squeue == ["12_0", "12_0"]  # squeue asked only when sacct said the job ended without a result


def test_per_class_names_the_class_that_limits_it():
    from mnist_runner.data import RawSplit, first_per_class
    from mnist_runner.registry import ConfigError

    labels = torch.tensor([0] * 9 + [1] * 5 + [2] * 7)
    split = RawSplit(torch.zeros(len(labels), 28, 28, dtype=torch.uint8), labels)
    with pytest.raises(ConfigError) as e:
        first_per_class(split, 8, ["zero", "one", "two"], "test")
    assert str(e.value) == (
        "dataset.per_class=8 is larger than the test split has of class 'one' (5, the fewest of any class); "
        "choose at most 5"
    )


# --- sweeps through submitit: in local processes (hydra/launcher=local), and on a real SLURM ---------


def start_sweep(cwd: Path, data_root: Path, *overrides: str, launcher: str = "slurm") -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mnist_runner",
        "-m",
        f"hydra/launcher={launcher}",
        "hydra.launcher.cpus_per_task=1",
    ]
    command += ["device=cpu", "trainer.progress=false", *ARGS]
    env = {**os.environ, "MNIST_RUNNER_DATA": str(data_root)}
    return subprocess.Popen([*command, *overrides], cwd=cwd, env=env, stdout=PIPE, stderr=PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the sweep did not end in {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(what, description: str, proc: subprocess.Popen, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = what()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before {description}:\n{finish(proc).stderr[-3000:]}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no {description} after {timeout} s:\n{proc.communicate()[1][-3000:]}")


def sweep_of(cwd: Path, proc) -> Path:
    return wait_for(lambda: next(iter((cwd / "multirun").glob("*/*/.submitit")), None), "sweep folder", proc).parent


def job_id(sweep: Path, num: int, proc) -> str:
    """SLURM's id of the sweep's job `num` (an array task, `123_4`), from submitit's folder."""
    return wait_for(lambda: next((p.name for p in (sweep / ".submitit").glob(f"*_{num}")), None), "job id", proc)


def job_folder(sweep: Path, num: int) -> Path | None:
    return next(iter(sweep.glob(f"{num}_*")), None)


def epochs_done(folder: Path | None) -> int:
    try:
        return json.loads((folder / "summary.json").read_text())["epochs_completed"]
    except (TypeError, OSError, ValueError, KeyError):
        return 0


def first_epoch_of_job_0(sweep: Path, proc) -> None:
    """Wait until the sweep's job 0 has completed an epoch (it is training, with a checkpoint)."""
    wait_for(lambda: epochs_done(job_folder(sweep, 0)) >= 1, "first epoch of job 0", proc)


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def rows_without_seconds(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader(f)]


def continue_command(stderr: str, folder: Path) -> list[str]:
    """The command the sweep printed to continue the job in `folder`, as the shell splits it."""
    (line,) = [line for line in stderr.splitlines() if line.startswith(f"Job {folder.name} ")]
    argv = shlex.split(line.split("; continue with: ")[1])
    assert argv[:3] == ["python", "-m", "mnist_runner"]
    return [sys.executable, *argv[1:]]


def run_command(argv: list[str], cwd: Path, data_root: Path, *more: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MNIST_RUNNER_DATA": str(data_root)}
    return subprocess.run([*argv, *more], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def release_requeued(job: str, proc) -> None:
    """SLURM holds a requeued job about two minutes before it may start again: let it start now, but not within
    the second its earlier attempt was killed. slurmd compares a new start's credential with the one it revoked
    at the kill to the second, and fails a start that is no newer ("Job credential revoked", FAILED)."""
    state = lambda: subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True).stdout
    wait_for(lambda: "BeginTime" in state(), "requeued job waiting for its begin time", proc)
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)


def slurm_task(job: str) -> int:
    """The process id of the Python of SLURM array task `job` (`123_4`) on this machine."""
    array, task = job.split("_")
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = dict(v.split("=", 1) for v in environ.read_text().split("\0") if "=" in v)
            command = (environ.parent / "cmdline").read_text()  # the Python, not the srun that started it
        except OSError:
            continue
        if command.startswith(f"{sys.executable}\0") and (
            env.get("SLURM_ARRAY_JOB_ID"),
            env.get("SLURM_ARRAY_TASK_ID"),
        ) == (
            array,
            task,
        ):
            return int(environ.parent.name)
    raise AssertionError(f"no process of SLURM job {job} here")


def local_task(sweep: Path, num: int, proc) -> int:
    """The process id of job `num` of a hydra/launcher=local sweep (the child of its submitit controller)."""
    from submitit.core.utils import DelayedSubmission

    def find():
        for pickle in sweep.glob(".submitit/*/*_submitted.pkl"):
            controller = pickle.parent.name
            if DelayedSubmission.load(pickle).args[2] == num:
                children = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
                return int(children[0]) if children else None
        return None

    return wait_for(find, f"process of job {num}", proc)


def slurm_record(sweep: Path) -> str:
    """What SLURM knows of the sweep's jobs (every attempt) and the ends of their logs, for a failure message."""
    jobs = sorted({p.name.split("_")[0] for p in (sweep / ".submitit").glob("*_*")})
    attempts = subprocess.run(
        ["sacct", "--duplicates", "-o", "JobID,State,ExitCode,Start,End", *(f"-j{j}" for j in jobs)],
        capture_output=True,
        text=True,
    ).stdout
    logs = [f"{log}:\n{log.read_text()[-1500:]}" for log in sorted((sweep / ".submitit").glob("*/*_log.err"))]
    return "\n".join([attempts, *logs])


def assert_requeued_job_ends_as_if_never_stopped(sweep: Path, result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:] + "\n" + slurm_record(sweep)
    requeued, never_stopped = job_folder(sweep, 0), job_folder(sweep, 1)
    first, second = summary(requeued), summary(never_stopped)
    assert first["status"] == second["status"] == "completed"
    assert first["epochs_completed"] == second["epochs_completed"] == 12
    (resumed,) = first["resumed"]  # it continued in its own folder from its last completed epoch
    assert 1 <= resumed["from_epoch"] < 12 and "resumed" not in second
    assert rows_without_seconds(requeued) == rows_without_seconds(never_stopped)
    got, want = (torch.load(f / "model.pt", weights_only=True) for f in (requeued, never_stopped))
    assert all(torch.equal(got[k], want[k]) for k in want)
    with open(sweep / "sweep_summary.csv", newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["completed", "completed"]


@pytest.mark.slow
def test_a_local_job_requeued_after_sigusr2_ends_as_if_never_stopped(tmp_path, data_root):
    """hydra/launcher=local (no SLURM needed): submitit's requeue runs the job again in this machine."""
    proc = start_sweep(tmp_path, data_root, "trainer.epochs=12", "seed=3,3", launcher="local")
    sweep = sweep_of(tmp_path, proc)
    task = local_task(sweep, 0, proc)
    first_epoch_of_job_0(sweep, proc)
    os.kill(task, signal.SIGUSR2)
    assert_requeued_job_ends_as_if_never_stopped(sweep, finish(proc))


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
@pytest.mark.parametrize(
    "stop",
    [
        # SIGUSR2, SLURM's warning before it preempts a job: the run stops, submitit requeues the job
        pytest.param(["scancel", "--signal=USR2"], id="preempted"),
        # what SLURM does to a job whose node failed: SIGTERM, then a new start with SLURM_RESTART_COUNT set
        pytest.param(["scontrol", "requeue"], id="requeued_by_slurm"),
    ],
)
def test_a_job_stopped_and_requeued_ends_as_if_never_stopped(tmp_path, data_root, stop):
    # Two identical jobs: job 0 is stopped after its first epoch, requeued, and continues in its own folder.
    proc = start_sweep(tmp_path, data_root, "trainer.epochs=12", "seed=3,3")
    sweep = sweep_of(tmp_path, proc)
    job = job_id(sweep, 0, proc)
    first_epoch_of_job_0(sweep, proc)
    subprocess.run([*stop, job], check=True)
    release_requeued(job, proc)
    assert_requeued_job_ends_as_if_never_stopped(sweep, finish(proc))


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_cancelled_jobs_are_listed_the_summary_written_and_they_resume(tmp_path, data_root):
    # job 0 is cancelled while it trains, job 2 while it waits in the queue; job 1 completes.
    proc = start_sweep(tmp_path, data_root, "trainer.epochs=1000,2,2", "hydra.launcher.array_parallelism=2")
    sweep = sweep_of(tmp_path, proc)
    subprocess.run(["scancel", job_id(sweep, 2, proc)], check=True)
    job = job_id(sweep, 0, proc)
    first_epoch_of_job_0(sweep, proc)
    subprocess.run(["scancel", job], check=True)
    result = finish(proc)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    running, done, waiting = (job_folder(sweep, n) for n in range(3))
    assert summary(done)["status"] == "completed"
    cancelled = summary(running)
    assert cancelled["status"] == "interrupted" and cancelled["epochs_completed"] >= 1
    assert re.fullmatch(rf"SLURM job {job} was cancelled \(CANCELLED by \d+\)", cancelled["error"])
    assert cancelled["cluster"]["state"].startswith("CANCELLED")
    queued = summary(waiting)
    assert queued["status"] == "interrupted" and queued["epochs_completed"] == 0
    assert queued["error"].endswith(", before it started")  # SLURM keeps no record of a waiting task cancelled
    with open(sweep / "sweep_summary.csv", newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["interrupted", "completed", "interrupted"]
    assert "## Failed jobs (2)" in (sweep / "sweep_summary.md").read_text()
    lines = [line for line in result.stderr.splitlines() if line.startswith("Job ")]
    assert len(lines) == 2 and "2 job(s) failed" in result.stderr  # one line per lost job
    assert lines[0].startswith(f"Job {running.name} (interrupted after {cancelled['epochs_completed']} of 1000")

    # The job that never started starts (and finishes) with the command the sweep printed.
    resumed = run_command(continue_command(result.stderr, waiting), tmp_path, data_root, "trainer.progress=false")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert summary(waiting)["status"] == "completed" and len(rows_without_seconds(waiting)) == 2


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_a_job_killed_outright_is_listed_failed_with_the_end_of_its_log(tmp_path, data_root):
    # SIGKILL to the job's Python (as the kernel's OOM killer would): no handler runs, SLURM says FAILED.
    proc = start_sweep(tmp_path, data_root, "trainer.epochs=1000,2", "hydra.launcher.array_parallelism=2")
    sweep = sweep_of(tmp_path, proc)
    job = job_id(sweep, 0, proc)
    first_epoch_of_job_0(sweep, proc)
    os.kill(slurm_task(job), signal.SIGKILL)
    result = finish(proc)
    assert result.returncode == 1, result.stderr[-3000:]
    killed = summary(job_folder(sweep, 0))
    assert killed["status"] == "failed" and killed["epochs_completed"] >= 1, killed
    log = sweep.resolve() / ".submitit" / job / f"{job}_0_log.err"
    says = rf"SLURM job {job} ended without a result \(FAILED: its log {re.escape(str(log))} says: srun: error: "
    assert re.fullmatch(says + r"\S+: task 0: Killed\)", killed["error"]), killed["error"]  # \S+: the node
    assert summary(job_folder(sweep, 1))["status"] == "completed"
    assert f"Job {job_folder(sweep, 0).name} (failed after " in result.stderr


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_a_job_at_its_time_limit_is_interrupted_and_continues_with_the_printed_command(tmp_path, data_root):
    # SLURM checks time limits every 30 s and then sends the warning when at most signal_delay_s + 30 s are
    # left: SIGUSR2 comes 20 to 50 s into the job, after its start-up, before the limit's SIGTERM.
    limit = ["hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=10"]
    proc = start_sweep(tmp_path, data_root, "trainer.epochs=100000", *limit)
    result = finish(proc, timeout=240)
    assert result.returncode == 1, result.stderr[-3000:]
    sweep = sweep_of(tmp_path, proc)
    folder = job_folder(sweep, 0)
    stopped = summary(folder)
    assert stopped["status"] == "interrupted" and stopped["epochs_completed"] >= 1, stopped
    # SIGUSR2 shortly before the limit (submitit's --signal): the job stops itself; else SLURM stops it
    assert stopped["error"].endswith(("not requeued: timed-out too many times", "reached its time limit (TIMEOUT)"))
    done = stopped["epochs_completed"]

    resumed = run_command(continue_command(result.stderr, folder), tmp_path, data_root, f"trainer.epochs={done + 1}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert summary(folder)["status"] == "completed" and len(rows_without_seconds(folder)) == done + 1


# --- continuing a whole sweep, and a search of SLURM jobs (issue 19) ---------------------------------


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_a_sweep_whose_job_array_was_cancelled_continues_as_a_whole(tmp_path, data_root):
    proc = start_sweep(tmp_path, data_root, "trainer.epochs=2,60,2", "hydra.launcher.array_parallelism=1")
    sweep = sweep_of(tmp_path, proc)
    array = job_id(sweep, 0, proc).split("_")[0]
    wait_for(lambda: epochs_done(job_folder(sweep, 1)) >= 1, "first epoch of job 1", proc)
    subprocess.run(["scancel", array], check=True)  # the whole array: job 1 while it trains, job 2 queued
    result = finish(proc)
    assert result.returncode == 1 and "2 job(s) failed" in result.stderr, result.stderr[-3000:]
    done = job_folder(sweep, 0)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in done.rglob("*") if p.is_file()}
    epochs_before = summary(job_folder(sweep, 1))["epochs_completed"]
    resumed = subprocess.run(
        [sys.executable, "-c", "from mnist_runner.train import resume_main; resume_main()", str(sweep)],
        cwd=tmp_path,
        env={**os.environ, "MNIST_RUNNER_DATA": str(data_root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Submitit 'slurm'" in resumed.stdout + resumed.stderr  # with the launcher the sweep used
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before  # job 0 untouched
    continued = summary(job_folder(sweep, 1))
    assert continued["status"] == "completed" and continued["resumed"][0]["from_epoch"] == epochs_before
    assert summary(job_folder(sweep, 2))["status"] == "completed"


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_a_search_of_slurm_jobs_prunes_through_a_shared_postgresql_study(tmp_path, data_root):
    url = os.environ.get("MNIST_RUNNER_POSTGRES")
    if not url:
        pytest.skip("no PostgreSQL server: set MNIST_RUNNER_POSTGRES=postgresql://... (.ci/run starts one)")
    study = f"slurm_{os.getpid()}"
    proc = start_sweep(
        tmp_path,
        data_root,
        "hydra/sweeper=optuna",
        f"hydra.sweeper.storage={url}",
        f"hydra.sweeper.study_name={study}",
        "hydra.sweeper.pruner=median",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.seed=0",
        "hydra.sweeper.n_trials=8",
        "optimizer.lr=choice(0.00001,0.3)",
        "trainer.epochs=4",
        "model=mlp_128",
    )
    result = finish(proc, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    import optuna

    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    sweep = next((tmp_path / "multirun").glob("*/*"))
    statuses = {int(p.name.split("_")[0]): summary(p)["status"] for p in sweep.iterdir() if p.name[0].isdigit()}
    assert len(trials) == 8 and sorted(statuses) == list(range(8))
    assert {t.number: t.state.name for t in trials} == {
        n: {"completed": "COMPLETE", "pruned": "PRUNED"}[s] for n, s in statuses.items()
    }
    assert "pruned" in statuses.values()
    assert all(
        "cluster" not in summary(p) for p in sweep.iterdir() if p.name[0].isdigit()
    )  # real SLURM jobs, none lost
