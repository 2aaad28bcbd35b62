"""Using a trained run: mnist-runner-eval on its own and other test sets, mnist-runner-predict on PNGs (issue 13)."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import run_cli_in_process, run_folders, synthetic_digits

from mnist_runner import eval as evaluation
from mnist_runner import predict

pytestmark = pytest.mark.slow  # every test uses runs trained for it (in this process, an epoch each)


@pytest.fixture(scope="module")
def binary(tmp_path_factory, data_root):
    """A finished 1-epoch logistic regression on the fixture MNIST's 4s and 9s (one output)."""
    cwd = tmp_path_factory.mktemp("binary")
    result = run_cli_in_process(
        cwd, data_root, "experiment=lr_4v9_logistic", "trainer.epochs=1", "optimizer.lr=0.1", "report.plots=false"
    )
    assert result.returncode == 0, result.stderr
    (folder,) = run_folders(cwd)
    return folder


@pytest.fixture(autouse=True)
def data_location(monkeypatch, data_root):
    """The runs' configs find their data through MNIST_RUNNER_DATA, as they did when they trained."""
    monkeypatch.setenv("MNIST_RUNNER_DATA", str(data_root))


def run_eval(capsys, folder, *overrides):
    """(exit code, stdout, stderr) of mnist-runner-eval FOLDER OVERRIDES in this process."""
    code = evaluation.main([str(folder), *overrides])
    out, err = capsys.readouterr()
    return code, out, err


def eval_result(out: str) -> dict:
    folder = out.strip().splitlines()[-1].removeprefix("Output folder: ")
    return json.loads(open(f"{folder}/eval.json").read())


