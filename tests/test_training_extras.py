"""Augmentation, the best checkpoint, early stopping and per-class accuracy in a run (issue 20), on the fixture
data. tests/test_augment.py tests the distortions themselves; here, what a run does with them."""

import json
import signal

import pytest
import torch
from conftest import compose_config, run_cli_in_process, run_folders, run_in_process
from test_reliability import finish, rows_without_seconds, start, stop_after_checkpoint

from mnist_runner.augment import Augment
from mnist_runner.monitor import Monitor
from mnist_runner.registry import ConfigError
from mnist_runner.validate import validate

QUICK = ("trainer.batch_size=30", "model=mlp_128", "optimizer.lr=0.05")


def weights(folder, name="model.pt") -> dict:
    return torch.load(folder / name, weights_only=True)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- augmentation ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_augmented_runs_repeat_bit_for_bit_and_differ_from_plain_ones(tmp_path, data_root):
    runs = {}
    for name, extra in (("a", "augment=affine"), ("b", "augment=affine"), ("plain", "augment=none")):
        run_in_process(tmp_path / name, data_root, *QUICK, "trainer.epochs=2", extra)
        runs[name] = weights(tmp_path / name)
    assert same(runs["a"], runs["b"]) and not same(runs["a"], runs["plain"])
    elastic = run_in_process(tmp_path / "e", data_root, *QUICK, "trainer.epochs=1", "augment=elastic")
    assert elastic["status"] == "completed" and elastic["choices"]["augment"] == "elastic"


@pytest.mark.slow
def test_augment_none_keeps_the_default_runs_bits(tmp_path, data_root):
    """augment=none draws nothing: the same weights as a run of a config without the group at all."""
    from omegaconf import open_dict

    from mnist_runner.run import run

    run_in_process(tmp_path / "none", data_root, *QUICK, "trainer.epochs=1")
    cfg = compose_config(
        f"dataset.root={data_root}",
        "device=cpu",
        "trainer.progress=false",
        "report.plots=false",
        *QUICK,
        "trainer.epochs=1",
    )
    with open_dict(cfg):
        del cfg["hydra"], cfg["augment"]
    run(cfg, tmp_path / "without", {}, [])
    assert same(weights(tmp_path / "none"), weights(tmp_path / "without"))


def test_augmentation_touches_training_batches_only_and_never_the_labels(data_root):
    from mnist_runner.augment import Augment, Augmentation
    from mnist_runner.data import load_data

    data = load_data(compose_config(f"dataset.root={data_root}").dataset, torch.device("cpu"))
    augmentation = Augmentation(Augment(rotation=20, alpha=8), torch.device("cpu"), seed=0)
    plain = list(data.batches(data.train, 50, torch.Generator().manual_seed(1)))
    warped = list(data.batches(data.train, 50, torch.Generator().manual_seed(1), augmentation.batch))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(plain, warped))  # the same labels, in the same order
    assert all(not torch.equal(a[0], b[0]) for a, b in zip(plain, warped))
    again = list(data.batches(data.train, 50, torch.Generator().manual_seed(1), augmentation.batch))
    assert not torch.equal(again[0][0], warped[0][0])  # the next epoch draws new distortions


@pytest.mark.slow
def test_a_killed_augmented_run_resumes_bit_for_bit(tmp_path, data_root):
    args = ["trainer.epochs=3", "trainer.batch_size=10", "seed=5", "augment=elastic", "augment.rotation=10"]
    expected = finish(start(tmp_path / "whole", data_root, *args))
    assert expected.returncode == 0, expected.stderr
    (whole,) = run_folders(tmp_path / "whole" / "outputs")
    proc = start(tmp_path / "killed", data_root, *args)
    run = stop_after_checkpoint(proc, tmp_path / "killed", 1, signal.SIGKILL)
    assert finish(proc).returncode == -signal.SIGKILL
    result = finish(start(tmp_path / "killed", data_root, f"resume={run}"))
    assert result.returncode == 0, result.stderr
    assert rows_without_seconds(run) == rows_without_seconds(whole)
    assert same(weights(run), weights(whole))


