"""The per-run report: train_steps.csv, confusion_matrix.csv, every plot, the TensorBoard logger."""

import csv
import json

import numpy as np
import pytest
from conftest import run_folders

PLOTS = ["loss.png", "accuracy.png", "samples.png", "predictions.png", "misclassified.png", "confusion_matrix.png"]


def read_png(path):
    """Decode a PNG fully (not just its signature); return it as an array."""
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.load()
        return np.asarray(image)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_run_writes_steps_confusion_matrix_and_every_plot(run_cli, tmp_path):
    pytest.importorskip("tensorboard")
    # 300 training images, batch 100: 3 steps per epoch, all logged
    result = run_cli("trainer.epochs=2", "trainer.log_interval=1", "logger=tensorboard")
    assert result.returncode == 0, result.stderr
    (run,) = run_folders(tmp_path / "outputs")
    for name in PLOTS:
        pixels = read_png(run / "plots" / name)
        assert pixels.shape[0] >= 400 and pixels.shape[1] >= 600, (name, pixels.shape)
        assert pixels.std() > 10, f"{name} looks blank"

    steps = read_csv(run / "train_steps.csv")
    assert list(steps[0]) == ["step", "examples_seen", "loss"]
    assert [int(s["step"]) for s in steps] == [1, 2, 3, 4, 5, 6]  # counted across epochs
    assert [int(s["examples_seen"]) for s in steps] == [100, 200, 300, 400, 500, 600]
    assert all(np.isfinite(float(s["loss"])) for s in steps)

    summary = json.loads((run / "summary.json").read_text())
    with open(run / "confusion_matrix.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["true/predicted", *map(str, range(10))]
    counts = np.array([[int(c) for c in row[1:]] for row in rows])
    assert [row[0] for row in rows] == [str(d) for d in range(10)]
    assert counts.sum() == 100 and (counts.sum(axis=1) == 10).all()  # fixture: 10 test images per class
    assert np.trace(counts) / 100 == pytest.approx(summary["final"]["test_acc"])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [round(e.value, 4) for e in events.Scalars("acc/test")] == [
        round(float(r["test_acc"]), 4) for r in read_csv(run / "metrics.csv")
    ]
    assert events.Scalars("hparam/best_test_acc")[0].value == pytest.approx(summary["best_test_acc"])


@pytest.mark.slow
def test_binary_run_labels_its_classes_by_name_and_plots_can_be_turned_off(run_cli, tmp_path):
    result = run_cli("trainer.epochs=1", "dataset=mnist_4v9", "loss=logistic", "model=logistic", "report.plots=false")
    assert result.returncode == 0, result.stderr
    (run,) = run_folders(tmp_path / "outputs")
    with open(run / "confusion_matrix.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["true/predicted", "4", "9"] and [r[0] for r in rows] == ["4", "9"]
    assert sum(int(c) for r in rows for c in r[1:]) == 20  # 10 fours and 10 nines in the fixture's test split
    assert not (run / "plots").exists()
    assert (run / "train_steps.csv").is_file() and (run / "metrics.csv").is_file()


@pytest.mark.slow
def test_tensorboard_logger_without_the_package_is_a_clear_error(run_cli, tmp_path):
    shim = tmp_path / "shim" / "tensorboard"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named tensorboard')\n")
    result = run_cli("trainer.epochs=1", "logger=tensorboard", env={"PYTHONPATH": str(shim.parent)})
    assert result.returncode == 2
    assert "logger=tensorboard needs the tensorboard package" in result.stderr
    assert "pip install 'mnist-runner[tensorboard]'" in result.stderr and "Traceback" not in result.stderr


def test_plots_of_a_long_class_list_and_a_many_run_overlay(tmp_path):
    """Figures stay drawable (and labelled) beyond the 10-digit case: 47 EMNIST classes, 15 runs."""
    from mnist_runner import plots

    rng = np.random.default_rng(0)
    names = [f"class_{i}" for i in range(47)]
    plots.plot_confusion(rng.integers(0, 50, size=(47, 47)), names, tmp_path / "cm.png", "emnist")
    runs = [
        (f"optimizer.lr={lr:.3g}", [{"epoch": e, "test_acc": 0.9 + e * lr, "test_loss": 1 / e} for e in (1, 2, 3)])
        for lr in np.linspace(0.001, 0.01, 15)
    ]
    plots.plot_overlay(runs, tmp_path / "overlay.png", "15 runs", versus=("optimizer.lr", [(0.001, 0.9), (0.01, 0.95)]))
    for name in ("cm.png", "overlay.png"):
        assert read_png(tmp_path / name).std() > 10
