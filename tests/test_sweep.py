"""Multiruns: the sweep summary callback, failure-tolerant sweeps, joblib, submitit and Optuna."""

import csv
import json

import pytest
import yaml
from conftest import run_cli_in_process, run_folders

from mnist_runner.config import path_safe

QUICK = ["trainer.epochs=1", "report.plots=false"]  # per-run plots are tested in test_report.py


def sweep_folder(tmp_path):
    (folder,) = (tmp_path / "multirun").glob("*/*")
    return folder


def summaries(folder):
    return {run.name: json.loads((run / "summary.json").read_text()) for run in run_folders(folder)}


def summary_rows(folder):
    with open(folder / "sweep_summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_png(path, width=None):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    if width is not None:
        assert int.from_bytes(data[16:20], "big") == width, "unexpected number of panels"


@pytest.mark.slow
def test_an_in_process_sweep_composes_each_job_once_after_checking_them_all(tmp_path, data_root, monkeypatch):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    composed, compose = [], ConfigLoaderImpl.load_sweep_config
    monkeypatch.setattr(
        ConfigLoaderImpl,
        "load_sweep_config",
        lambda self, cfg, args: composed.append(args[-1]) or compose(self, cfg, args),
    )
    result = run_cli_in_process(tmp_path, data_root, "-m", *QUICK, "optimizer.lr=0.05,0.1,0.2")
    assert result.returncode == 0, result.stderr
    assert composed == ["optimizer.lr=0.05", "optimizer.lr=0.1", "optimizer.lr=0.2"]  # Hydra alone: each twice
    assert len(summaries(sweep_folder(tmp_path))) == 3

    # the check still composes every job first: a bad value in the last stops the sweep before any job runs
    (tmp_path / "bad").mkdir()
    result = run_cli_in_process(tmp_path / "bad", data_root, "-m", *QUICK, "model=mlp_128,no_such_model")
    assert result.returncode == 2 and "no_such_model" in result.stderr
    assert list((tmp_path / "bad").glob("multirun/*/*/*/summary.json")) == []


@pytest.mark.slow
def test_a_failing_job_is_recorded_the_others_run_and_the_sweep_exits_non_zero(run_cli, tmp_path):
    # job 1 fails inside training setup (bad lr), jobs 2 and 3 in config validation (bad normalize)
    result = run_cli("hydra.mode=MULTIRUN", *QUICK, "dataset.normalize=none,bogus", "optimizer.lr=0.1,-1")
    assert result.returncode == 1, result.stderr
    folder = sweep_folder(tmp_path)
    runs = summaries(folder)
    assert sorted(runs) == [  # job number, then the overrides sorted by key (report.plots left out)
        "0_dataset.normalize=none,device=cpu,optimizer.lr=0.1,trainer.epochs=1",
        "1_dataset.normalize=none,device=cpu,optimizer.lr=-1,trainer.epochs=1",
        "2_dataset.normalize=bogus,device=cpu,optimizer.lr=0.1,trainer.epochs=1",
        "3_dataset.normalize=bogus,device=cpu,optimizer.lr=-1,trainer.epochs=1",
    ]
    status = {name[0]: s["status"] for name, s in runs.items()}
    assert status == {"0": "completed", "1": "failed", "2": "failed", "3": "failed"}
    errors = {name[0]: s.get("error", "") for name, s in runs.items()}
    assert "optimizer.lr" in errors["1"] and "dataset.normalize" in errors["2"]

    rows = summary_rows(folder)
    assert [r["status"] for r in rows] == ["completed", "failed", "failed", "failed"]  # by job number
    assert [r["optimizer.lr"] for r in rows] == ["0.1", "-1", "0.1", "-1"]
    assert float(rows[0]["best_test_acc"]) == runs[rows[0]["run"]]["best_test_acc"]
    md = (folder / "sweep_summary.md").read_text()
    assert "## Failed jobs (3)" in md and errors["1"] in md and errors["2"] in md
    assert "3 job(s) failed" in result.stderr
    assert_png(folder / "sweep.png", width=1200)  # two numeric keys swept: no accuracy-vs-key panel


@pytest.mark.slow
def test_parallel_sweep_with_joblib(run_cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    result = run_cli(
        "hydra.mode=MULTIRUN", *QUICK, "optimizer.lr=0.05,0.1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"
    )
    assert result.returncode == 0, result.stderr
    folder = sweep_folder(tmp_path)
    assert "n_jobs=2" in result.stdout  # the joblib launcher ran them
    assert [s["status"] for s in summaries(folder).values()] == ["completed", "completed"]
    assert [r["optimizer.lr"] for r in summary_rows(folder)] == ["0.05", "0.1"]
    assert_png(folder / "sweep.png", width=1800)  # one numeric key swept: a third panel against it
    assert "| optimizer.lr |" in (folder / "sweep_summary.md").read_text()


@pytest.mark.slow
def test_sweep_with_submitit_local(run_cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = run_cli(
        "hydra.mode=MULTIRUN",
        *QUICK,
        "model=lenet_full,lenet_subset",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
    )
    assert result.returncode == 0, result.stderr
    folder = sweep_folder(tmp_path)
    assert (folder / ".submitit").is_dir()  # submitit ran them
    runs = summaries(folder)
    assert sorted(s["params"]["total"] for s in runs.values()) == [60806, 61706]
    assert [r["model"] for r in summary_rows(folder)] == ["lenet_full", "lenet_subset"]


@pytest.mark.slow
def test_three_trial_optuna_search_maximizes_best_test_accuracy(run_cli, tmp_path):
    pytest.importorskip("optuna", reason="the sweep extra (optuna) is not installed")
    result = run_cli("hydra.mode=MULTIRUN", *QUICK, "hparams_search=lenet_optuna", "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stderr
    folder = sweep_folder(tmp_path)
    runs = summaries(folder)
    assert len(runs) == 3 and all(s["status"] == "completed" for s in runs.values())
    best = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(s["best_test_acc"] for s in runs.values())
    assert 0.005 <= best["best_params"]["optimizer.lr"] <= 0.5
    assert 0.0 <= best["best_params"]["optimizer.momentum"] <= 0.95
    assert all(s["choices"]["model"] == "lenet_full" for s in runs.values())
    # job folders carry the trial's values cut to 4 significant digits
    assert all(len(name.split("optimizer.lr=")[1].split(",")[0]) <= 10 for name in runs)
    assert len(summary_rows(folder)) == 3


def test_path_safe_folder_names():
    assert path_safe("optimizer.lr=0.06260326907499733,model=lenet_full") == "optimizer.lr=0.0626,model=lenet_full"
    assert path_safe("dataset.root=/a b/c") == "dataset.root=_a_b_c"
    assert path_safe("x=1.5,name=v1.123456,e=1.234567e-05") == "x=1.5,name=v1.123456,e=1.235e-05"
    assert path_safe("") == "default"


def test_summary_counts_a_killed_job_as_failed(tmp_path):
    """A job still `running` when the multirun ends was killed before it could record its end."""
    from mnist_runner.sweep import write_summary

    for name, status in (("0_optimizer.lr=0.1", "completed"), ("1_optimizer.lr=0.2", "running")):
        job = tmp_path / name
        job.mkdir()
        summary = {"status": status, "choices": {"model": "lenet_full"}, "overrides": [name.split("_", 1)[1]]}
        (job / "summary.json").write_text(json.dumps(summary))
        (job / "metrics.csv").write_text(
            "epoch,train_loss,train_acc,test_loss,test_acc,lr,epoch_seconds\n1,0.5,0.8,0.4,0.9,0.1,1.0\n"
        )
    failed = write_summary(tmp_path)
    assert [r.name for r in failed] == ["1_optimizer.lr=0.2"]
    assert (
        "- `1_optimizer.lr=0.2` (running): the job ended without recording an end"
        in (tmp_path / "sweep_summary.md").read_text()
    )
    assert [r["status"] for r in summary_rows(tmp_path)] == ["completed", "running"]
    assert_png(tmp_path / "sweep.png", width=1800)
