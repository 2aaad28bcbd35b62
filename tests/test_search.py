"""The Optuna search (issue 19): hydra/sweeper=optuna on Optuna's ask-and-tell API, its search space from YAML,
pruning in the sweep's process and in others, a search that continues in its folder, a study shared through
PostgreSQL, and one line for what it cannot do. On the fixture data; PostgreSQL when MNIST_RUNNER_POSTGRES names
one (.ci/run starts one), else those tests skip."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli_in_process

optuna = pytest.importorskip("optuna", reason="the sweep extra (optuna) is not installed")

from mnist_runner import search  # noqa: E402
from mnist_runner.registry import ConfigError  # noqa: E402

SEARCH = [
    "hparams_search=lenet_optuna",
    "model=mlp_128",
    "trainer.epochs=3",
    "trainer.batch_size=30",
    "trainer.threads=1",
    "report.plots=false",
]


def trials(folder, study=None, storage=None):
    if study is None:
        study = (
            "lenet_sgd"
            if (folder / "optuna.db").is_file() and "lenet_optuna" in (folder / "multirun.yaml").read_text()
            else "mnist_runner"
        )
    study = optuna.load_study(study_name=study, storage=storage or f"sqlite:///{folder / 'optuna.db'}")
    return study.get_trials(deepcopy=False)


def jobs(folder):
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and p.name[0].isdigit()), key=lambda p: int(p.name.split("_")[0])
    )


def summary(job):
    return json.loads((job / "summary.json").read_text())


def test_the_search_space_is_read_from_hydras_sweep_syntax():
    space, fixed = search.distributions(
        {
            "optimizer.lr": "tag(log, interval(0.005, 0.5))",
            "optimizer.momentum": "interval(0.0, 0.95)",
            "trainer.batch_size": "tag(int, interval(16, 256))",
            "trainer.eval_batch_size": "tag(int, log, interval(100, 1000))",
            "model": "choice(mlp_128, lenet_full)",
            "seed": "range(0, 10, 2)",
            "trainer.epochs": "3",
        }
    )
    d = optuna.distributions
    assert space["optimizer.lr"] == d.FloatDistribution(0.005, 0.5, log=True)
    assert space["optimizer.momentum"] == d.FloatDistribution(0.0, 0.95)
    assert space["trainer.batch_size"] == d.IntDistribution(16, 256)
    assert space["trainer.eval_batch_size"] == d.IntDistribution(100, 1000, log=True)
    assert space["model"] == d.CategoricalDistribution(["mlp_128", "lenet_full"])
    assert space["seed"] == d.IntDistribution(0, 8, step=2)
    assert fixed == {"trainer.epochs": "3"}


def test_a_trial_asked_earlier_is_found_by_its_number(tmp_path):
    """search.trial_of reaches into Optuna's storage (it has no public way): this fails when Optuna changes it."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="x", direction="maximize")
    first, second = study.ask(), study.ask()
    again = search.trial_of(optuna.load_study(study_name="x", storage=f"sqlite:///{tmp_path / 's.db'}"), 1)
    again.report(0.5, step=1)
    assert second.number == 1 and study.trials[1].intermediate_values == {1: 0.5} and first.number == 0


@pytest.mark.slow
def test_a_search_runs_its_trials_as_numbered_jobs_and_writes_the_best(tmp_path, data_root):
    result = run_cli_in_process(tmp_path, data_root, "-m", *SEARCH, "hydra.sweeper.n_trials=3", "hydra.sweep.dir=s")
    assert result.returncode == 0, result.stderr
    assert "Note: the trials hold out no validation split (dataset.val_fraction=0)" in result.stderr  # said once
    assert result.stderr.count("validation split") == 1
    folder = tmp_path / "s"
    assert [j.name.split("_")[0] for j in jobs(folder)] == ["0", "1", "2"]
    done = trials(folder)
    assert [t.state.name for t in done] == ["COMPLETE"] * 3
    for t, job in zip(done, jobs(folder)):  # each trial's value: its job's best test accuracy (no validation split)
        assert t.value == summary(job)["best_test_acc"]
        assert summary(job)["overrides"][-2:] == [
            f"optimizer.lr={t.params['optimizer.lr']!r}",
            f"optimizer.momentum={t.params['optimizer.momentum']!r}",
        ]
    results = (folder / "optimization_results.yaml").read_text()
    best = max(done, key=lambda t: t.value)
    assert f"best_trial: {best.number}" in results and f"best_value: {best.value}" in results

    # Continued to 5 trials: 2 more, numbered on; the first 3 untouched.
    before = {j: j.joinpath("summary.json").stat().st_mtime_ns for j in jobs(folder)}
    again = run_cli_in_process(tmp_path, data_root, "-m", *SEARCH, "hydra.sweeper.n_trials=5", "hydra.sweep.dir=s")
    assert again.returncode == 0, again.stderr
    assert len(trials(folder)) == 5 and len(jobs(folder)) == 5
    assert {j: j.joinpath("summary.json").stat().st_mtime_ns for j in list(before)} == before
    params = [tuple(t.params.values()) for t in trials(folder)]
    assert len(set(params)) == 5  # the continued sampler draws new trials, not the first ones again