def test_eval_on_the_runs_own_test_split_repeats_its_accuracy(trained, capsys):
    code, out, err = run_eval(capsys, trained)
    assert code == 0, err
    summary = json.loads((trained / "summary.json").read_text())
    result = eval_result(out)
    assert result["accuracy"] == summary["final"]["test_acc"]
    assert result["loss"] == pytest.approx(summary["final"]["test_loss"], rel=1e-6)
    assert result["dataset"] == "mnist" and result["n"] == 100 and result["weights"] == "model.pt"
    assert set(result["per_class_accuracy"]) == {str(d) for d in range(10)}
    (folder,) = (trained / "eval").glob("mnist-*")
    with open(folder / "confusion_matrix.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "true/predicted" and len(rows) == 11
    correct = sum(int(rows[1 + k][1 + k]) for k in range(10))
    assert sum(int(v) for row in rows[1:] for v in row[1:]) == 100 and correct / 100 == result["accuracy"]
    assert (folder / "confusion_matrix.png").stat().st_size > 0


def test_eval_on_other_datasets_with_the_same_images(trained, capsys, tmp_path, all_data_root):
    """The fixture's QMNIST and an npz hold the MNIST fixture's very test images: the same accuracy."""
    accuracy = json.loads((trained / "summary.json").read_text())["final"]["test_acc"]
    code, out, err = run_eval(capsys, trained, "dataset=qmnist", f"dataset.root={all_data_root}")
    assert code == 0, err
    result = eval_result(out)
    assert (result["dataset"], result["n"], result["accuracy"]) == ("qmnist", 100, accuracy)
    x_test, y_test = synthetic_digits(100, 10, seed=1)
    x_train, y_train = synthetic_digits(30, 10, seed=0)
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    code, out, err = run_eval(capsys, trained, "dataset=npz", f"dataset.path={path}")
    assert code == 0, err
    assert eval_result(out)["accuracy"] == accuracy and eval_result(out)["dataset"] == "npz"


def test_eval_of_a_binary_run_keeps_its_classes_on_another_dataset(binary, capsys, all_data_root):
    summary = json.loads((binary / "summary.json").read_text())
    assert summary["data"]["classes"] == ["4", "9"]
    code, out, err = run_eval(capsys, binary, "dataset=qmnist", f"dataset.root={all_data_root}")
    assert code == 0, err
    result = eval_result(out)
    assert result["dataset_config"]["classes"] == [4, 9] and result["accuracy"] == summary["final"]["test_acc"]
    assert set(result["per_class_accuracy"]) == {"4", "9"}


def test_eval_uses_the_checkpoint_of_an_unfinished_run(trained, capsys, tmp_path):
    copy = shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    (copy / "model.pt").unlink()
    code, out, err = run_eval(capsys, copy)
    assert code == 0, err
    assert eval_result(out)["weights"] == "checkpoints/last.pt"


def test_eval_bad_input_is_one_clear_line(trained, capsys, tmp_path, all_data_root):
    rng = np.random.default_rng(0)
    small = {k: rng.integers(0, 255, size=(20, 14, 14), dtype=np.uint8) for k in ("x_train", "x_test")}
    np.savez(tmp_path / "small.npz", **small, y_train=np.arange(20) % 10, y_test=np.arange(20) % 10)
    no_weights = shutil.copytree(trained, tmp_path / "bare", ignore=shutil.ignore_patterns("*.pt", "eval"))
    cases = [
        (
            [trained, "dataset=emnist", f"dataset.root={all_data_root}"],
            2,
            "dataset=emnist has 47 classes but the run's model (model=mlp, trained on mnist) has 10",
        ),
        (
            [trained, "dataset=npz", f"dataset.path={tmp_path / 'small.npz'}"],
            2,
            "dataset=npz gives inputs of shape (1, 14, 14) but the run's model (model=mlp, trained on mnist) "
            "takes (1, 28, 28)",
        ),
        ([trained, "dataset=nope"], 2, "dataset=nope is not allowed; it must be one of: emnist, fashion_mnist"),
        ([trained, "trainer.epochs=3"], 2, "trainer.epochs=3 is not allowed here; mnist-runner-eval takes"),
        ([trained, "dataset.per_class=0"], 2, "dataset.per_class=0 is not allowed"),
        ([tmp_path], 2, "is not a run folder (no .hydra/config.yaml in it)"),
        ([no_weights], 2, "has no trained weights (no model.pt, no checkpoints/last.pt)"),
    ]
    for args, expected_code, message in cases:
        code, out, err = run_eval(capsys, *args)
        assert code == expected_code, (args, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (args, err)
        assert "Traceback" not in err


# --- predict -------------------------------------------------------------------------------------


def write_pngs(folder, images, mode="L", size=None):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, pixels in enumerate(images):
        image = Image.fromarray(pixels).convert(mode)
        if size:
            image = image.resize(size)
        image.save(folder / f"{i}.png")
        paths.append(folder / f"{i}.png")
    return paths


def expected_predictions(run_folder, images: np.ndarray):
    """The run's model on `images` as its training loop saw them (normalized by data.Data.prepare)."""
    run = evaluation.load_trained(run_folder)
    x = torch.from_numpy(images).unsqueeze(1).float() / 255.0
    x = (x - run.mean) / run.std
    with torch.inference_mode():
        return run.model(x).softmax(dim=1)


def test_predict_classifies_pngs_as_the_model_saw_its_data(trained, tmp_path, capsys):
    images, labels = synthetic_digits(100, 10, seed=1)
    paths = write_pngs(tmp_path / "png", images[:5])
    expected = expected_predictions(trained, images[:5])
    assert predict.main([str(trained), *map(str, paths), "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in results] == list(map(str, paths))
    assert [r["index"] for r in results] == expected.argmax(dim=1).tolist()
    assert [r["class"] for r in results] == [str(i) for i in expected.argmax(dim=1).tolist()]
    assert [r["probability"] for r in results] == pytest.approx(expected.max(dim=1).values.tolist(), abs=1e-6)
    assert sum(results[0]["probabilities"].values()) == pytest.approx(1.0)
    assert predict.main([str(trained), str(paths[0])]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"{paths[0]}: {results[0]['class']} ({results[0]['probability']:.4f})"


def test_predict_converts_colour_and_size_and_can_invert(trained, tmp_path, capsys):
    images, _ = synthetic_digits(3, 10, seed=1)
    big = write_pngs(tmp_path / "big", images, mode="RGB", size=(56, 56))  # RGB at twice the size
    results = predict.predict_images(trained, big)
    assert len(results) == 3 and all(0 < r["probability"] <= 1 for r in results)
    inverted = write_pngs(tmp_path / "inv", 255 - images)
    again = predict.predict_images(trained, inverted, invert=True)
    straight = predict.predict_images(trained, write_pngs(tmp_path / "plain", images))
    assert [r["probability"] for r in again] == pytest.approx([r["probability"] for r in straight])


def test_predict_with_a_one_output_model(binary, tmp_path):
    images, labels = synthetic_digits(100, 10, seed=1)
    fours_and_nines = images[(labels == 4) | (labels == 9)][:4]
    results = predict.predict_images(binary, write_pngs(tmp_path / "png", fours_and_nines))
    assert {r["class"] for r in results} <= {"4", "9"}
    for r in results:
        assert set(r["probabilities"]) == {"4", "9"} and sum(r["probabilities"].values()) == pytest.approx(1)
        assert r["probability"] >= 0.5  # the predicted class is the likelier one


def test_predict_bad_input_is_one_clear_line(trained, tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    no_weights = shutil.copytree(trained, tmp_path / "bare", ignore=shutil.ignore_patterns("*.pt", "eval"))
    (good,) = write_pngs(tmp_path / "png", synthetic_digits(1, 10)[0])
    cases = [
        ([trained, tmp_path / "broken.png"], 1, f"cannot read image {tmp_path / 'broken.png'}"),
        ([trained, tmp_path / "missing.png"], 2, "missing.png: no such image file"),
        ([no_weights, good], 2, "has no trained weights (no model.pt, no checkpoints/last.pt)"),
        ([tmp_path, good], 2, "is not a run folder"),
    ]
    for args, expected_code, message in cases:
        assert predict.main(list(map(str, args))) == expected_code
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, err


def test_eval_and_predict_as_commands(trained, tmp_path, data_root):
    env = {**os.environ, "MNIST_RUNNER_DATA": str(data_root)}
    (png,) = write_pngs(tmp_path, synthetic_digits(1, 10, seed=1)[0])
    for module, args, expected in (
        ("mnist_runner.eval", [], "eval on mnist (test split, 100 images): accuracy"),
        ("mnist_runner.predict", [str(png)], f"{png}: "),
    ):
        result = subprocess.run(
            [sys.executable, "-m", module, str(trained), *args], capture_output=True, text=True, timeout=300, env=env
        )
        assert result.returncode == 0 and expected in result.stdout, result.stderr