# --- the best checkpoint and early stopping -------------------------------------------------------

ROWS = [
    {"epoch": e, "val_acc": a, "val_loss": 1 - a}
    for e, a in zip(range(1, 9), (0.50, 0.60, 0.65, 0.64, 0.651, 0.66, 0.63, 0.62))
]


def test_the_monitor_picks_the_best_epoch_and_when_to_stop():
    monitor = Monitor("val_acc", patience=2)
    assert [r["epoch"] for r in monitor.improving(ROWS)] == [1, 2, 3, 5, 6]
    assert monitor.best(ROWS)["epoch"] == 6
    assert [monitor.stop(ROWS[:n]) is not None for n in range(1, 9)] == [False] * 7 + [True]
    assert "val_acc did not improve for 2 epochs" in monitor.stop(ROWS) and "in epoch 6" in monitor.stop(ROWS)
    picky = Monitor("val_acc", patience=2, min_delta=0.005)  # 0.651 is not 0.005 better than 0.65
    assert [r["epoch"] for r in picky.improving(ROWS)] == [1, 2, 3, 6]
    assert picky.stop(ROWS[:5]) is not None and "by more than 0.005" in picky.stop(ROWS[:5])
    assert Monitor("val_loss").best(ROWS)["epoch"] == 6  # a loss: lower is better
    assert Monitor(None).best(ROWS) is None and Monitor(None).record(ROWS) == {}


VAL = ("dataset.val_fraction=0.2", "trainer.epochs=6", *QUICK, "optimizer.lr=0.3")


@pytest.mark.slow
def test_model_best_is_the_monitored_epochs_weights(tmp_path, data_root):
    summary = run_in_process(tmp_path / "long", data_root, *VAL)
    best = summary["best_checkpoint"]
    assert best["metric"] == "val_acc" and best["chosen_on"] == "the validation split"
    rows = [json.loads(json.dumps(r)) for r in _rows(tmp_path / "long")]
    assert best["epoch"] == Monitor("val_acc").best(rows)["epoch"] and best["value"] == pytest.approx(
        max(r["val_acc"] for r in rows), abs=1e-6
    )
    run_in_process(tmp_path / "short", data_root, *VAL, f"trainer.epochs={best['epoch']}")  # the same run, cut there
    assert same(weights(tmp_path / "long", "model_best.pt"), weights(tmp_path / "short"))


def _rows(folder):
    from mnist_runner.run_folder import RunFolder

    return RunFolder(folder).metrics()


@pytest.mark.slow
def test_without_a_validation_split_nothing_is_chosen_unless_test_acc_is_asked_for(tmp_path, data_root):
    plain = run_in_process(tmp_path / "plain", data_root, *QUICK, "trainer.epochs=2")
    assert "best_checkpoint" not in plain and not (tmp_path / "plain" / "model_best.pt").exists()
    on_test = run_in_process(tmp_path / "test", data_root, *QUICK, "trainer.epochs=2", "trainer.monitor=test_acc")
    assert on_test["best_checkpoint"]["chosen_on"] == "the test set"
    assert (tmp_path / "test" / "model_best.pt").is_file()


@pytest.mark.slow
def test_early_stopping_stops_at_the_right_epoch_and_a_resume_keeps_counting(tmp_path, data_root):
    stopping = (*VAL, "trainer.epochs=20", "trainer.early_stopping.patience=2")
    whole = run_in_process(tmp_path / "whole", data_root, *stopping)
    rows = _rows(tmp_path / "whole")
    expected = next(r["epoch"] for n, r in enumerate(rows, 1) if Monitor("val_acc", 2).stop(rows[:n]))
    assert whole["status"] == "completed" and whole["epochs_completed"] == expected < 20
    assert (
        whole["early_stopping"]["epoch"] == expected
        and "did not improve for 2 epochs" in whole["early_stopping"]["reason"]
    )
    # The same run stopped by hand one epoch before, then resumed: it stops at the same epoch, same weights.
    cut = run_cli_in_process(tmp_path, data_root, *stopping[:-2], f"trainer.epochs={expected - 1}", stopping[-1])
    assert cut.returncode == 0, cut.stderr
    (parts,) = run_folders(tmp_path / "outputs")
    resumed = run_cli_in_process(tmp_path, data_root, f"resume={parts}", "trainer.epochs=20")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((parts / "summary.json").read_text())
    assert summary["epochs_completed"] == expected and summary["early_stopping"] == whole["early_stopping"]
    assert same(weights(parts), weights(tmp_path / "whole"))
    again = run_cli_in_process(tmp_path, data_root, f"resume={parts}")
    assert again.returncode == 0 and "stopped early after epoch" in again.stdout and "nothing changed" in again.stdout