@pytest.mark.slow
def test_with_a_validation_split_the_search_chooses_by_it_and_says_nothing(tmp_path, data_root):
    args = ["-m", *SEARCH, "trainer.epochs=1", "trainer.batch_size=120", "dataset.val_fraction=0.2"]
    args += ["hydra.sweeper.n_trials=2"]  # 2 steps a trial: too few for validation and test accuracy to agree
    result = run_cli_in_process(tmp_path, data_root, *args, "hydra.sweep.dir=s")
    assert result.returncode == 0, result.stderr
    assert "validation split" not in result.stderr
    for t, job in zip(trials(tmp_path / "s"), jobs(tmp_path / "s")):
        assert t.value == summary(job)["best_val"]["val_acc"] != summary(job)["best_test_acc"]


def run_pruned_search(tmp_path, data_root, *extra, trials=8):
    """`trials` trials, of which the bad learning rate's are pruned by the median pruner after their second epoch
    once 5 have completed."""
    args = [
        "-m",
        "hydra/sweeper=optuna",
        *SEARCH[1:-2],
        "trainer.epochs=4",
        "report.plots=false",
        "hydra.sweeper.pruner=median",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.seed=0",
        f"hydra.sweeper.n_trials={trials}",
        "optimizer.lr=choice(0.00001,0.3)",  # a search space on the command line, as in YAML
        "hydra.sweep.dir=s",
        *extra,
    ]
    return run_cli_in_process(tmp_path, data_root, *args)


@pytest.mark.slow
def test_pruned_trials_stop_after_an_epoch_with_their_files_and_are_neither_failed_nor_diverged(tmp_path, data_root):
    result = run_pruned_search(tmp_path, data_root)
    assert result.returncode == 0, result.stderr  # a pruned trial fails nothing
    folder = tmp_path / "s"
    states = {t.number: t.state.name for t in trials(folder)}
    pruned = [j for j in jobs(folder) if summary(j)["status"] == "pruned"]
    assert pruned and all(states[int(j.name.split("_")[0])] == "PRUNED" for j in pruned)
    for job in pruned:
        s = summary(job)
        assert s["epochs_completed"] < 4 and s["pruned"]["epoch"] == s["epochs_completed"]
        assert "the median pruner stopped trial" in s["pruned"]["reason"] and "optimizer.lr=1e-05" in job.name
        assert (job / "checkpoints" / "last.pt").is_file() and (job / "metrics.csv").is_file()
    assert (
        "pruned" in (folder / "sweep_summary.md").read_text()
        and "Failed jobs" not in (folder / "sweep_summary.md").read_text()
    )
    from mnist_runner import compare

    assert compare.main([str(folder), "--format", "csv"]) == 0


