"""Nothing lost (issue 5): determinism, resume after Ctrl-C and SIGKILL bit for bit, SIGTERM,
divergence, damaged data files, and valid files after a kill at any moment.

Runs that must be killed are real subprocesses on the fixture data; the others run in-process.
"""

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_folders
from omegaconf import OmegaConf

# 3 epochs of 30 steps; momentum and a step schedule, so optimizer and scheduler state matter.
ARGS = [
    "trainer.epochs=3",
    "trainer.batch_size=10",
    "trainer.log_interval=5",
    "seed=3",
    "optimizer.momentum=0.5",
    "scheduler=step",
    "scheduler.step_size=1",
    "scheduler.gamma=0.7",
]


def start(cwd: Path, data_root: Path, *args: str, plots: bool = False) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mnist_runner",
        "device=cpu",
        "trainer.progress=false",
        f"report.plots={str(plots).lower()}",
        *args,
    ]
    env = {**os.environ, "MNIST_RUNNER_DATA": str(data_root)}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def rows_without_seconds(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader(f)]


def stop_after_checkpoint(proc: subprocess.Popen, base: Path, epoch: int, sig: int) -> Path:
    """Send `sig` part-way through the epoch after checkpoint `epoch` appears; returns the run folder."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        for ckpt in base.glob("outputs/*/*/checkpoints/last.pt"):
            run = ckpt.parent.parent
            rows = list(csv.DictReader(open(run / "metrics.csv")))
            if len(rows) >= epoch and torch.load(ckpt, weights_only=True)["epoch"] == epoch:
                time.sleep(0.3 * float(rows[-1]["epoch_seconds"]))  # about a third into the next epoch
                proc.send_signal(sig)
                return run
        time.sleep(0.02)
    pytest.fail(f"no checkpoint of epoch {epoch} appeared: {finish(proc).stderr}")


def summary_of(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root):
    """Two uninterrupted runs of ARGS, started together: (run folders, seconds both took)."""
    base = tmp_path_factory.mktemp("reference")
    t0 = time.time()
    procs = [start(base / name, data_root, *ARGS) for name in ("a", "b")]
    results = [finish(p) for p in procs]
    assert [r.returncode for r in results] == [0, 0], results[0].stderr + results[1].stderr
    return [run_folders(base / name / "outputs")[0] for name in ("a", "b")], time.time() - t0


@pytest.mark.slow
def test_same_config_and_seed_give_identical_metrics(reference):
    (a, b), _ = reference
    assert len(rows_without_seconds(a)) == 3
    assert rows_without_seconds(a) == rows_without_seconds(b)
    assert [r["lr"] for r in rows_without_seconds(a)] == ["0.1", "0.07", "0.049"]
    wa, wb = torch.load(a / "model.pt", weights_only=True), torch.load(b / "model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_interrupted_then_killed_run_resumes_bit_for_bit(reference, tmp_path, data_root):
    (expected, _), _ = reference
    # Ctrl-C in epoch 2: status interrupted, exit 130, the console says how to resume.
    proc = start(tmp_path, data_root, *ARGS)
    run = stop_after_checkpoint(proc, tmp_path, 1, signal.SIGINT)
    result = finish(proc)
    assert result.returncode == 130, result.stderr
    assert f"python -m mnist_runner resume={run}" in result.stderr and "Traceback" not in result.stderr
    summary = summary_of(run)
    assert summary["status"] == "interrupted" and summary["epochs_completed"] == 1
    assert len(rows_without_seconds(run)) == 1
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1

    # Resumed, then SIGKILLed in the middle of epoch 3: nothing can be written at the kill.
    proc = start(tmp_path, data_root, f"resume={run}")
    assert stop_after_checkpoint(proc, tmp_path, 2, signal.SIGKILL) == run
    assert finish(proc).returncode == -signal.SIGKILL
    assert len(rows_without_seconds(run)) == 2

    # Resumed again: the same metrics as the run that was never stopped, bit for bit.
    result = finish(start(tmp_path, data_root, f"resume={run}"))
    assert result.returncode == 0, result.stderr
    assert rows_without_seconds(run) == rows_without_seconds(expected)
    summary = summary_of(run)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    assert [r["from_epoch"] for r in summary["resumed"]] == [1, 2]
    assert summary["final"] == summary_of(expected)["final"]
    got, want = torch.load(run / "model.pt", weights_only=True), torch.load(expected / "model.pt", weights_only=True)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert run_folders(tmp_path / "outputs") == [run]  # resuming made no new run folder


@pytest.mark.slow
def test_sigterm_stops_with_143_and_keeps_the_checkpoint(tmp_path, data_root):
    proc = start(tmp_path, data_root, *ARGS)
    run = stop_after_checkpoint(proc, tmp_path, 1, signal.SIGTERM)
    result = finish(proc)
    assert result.returncode == 143, result.stderr
    assert "SIGTERM" in result.stderr and f"resume={run}" in result.stderr
    assert summary_of(run)["status"] == "interrupted"
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1


@pytest.mark.slow
def test_checkpoint_holds_everything_and_loads_safely(reference):
    (run, _), _ = reference
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 3 and state["step"] == 90
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "rows"}
    assert set(state["rng"]) == {"torch", "shuffle", "augment", "cuda", "numpy", "python"}
    assert [r["epoch"] for r in state["rows"]] == [1, 2, 3]
    assert state["scheduler"]["last_epoch"] == 3 and state["optimizer"]["state"]  # momentum buffers


def test_restore_puts_every_generator_back(tmp_path):
    import numpy as np

    from mnist_runner.checkpoint import load_checkpoint, restore, save_checkpoint

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3), np.random.standard_normal()  # a cached gaussian
    save_checkpoint(
        tmp_path,
        epoch=4,
        step=40,
        rows=[{"epoch": 1, "test_acc": 0.5}],
        model=model,
        optimizer=optimizer,
        generator=generator,
    )

    def draws():
        return (
            random.random(),
            random.gauss(0, 1),
            np.random.standard_normal(),
            np.random.rand(),
            torch.rand(2).tolist(),
            torch.randperm(9, generator=generator).tolist(),
        )

    expected = draws()
    state = load_checkpoint(tmp_path, epochs=4)  # weights_only=True inside
    restore(state, model=model, optimizer=optimizer, generator=generator)
    assert draws() == expected
    assert state["epoch"] == 4 and state["step"] == 40 and state["rows"] == [{"epoch": 1, "test_acc": 0.5}]


def test_rows_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    from mnist_runner.checkpoint import truncate_csv

    path = tmp_path / "metrics.csv"
    path.write_text("epoch,loss\n1,0.5\n2,0.4\n3,0.3\n")  # row 3 landed, its checkpoint did not
    truncate_csv(path, "epoch", 2)
    assert path.read_text() == "epoch,loss\n1,0.5\n2,0.4\n"
    truncate_csv(path, "epoch", 2)  # nothing to drop: the file is left alone
    assert path.read_text() == "epoch,loss\n1,0.5\n2,0.4\n"


def test_huge_learning_rate_stops_at_the_first_nan(cli, tmp_path):
    result = cli("optimizer.lr=1e10", "model=mlp_128", "trainer.epochs=3", "trainer.batch_size=10")
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Diverged: training loss became") and "Traceback" not in lines[0]
    (run,) = run_folders(tmp_path / "outputs")
    summary = summary_of(run)
    assert summary["status"] == "diverged" and summary["diverged"]["epoch"] == 1
    assert 1 <= summary["diverged"]["step"] <= 30 and summary["epochs_completed"] == 0
    assert f"step {summary['diverged']['step']}" in lines[0]


@pytest.mark.slow
def test_a_diverged_job_does_not_stop_the_sweep(cli, tmp_path):
    result = cli("-m", "optimizer.lr=1e10,0.1", "model=mlp_128", "trainer.epochs=1", "report.plots=false")
    assert "Diverged: training loss became" in result.stderr
    statuses = [summary_of(run)["status"] for run in run_folders(tmp_path / "multirun")]
    assert statuses == ["diverged", "completed"]


def damage(raw: Path, how: str) -> Path:
    path = raw / "train-images-idx3-ubyte"
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "padded":
        path.write_bytes(data + b"\0" * 28)
    elif how == "wrong magic":
        path.write_bytes(b"\x12\x34\x08\x03" + data[4:])
    elif how == "not IDX":
        path.write_text("<html><body>404 Not Found</body></html>\n")
    elif how == "missing":
        path.unlink()
    return path


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "padded", "wrong magic", "not IDX", "missing"])
def test_damaged_data_file_is_named_and_recorded(cli, tmp_path, data_root, how):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    path = damage(root / "MNIST" / "raw", how)
    result = cli(f"dataset.root={root}", "dataset.download=false")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and len(result.stderr.strip().splitlines()) == 1
    summary = summary_of(run_folders(tmp_path / "outputs")[0])
    assert summary["status"] == "failed" and str(path) in summary["error"]


def check_file(path: Path) -> None:
    """Raise unless `path` is a whole, readable file of its kind."""
    if path.suffix == ".json":
        json.loads(path.read_text(), parse_constant=lambda c: 1 / 0)
    elif path.suffix == ".csv":
        lines = path.read_text().split("\n")
        assert lines[-1] == "", "the last line is cut"
        rows = list(csv.reader(lines[:-1]))
        assert rows and all(len(r) == len(rows[0]) for r in rows)
    elif path.suffix == ".yaml":
        OmegaConf.load(path)
    elif path.suffix == ".pt":
        torch.load(path, weights_only=True)
    elif path.suffix == ".png":
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
    else:
        path.read_text()


@pytest.mark.slow
def test_every_file_is_valid_after_a_kill_at_a_random_moment(reference, tmp_path, data_root):
    _, seconds = reference
    rng = random.Random()
    moments = sorted(rng.uniform(0.2, 1.2) * seconds for _ in range(2))
    print(f"killing at {[round(m, 2) for m in moments]} s")
    t0 = time.time()
    procs = [start(tmp_path / str(i), data_root, *ARGS, plots=True) for i in range(len(moments))]
    for proc, moment in zip(procs, moments):
        time.sleep(max(0.0, t0 + moment - time.time()))
        proc.kill()
        finish(proc)
    for i in range(len(moments)):
        for run in (tmp_path / str(i)).glob("outputs/*/*"):
            files = [p for p in run.rglob("*") if p.is_file() and not p.name.endswith(".tmp")]
            for path in files:
                try:
                    check_file(path)
                except Exception as e:
                    pytest.fail(f"{path.relative_to(run)} is not valid after a kill at {moments[i]:.2f} s: {e!r}")
            if (run / "checkpoints" / "last.pt").exists():  # metrics.csv holds the checkpoint's rows (or one more)
                epoch = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"]
                assert epoch <= len(rows_without_seconds(run)) <= epoch + 1
