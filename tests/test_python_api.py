"""The Python API (issue 17, docs/python.md): `train(*overrides)` runs as the command line does, in this
process, and `load_runs(*paths)` gives a notebook the runs: their config, summary, metrics as pandas
and trained model, the comparison table (`frame()`, the numbers of `mnist-runner-compare --format csv`)
and the per-epoch table across runs (`epochs()`). Importing the package stays light."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, run_cli_in_process, run_folders

from mnist_runner import compare, load_runs, train
from mnist_runner.registry import ConfigError, DataError

QUICK = ("device=cpu", "trainer.progress=false", "report.plots=false", "trainer.epochs=2", "trainer.batch_size=50")


@pytest.fixture
def in_tmp(tmp_path, data_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_RUNNER_DATA", str(data_root))
    return tmp_path


def without_seconds(path) -> list[list[str]]:
    rows = list(csv.reader(path.read_text().splitlines()))
    drop = rows[0].index("epoch_seconds")
    return [row[:drop] + row[drop + 1 :] for row in rows]


@pytest.mark.slow
def test_train_gives_the_files_and_numbers_of_the_same_command(in_tmp, data_root):
    run = train(*QUICK, "model=mlp_128", "optimizer.lr=0.05")
    assert run.path.parent.parent == in_tmp / "outputs"  # outputs/DATE/TIME, as the command's
    assert run.status == "completed" and run.summary["epochs_completed"] == 2
    (in_tmp / "cli").mkdir()
    cli = run_cli_in_process(in_tmp / "cli", data_root, *QUICK[2:], "model=mlp_128", "optimizer.lr=0.05")
    assert cli.returncode == 0, cli.stderr
    (other,) = run_folders(in_tmp / "cli" / "outputs")
    assert sorted(p.name for p in run.path.iterdir()) == sorted(p.name for p in other.iterdir())
    assert without_seconds(run.path / "metrics.csv") == without_seconds(other / "metrics.csv")
    ours, theirs = (torch.load(f / "model.pt", weights_only=True) for f in (run.path, other))
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    summary = json.loads((other / "summary.json").read_text())
    assert run.summary["final"] == summary["final"] and run.summary["choices"] == summary["choices"]
    assert run.config.optimizer.lr == 0.05 and run.config.model.name == "mlp"


@pytest.mark.slow
def test_train_into_a_folder_of_your_choice_and_twice_in_one_second(in_tmp):
    chosen = train(*QUICK, "trainer.epochs=1", output_dir=in_tmp / "mine")
    assert chosen.path == (in_tmp / "mine").resolve() and (chosen.path / "model.pt").is_file()
    first, second = train(*QUICK, "trainer.epochs=1"), train(*QUICK, "trainer.epochs=1", "seed=1")
    assert first.path != second.path and len(run_folders(in_tmp / "outputs")) == 2


def test_train_raises_the_line_the_command_prints(in_tmp):
    with pytest.raises(ConfigError, match=r"^trainer.epoch is not a key; did you mean trainer.epochs\?$"):
        train(*QUICK, "trainer.epoch=3")
    with pytest.raises(ConfigError, match=r"^optimizer.lr=-1 is not allowed; it must be a number > 0$"):
        train(*QUICK, "optimizer.lr=-1")
    with pytest.raises(ConfigError, match="takes KEY=VALUE overrides only"):
        train("-m", "seed=1,2")


def test_unreadable_data_raises_and_keeps_the_failed_run_as_the_command_does(in_tmp):
    missing = in_tmp / "no_data"
    with pytest.raises(DataError, match=rf"^mnist could not be loaded from {missing}"):
        train(*QUICK, f"dataset.root={missing}", "dataset.download=false", output_dir=in_tmp / "run")
    summary = json.loads((in_tmp / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and str(missing) in summary["error"]


def test_a_diverged_run_is_returned_with_its_status(in_tmp):
    run = train(*QUICK, "optimizer.lr=1e10", "model=mlp_128", "trainer.batch_size=10")
    assert run.status == "diverged" and run.summary["diverged"]["epoch"] == 1


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, data_root):
    """(The tests using it are slow.) A 2 x 2 sweep over the learning rate and the seed, on the fixture data."""
    base = tmp_path_factory.mktemp("api_sweep")
    result = run_cli_in_process(base, data_root, "-m", *QUICK, "optimizer.lr=0.05,0.1", "seed=0,1")
    assert result.returncode == 0, result.stderr
    (folder,) = (p.parent for p in base.rglob("multirun.yaml"))
    return folder


@pytest.mark.slow
def test_load_runs_reads_each_run(sweep):
    runs = load_runs(sweep)
    assert len(runs) == 4 and runs.skipped == []
    run = next(r for r in runs if r.path.name.startswith("3_"))
    assert run.config.optimizer.lr == 0.1 and run.config.seed == 1
    assert run.summary["status"] == "completed"
    assert list(run.metrics["epoch"]) == [1, 2] and run.metrics["test_acc"].iloc[-1] == run.summary["final"]["test_acc"]
    model = run.load_model()
    weights = torch.load(run.path / "model.pt", weights_only=True)
    assert all(torch.equal(p, weights[k]) for k, p in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu" and not model.training


@pytest.mark.slow
def test_frame_has_the_numbers_of_compare_csv(sweep, capsys):
    runs = load_runs(sweep)
    assert compare.main([str(sweep), "--format", "csv", "--sort", "run"]) == 0
    printed = {row["folder"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    frame = runs.frame()
    assert list(frame.columns) == list(next(iter(printed.values())))
    assert list(frame.columns)[:3] == ["run", "seed", "optimizer.lr"]
    for row in frame.to_dict("records"):
        expected = printed[row["folder"]]
        for column in ("final_test_acc", "best_test_acc", "final_test_loss", "epochs", "optimizer.lr", "seed"):
            assert float(row[column]) == float(expected[column])


@pytest.mark.slow
def test_epochs_is_one_row_per_run_and_epoch(sweep):
    runs = load_runs(sweep)
    table = runs.epochs()
    assert len(table) == 8 and list(table.columns)[:4] == ["run", "seed", "optimizer.lr", "epoch"]
    means = table.groupby(["optimizer.lr", "epoch"])["test_acc"].mean()
    assert set(means.index) == {(0.05, 1), (0.05, 2), (0.1, 1), (0.1, 2)}
    last = table[(table["epoch"] == 2)].set_index("run")["test_acc"]
    assert all(last[r.name] == r.summary["final"]["test_acc"] for r in runs)


@pytest.mark.slow
def test_load_runs_names_what_it_cannot_read(sweep, tmp_path):
    import shutil

    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    broken = next(copy.glob("0_*"))
    (broken / "summary.json").write_text("")
    runs = load_runs(copy)
    assert len(runs) == 3 and runs.skipped == [f"skipped {broken.resolve()}: summary.json is empty (half-written?)"]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_runs(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "code",
    [
        "import mnist_runner",
        "from mnist_runner import train, load_runs",
        "import sys; sys.argv = ['mnist-runner', '--help']\nfrom mnist_runner.train import main\ntry: main()\n"
        "except SystemExit: pass",
        "from mnist_runner import compare\ntry: compare.main(['--help'])\nexcept SystemExit: pass",
    ],
)
def test_import_help_and_compare_stay_light(code):
    check = (
        f"{code}\nimport sys\nheavy = [m for m in ('torch', 'pandas', 'matplotlib', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    if code.startswith("import mnist_runner") or code.startswith("from mnist_runner import"):
        check += "\nassert 'hydra' not in sys.modules and 'omegaconf' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