# --- per-class accuracy ---------------------------------------------------------------------------


@pytest.mark.slow
def test_every_run_records_its_per_class_test_accuracy_as_eval_computes_it(tmp_path, data_root):
    from mnist_runner import eval as evaluation

    assert run_cli_in_process(tmp_path, data_root, *QUICK, "trainer.epochs=2").returncode == 0
    (run,) = run_folders(tmp_path / "outputs")
    per_class = json.loads((run / "summary.json").read_text())["per_class_test_acc"]
    assert list(per_class) == [str(d) for d in range(10)]
    counts = [line.split(",")[1:] for line in (run / "confusion_matrix.csv").read_text().splitlines()[1:]]
    for k, row in enumerate(counts):
        assert per_class[str(k)] == pytest.approx(int(row[k]) / sum(map(int, row)))
    out = evaluation.evaluate_run(run, [f"dataset.root={data_root}"])
    assert json.loads((out / "eval.json").read_text())["per_class_accuracy"] == pytest.approx(per_class)


# --- bad input ------------------------------------------------------------------------------------


def test_augment_none_after_a_preset_with_distortions_is_none():
    """The presets name augment options (conf/augment/simard2003.yaml, ...), so augment=none replaces them whole."""
    for preset in ("simard2003_cnn_affine", "simard2003_cnn_elastic", "lecun1998_lenet5_distortions"):
        cfg = compose_config(f"experiment={preset}", "augment=none")
        assert Augment.from_config(cfg.augment).identity, preset
        assert not Augment.from_config(compose_config(f"experiment={preset}").augment).identity, preset


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["augment=affine", "augment.rotation=-5"],
            r"augment.rotation=-5 is not allowed; it must be a number in \[0, 180\)",
        ),
        (["augment=affine", "augment.shear=90"], r"augment.shear=90 is not allowed; it must be a number in \[0, 90\)"),
        (["augment=elastic", "augment.sigma=0"], r"augment.sigma=0 is not allowed with augment.alpha=34"),
        (["augment=none", "augment.rotation=10"], r"augment.rotation=10 is not allowed with augment=none \(no aug"),
        (["trainer.monitor=val_acc"], "trainer.monitor=val_acc needs a validation split, and this run has none"),
        (["trainer.monitor=best"], "trainer.monitor='best' is not allowed; it must be one of: auto, none, val_acc"),
        (["trainer.early_stopping.patience=0"], "trainer.early_stopping.patience=0 is not allowed; it must be an"),
        (["trainer.early_stopping.patience=3"], "trainer.early_stopping.patience=3 needs a monitored metric"),
        (["trainer.early_stopping.min_delta=-1"], "trainer.early_stopping.min_delta=-1 is not allowed"),
    ],
)
def test_bad_augmentation_monitor_and_patience_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(*overrides))


@pytest.mark.slow
def test_weights_best_of_a_run_without_model_best_is_one_line(tmp_path, data_root, capsys):
    from mnist_runner import eval as evaluation

    assert run_cli_in_process(tmp_path, data_root, *QUICK, "trainer.epochs=1").returncode == 0
    (run,) = run_folders(tmp_path / "outputs")
    assert evaluation.main([str(run), "--weights", "best"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Error: --weights best: {run} has no model_best.pt") and len(err.splitlines()) == 1
