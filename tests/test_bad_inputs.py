"""Every bad input is one clear line naming the key, exit code 2, and no traceback (issue 5).

The CLI runs in this process (the `cli` fixture), so the table costs no interpreter start-ups.
"""

import json
import shutil

import pytest
import torch
from conftest import run_cli_in_process, run_folders

from mnist_runner.registry import ConfigError

# (overrides, the key the message must name)
BAD = [
    (["trainer.epochs=0"], "trainer.epochs=0"),
    (["trainer.epochs=-3"], "trainer.epochs=-3"),
    (["trainer.epochs=abc"], "trainer.epochs='abc'"),
    (["trainer.epochs=2.5"], "trainer.epochs=2.5"),
    (["trainer.epochs=true"], "trainer.epochs=true"),
    (["trainer.batch_size=0"], "trainer.batch_size=0"),
    (["trainer.batch_size=-1"], "trainer.batch_size=-1"),
    (["trainer.eval_batch_size=0"], "trainer.eval_batch_size=0"),
    (["trainer.log_interval=0"], "trainer.log_interval=0"),
    (["trainer.deterministic=maybe"], "trainer.deterministic='maybe'"),
    (["trainer.threads=0"], "trainer.threads=0"),
    (["report.plots=maybe"], "report.plots='maybe'"),
    (["seed=1.5"], "seed=1.5"),
    (["seed=-1"], "seed=-1"),
    (["seed=abc"], "seed='abc'"),
    (["optimizer.lr=0"], "optimizer.lr=0"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1"),
    (["optimizer.lr=fast"], "optimizer.lr='fast'"),
    (["optimizer.momentum=1.0"], "optimizer.momentum=1.0"),
    (["optimizer.momentum=-0.5"], "optimizer.momentum=-0.5"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1"),
    (["optimizer.nesterov=true"], "optimizer.nesterov=true"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], "optimizer.betas=[0.9,1.5]"),
    (["optimizer=adam", "optimizer.eps=0"], "optimizer.eps=0"),
    (["loss.label_smoothing=1.5"], "loss.label_smoothing=1.5"),
    (["dataset.normalize=sometimes"], "dataset.normalize='sometimes'"),
    (["dataset.normalize=fixed", "dataset.std=0"], "dataset.std=0"),
    (["dataset.download=perhaps"], "dataset.download='perhaps'"),
    (["dataset.classes=[4,4]"], "dataset.classes=[4,4]"),
    (["dataset.classes=[3,12]"], "dataset.classes=[3,12]"),
    (["dataset.classes=[5]"], "dataset.classes=[5]"),
    (["dataset.per_class=0"], "dataset.per_class=0"),
    (["dataset.per_class=31"], "dataset.per_class=31"),  # the fixture has 30 of each class
    (["dataset.val_fraction=1.5"], "dataset.val_fraction=1.5"),
    (["dataset.binary_labels=yes"], "dataset.binary_labels='yes'"),
    (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size=0"),
    (["scheduler=exponential", "scheduler.gamma=-1"], "scheduler.gamma=-1"),
    (["scheduler=onecycle", "scheduler.pct_start=1.5"], "scheduler.pct_start=1.5"),
    (["model.name=resnet"], "model.name='resnet'"),
    (["loss=logistic"], "loss=logistic"),  # a binary loss on ten classes
    (["model=logistic"], "model=logistic"),  # one output for a ten-class loss
    (["resume=no/such/run"], "resume='no/such/run'"),
]


@pytest.mark.slow
@pytest.mark.parametrize("overrides, key", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_override_is_one_clear_line(cli, overrides, key):
    result = cli("trainer.epochs=1", *overrides)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert key in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device(cli):
    result = cli("device=cuda")
    assert result.returncode == 2 and "device.type='cuda' is not available" in result.stderr


def test_bad_value_fails_before_data_is_loaded_and_leaves_no_folder(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_RUNNER_DATA", str(tmp_path / "no-data-here"))
    result = cli("optimizer.lr=-1", "dataset.download=false")
    assert result.returncode == 2 and "optimizer.lr=-1" in result.stderr  # not the missing data
    assert not (tmp_path / "outputs").exists()  # the error line is its record


@pytest.mark.slow
def test_a_sweep_job_refused_keeps_its_record(cli, tmp_path):
    result = cli("-m", "trainer.epochs=1", "optimizer.lr=-1,0.1")
    assert result.returncode == 1
    refused, ran = run_folders(tmp_path / "multirun")
    summary = json.loads((refused / "summary.json").read_text())
    assert summary["status"] == "failed" and "optimizer.lr=-1 is not allowed" in summary["error"]
    assert json.loads((ran / "summary.json").read_text())["status"] == "completed"


def test_unknown_group_option_is_one_line_naming_the_nearest(cli):
    result = cli("model=lenet_ful")
    assert result.returncode == 2
    assert result.stderr == (
        "Error: model=lenet_ful is not an option of model; did you mean model=lenet_full? "
        "python -m mnist_runner --help lists them all\n"
    )
    result = cli("model=resnet")  # nothing near: only where to look
    assert result.returncode == 2
    assert (
        result.stderr == "Error: model=resnet is not an option of model; python -m mnist_runner --help lists them all\n"
    )


def test_full_error_shows_the_traceback(cli, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="trainer.epochs=0"):
        cli("trainer.epochs=0")


@pytest.fixture(scope="module")
def finished_template(tmp_path_factory, data_root):
    base = tmp_path_factory.mktemp("finished")
    result = run_cli_in_process(base, data_root, "trainer.epochs=1", "trainer.batch_size=50", "report.plots=false")
    assert result.returncode == 0, result.stderr
    (run,) = run_folders(base / "outputs")
    return run


@pytest.fixture
def finished_run(finished_template, tmp_path):
    """A copy of a finished one-epoch run, in this test's outputs/."""
    run = tmp_path / "outputs" / "2000-01-01" / "00-00-00"
    shutil.copytree(finished_template, run)
    return run


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, key",
    [
        (["model=lenet_subset"], "model=lenet_subset"),
        (["optimizer.lr=0.5"], "optimizer.lr=0.5"),
        (["trainer.batch_size=100"], "trainer.batch_size=100"),
        (["trainer.epochs=0"], "trainer.epochs=0"),
    ],
)
def test_resume_refuses_changes_to_the_experiment(cli, finished_run, tmp_path, overrides, key):
    before = {p: p.read_bytes() for p in finished_run.rglob("*") if p.is_file() and p.suffix != ".log"}
    result = cli(f"resume={finished_run}", *overrides)
    assert result.returncode == 2, result.stderr
    assert key in result.stderr and "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in before} == before  # the run's folder is untouched
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["2000-01-01"]  # and no new folder is left


@pytest.mark.slow
def test_resume_trains_longer_but_cannot_shorten_a_run(cli, finished_run, tmp_path):
    first = (finished_run / "metrics.csv").read_text()
    result = cli(f"resume={finished_run}", "trainer.epochs=2")  # allowed: trains one more epoch
    assert result.returncode == 0, result.stderr
    metrics = (finished_run / "metrics.csv").read_text()
    assert metrics.startswith(first) and len(metrics.splitlines()) == 3  # header, epoch 1, epoch 2
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    (resumed,) = summary["resumed"]
    assert resumed["from_epoch"] == 1 and resumed["overrides"][-2:] == [f"resume={finished_run}", "trainer.epochs=2"]
    result = cli(f"resume={finished_run}", "trainer.epochs=1")
    assert result.returncode == 2 and "trainer.epochs=1" in result.stderr and ">= 2" in result.stderr