@pytest.mark.slow
def test_pruning_works_when_the_trials_run_in_other_processes(tmp_path, data_root):
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]
    result = run_pruned_search(tmp_path, data_root, *joblib, trials=12)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "s"
    pids = {summary(j)["process"]["pid"] for j in jobs(folder)}
    assert os.getpid() not in pids and len(jobs(folder)) == 12
    assert any(summary(j)["status"] == "pruned" for j in jobs(folder))
    assert sorted(t.state.name for t in trials(folder)).count("PRUNED") == sum(
        summary(j)["status"] == "pruned" for j in jobs(folder)
    )


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "hydra.sweeper.pruner=patient",
            "hydra.sweeper.pruner='patient' is not allowed; it must be one of: none, median",
        ),
        ("hydra.sweeper.sampler=grid", "hydra.sweeper.sampler='grid' is not allowed; it must be one of: tpe, random"),
        ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0 is not allowed; it must be an integer >= 1"),
        (
            "hydra.sweeper.storage=postgresql://nobody@127.0.0.1:9/none",
            "hydra.sweeper.storage=postgresql://nobody@127.0.0.1:9/none cannot be reached",
        ),
    ],
)
def test_bad_search_settings_are_one_line(tmp_path, data_root, override, message):
    result = run_cli_in_process(tmp_path, data_root, "-m", *SEARCH, override, "hydra.sweep.dir=s")
    assert result.returncode == 2 and result.stderr.startswith(f"Error: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
def test_fewer_trials_than_the_study_has_and_a_sweep_that_lost_its_config(tmp_path, data_root):
    assert (
        run_cli_in_process(
            tmp_path, data_root, "-m", *SEARCH, "hydra.sweeper.n_trials=2", "hydra.sweep.dir=s"
        ).returncode
        == 0
    )
    result = run_cli_in_process(tmp_path, data_root, "-m", *SEARCH, "hydra.sweeper.n_trials=1", "hydra.sweep.dir=s")
    assert result.returncode == 2
    assert "hydra.sweeper.n_trials=1 is not allowed: the study lenet_sgd in sqlite:///" in result.stderr
    assert "has 2 finished trials already; give n_trials >= 2" in result.stderr
    (tmp_path / "s" / "multirun.yaml").unlink()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lost = subprocess.run(
        [sys.executable, "-c", "from mnist_runner.train import resume_main; resume_main()", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert lost.returncode == 2 and "is not a sweep folder (no multirun.yaml in it)" in lost.stderr


@pytest.fixture
def postgres():
    url = os.environ.get("MNIST_RUNNER_POSTGRES")
    if not url:
        pytest.skip(
            "no PostgreSQL server: set MNIST_RUNNER_POSTGRES=postgresql://... (.ci/run starts one with .ci/postgres)"
        )
    pytest.importorskip("psycopg", reason="psycopg (the sweep extra) is not installed")
    return url


def test_a_study_created_by_another_sweep_at_the_same_moment_is_opened(tmp_path, monkeypatch):
    """Two sweeps starting together on one storage race to create its tables and the study; the loser's
    IntegrityError means the study is there: it opens it. Any other error is the one-line ConfigError."""
    from sqlalchemy.exc import IntegrityError

    calls, create = [], optuna.create_study

    def racing(**kwargs):
        calls.append(kwargs["study_name"])
        if len(calls) == 1:
            raise IntegrityError("INSERT INTO studies", {}, Exception("duplicate key value"))
        return create(**kwargs)

    monkeypatch.setattr(optuna, "create_study", racing)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert search.open_study(storage, "s", "maximize").study_name == "s" and calls == ["s", "s"]

    monkeypatch.setattr(optuna, "create_study", lambda **kwargs: 1 / 0)
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.storage=sqlite:///.* cannot be reached \(ZeroDivisionError"):
        search.open_study(storage, "s", "maximize")


@pytest.mark.slow
def test_two_sweeps_share_one_study_through_postgresql(tmp_path, data_root, postgres):
    study = f"shared_{os.getpid()}_{tmp_path.name}"
    common = [
        *SEARCH,
        f"hydra.sweeper.storage={postgres}",
        f"hydra.sweeper.study_name={study}",
        "hydra.sweeper.n_trials=2",
    ]
    env = {**os.environ, "MNIST_RUNNER_DATA": str(data_root), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mnist_runner",
                "-m",
                *common,
                "device=cpu",
                "trainer.progress=false",
                f"hydra.sweep.dir={name}",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=600) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    shared = optuna.load_study(study_name=study, storage=postgres).get_trials(deepcopy=False)
    numbers = sorted(int(j.name.split("_")[0]) for name in ("a", "b") for j in jobs(tmp_path / name))
    assert len(shared) >= 2 and numbers == sorted(t.number for t in shared)  # one study, each trial once
    assert all(t.state.name == "COMPLETE" for t in shared)
    shutil.rmtree(tmp_path / "a")
