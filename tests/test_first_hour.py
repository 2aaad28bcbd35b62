"""What a new user met in the first hour (issue 18), each fixed where it arose; every test here failed on the
code before the fix. The CLI runs in this process (`cli`) unless the test needs a real terminal-less process."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REAL_DATA, ROOT, compose_config, run_cli_in_process, run_folders, synthetic_digits

from mnist_runner.registry import ConfigError
from mnist_runner.validate import validate


def one_line(result, code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


# --- errors that were not one line ------------------------------------------------------------------


def test_an_empty_npz_file_is_one_line(cli, tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    line = one_line(cli("dataset=npz", "dataset.path=empty.npz"), 1)
    assert line == "Error: dataset.path=empty.npz cannot be read as an .npz file (EOFError: No data left in file)"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=mlp", "model.hidden=128"], "model.hidden=128 is not allowed; it must be a non-empty list of layer"),
        (["model=vgg11", "model.width=wide"], "model.width='wide' is not allowed; it must be an integer"),
        (["model=cnn3", "model.dropout=[0.1]"], "model.dropout=[0.1] is not allowed; it must be a number"),
        (["optimizer=adam", "optimizer.amsgrad=1"], "optimizer.amsgrad=1 is not allowed; it must be true or false"),
        (
            ["scheduler=step", "scheduler.step_size=2.5"],
            "scheduler.step_size=2.5 is not allowed; it must be an integer",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_by_its_entry(overrides, message):
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        validate(compose_config(*overrides))


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.epoch=2", "trainer.epoch is not a key; did you mean trainer.epochs?"),
        ("+trainer.epoch=2", "trainer.epoch is not a key; did you mean trainer.epochs?"),  # Hydra's own hint
        ("+sed=3", "sed is not a key; did you mean seed?"),
        ("optimizer.moment=0.9", "optimizer.moment is not a key of optimizer=sgd; did you mean optimizer.momentum?"),
        ("+model.width=8", "model.width is not a key of model=lenet_full, which has no keys to set"),
        (
            "dataset=emnist +dataset.spilt=letters",
            "dataset.spilt is not a key of dataset=emnist; did you mean dataset.split?",
        ),
    ],
)
def test_an_unknown_key_names_the_nearest_known_one(cli, override, message):
    assert one_line(cli(*override.split()), 2) == f"Error: {message}"


def test_a_key_of_another_entry_is_unknown_to_this_one():
    """rmsprop's alpha is not sgd's: each entry knows its own keys and rules (issue 17 too)."""
    with pytest.raises(ConfigError, match="optimizer.alpha is not a key of optimizer=sgd"):
        validate(compose_config("+optimizer.alpha=0.5"))
    validate(compose_config("optimizer=rmsprop", "optimizer.alpha=0.5"))
    with pytest.raises(ConfigError, match=r"optimizer.alpha=2 is not allowed; it must be a number in \[0, 1\]"):
        validate(compose_config("optimizer=rmsprop", "optimizer.alpha=2"))


def test_help_is_still_hydras(cli):
    result = cli("--help")
    assert result.returncode == 0 and "== Configuration groups ==" in result.stdout and "lenet_subset" in result.stdout


def test_version_is_the_runners():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mnist_runner", "--version"], capture_output=True, text=True, env=env
    )
    from importlib import metadata

    assert result.returncode == 0
    assert result.stdout.startswith(f"mnist-runner 0.1.0 (torch {metadata.version('torch')}, Hydra ")


# --- resume ---------------------------------------------------------------------------------------


@pytest.fixture
def two_epochs(tmp_path, data_root):
    """A run of 1 epoch extended to 2 by a resume."""
    assert run_cli_in_process(tmp_path, data_root, "trainer.epochs=1", "report.plots=false").returncode == 0
    (run,) = run_folders(tmp_path / "outputs")
    assert run_cli_in_process(tmp_path, data_root, f"resume={run}", "trainer.epochs=2").returncode == 0
    return run


@pytest.mark.slow
def test_a_plain_resume_continues_to_the_runs_current_target(two_epochs, tmp_path, data_root):
    run = two_epochs
    checkpoint = run / "checkpoints" / "last.pt"
    import torch

    state = torch.load(checkpoint, weights_only=True)  # the run, stopped after its first epoch of two
    state["epoch"], state["rows"] = 1, state["rows"][:1]
    torch.save(state, checkpoint)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": "interrupted", "epochs_completed": 1}))
    result = run_cli_in_process(tmp_path, data_root, f"resume={run}")  # no trainer.epochs: its target is 2
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2 and summary["epochs_target"] == 2


@pytest.mark.slow
def test_resuming_a_completed_run_changes_nothing_and_says_how_to_extend_it(two_epochs, tmp_path, data_root):
    run = two_epochs
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file() and p.suffix != ".log"}
    result = run_cli_in_process(tmp_path, data_root, f"resume={run}")
    assert result.returncode == 0, result.stderr
    assert f"The run in {run} is complete (2 of 2 epochs); nothing changed." in result.stdout
    assert f"To train it longer: python -m mnist_runner resume={run} trainer.epochs=12" in result.stdout
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    assert len(json.loads((run / "summary.json").read_text())["resumed"]) == 1  # no resumed entry appended


@pytest.mark.slow
def test_wall_seconds_of_a_resumed_run_is_the_whole_and_its_parts(two_epochs):
    summary = json.loads((two_epochs / "summary.json").read_text())
    sessions = summary["wall_seconds_sessions"]
    assert len(sessions) == 2 and all(s > 0 for s in sessions)
    assert summary["wall_seconds"] == pytest.approx(sum(sessions), abs=0.011)


def test_a_killed_session_is_counted_by_its_epochs():
    from mnist_runner.run import earlier_sessions

    rows = [{"epoch": e, "epoch_seconds": 2.0} for e in (1, 2, 3)]
    killed = {"status": "running", "wall_seconds_sessions": [5.0], "resumed": [{"from_epoch": 1}]}
    assert earlier_sessions(killed, rows) == [5.0, 4.0]  # its epochs 2 and 3
    assert earlier_sessions({"status": "interrupted", "wall_seconds": 7.5}, rows) == [7.5]
    assert earlier_sessions({}, []) == []


# --- output ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_no_progress_bar_off_a_terminal_and_the_log_holds_what_the_console_showed(tmp_path, data_root):
    env = {**os.environ, "MNIST_RUNNER_DATA": str(data_root), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "mnist_runner", "trainer.epochs=2", "device=cpu", "trainer.threads=1"]
    result = subprocess.run([*args, "+trainer.bogus=1"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 2  # (an unknown key, to see that a refused run leaves no log either)
    assert result.stderr == "Error: trainer.bogus is not a key; its keys are: " + result.stderr.split(": ", 2)[2]
    assert len(result.stderr.splitlines()) == 1  # once: not again by logging's last resort
    assert not (tmp_path / "outputs").exists()
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "it/s" not in result.stderr and "step/s" not in result.stderr
    (run,) = run_folders(tmp_path / "outputs")
    log = (run / "mnist_runner.log").read_text()
    for line in result.stdout.splitlines():  # every line the console showed, in order
        assert line in log
    assert "epoch 2/2" in log and f"Output folder: {run}" in log


def test_a_warning_goes_into_the_log(tmp_path):
    from mnist_runner import console

    with console.logged(tmp_path):
        console.warn("Warning: something")
        import warnings

        warnings.warn("a library's warning", UserWarning, stacklevel=1)
    console.warn("Warning: after the run")  # not in any log
    log = (tmp_path / "mnist_runner.log").read_text()
    assert "[WARNING] Warning: something" in log and "UserWarning: a library's warning" in log
    assert "after the run" not in log


def test_predict_inverts_a_dark_digit_on_white_and_says_so(trained, tmp_path, capsys):
    from PIL import Image

    from mnist_runner import predict

    assert json.loads((trained / "summary.json").read_text())["data"]["background"] == "dark"
    images, _ = synthetic_digits(4, 10, seed=1)
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(tmp_path / f"light{i}.png")
        Image.fromarray(255 - pixels).save(tmp_path / f"pen{i}.png")
    straight = predict.predict_images(trained, [tmp_path / f"light{i}.png" for i in range(4)])
    pen = predict.predict_images(trained, [tmp_path / f"pen{i}.png" for i in range(4)])
    assert [r["inverted"] for r in straight] == [False] * 4
    assert [r["inverted"] for r in pen] == [True] * 4
    assert pen[0]["inverted_because"] == "its background is light, the training images' dark"

    def probabilities(results):
        return [p for r in results for p in r["probabilities"].values()]

    assert probabilities(pen) == pytest.approx(probabilities(straight))
    kept = predict.predict_images(trained, [tmp_path / "pen0.png"], invert=False)
    assert kept[0]["inverted"] is False and probabilities(kept) != pytest.approx(probabilities(pen[:1]))
    assert predict.main([str(trained), str(tmp_path / "pen0.png")]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("(inverted: its background is light, the training images' dark)")


# --- plots ----------------------------------------------------------------------------------------


def test_legend_labels_show_only_the_settings_a_run_has():
    from types import SimpleNamespace

    from mnist_runner.results.figures import legend_labels

    def run(**settings):
        return SimpleNamespace(settings=settings, setting=settings.get, name="x")

    runs = [run(model="lenet_full", **{"dataset.per_class": 100}), run(model="lenet_subset")]
    assert legend_labels(runs) == ["model=lenet_full, dataset.per_class=100", "model=lenet_subset"]


@pytest.mark.parametrize("n", [2, 10, pytest.param(30, marks=pytest.mark.slow)])
@pytest.mark.parametrize("length", [20, 70, 200])
def test_every_legend_and_axis_label_is_inside_the_figure(n, length, tmp_path):
    from mnist_runner import plots

    rows = [{"epoch": e, "test_acc": 0.9 + 0.01 * e, "test_loss": 0.5 - 0.1 * e} for e in (1, 2, 3)]
    labels = [f"run {i} " + "x" * length for i in range(n)]
    curve = [(e, 0.9, 0.01) for e in (1, 2, 3)]
    figures = [
        plots.plot_overlay(
            [(label, rows) for label in labels], tmp_path / "o.png", "t", ("k", [(1.0, 0.9), (2, 0.91)])
        ),
        plots.plot_bands([(label, curve, curve) for label in labels], tmp_path / "b.png", "t"),
    ]
    for fig in figures:
        renderer = fig.canvas.get_renderer()
        inside = fig.bbox.padded(1)
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0, (box, fig.bbox)
        assert len(legend.get_texts()) == n
        for ax in fig.axes:
            for label in (ax.xaxis.label, ax.yaxis.label):
                extent = label.get_window_extent(renderer)
                assert inside.x0 <= extent.x0 and extent.x1 <= inside.x1
            assert ax.xaxis.label.get_window_extent(renderer).y0 > box.y1  # the legend is below the panels' labels


def test_accuracy_labels_stay_off_the_train_line(tmp_path):
    from mnist_runner import plots

    rows = [
        {"epoch": e, "train_acc": t, "test_acc": v} for e, t, v in ((1, 0.50, 0.70), (2, 0.90, 0.80), (3, 0.95, 0.97))
    ]
    fig = plots.plot_accuracy(rows, tmp_path / "a.png", "t")
    ax = fig.axes[0]
    texts = {t.get_text(): t for t in ax.texts}
    above = [texts["0.7000"], texts["0.9700"]]  # test above train: written above the point
    assert all(t.get_va() == "bottom" and t.xyann[1] > 0 for t in above)
    assert texts["0.8000"].get_va() == "top" and texts["0.8000"].xyann[1] < 0


# --- data and tests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dataset, mean, std",
    [("mnist", 0.1307, 0.3081), ("fashion_mnist", 0.2860, 0.3530), ("kmnist", 0.1918, 0.3483)],
)
def test_fixed_normalization_is_each_datasets_own(tmp_path, all_data_root, dataset, mean, std):
    from conftest import run_in_process

    summary = run_in_process(
        tmp_path, all_data_root, f"dataset={dataset}", "dataset.normalize=fixed", "trainer.epochs=1", "model=mlp_128"
    )
    assert summary["normalization"] == {"mean": mean, "std": std}


def test_emnist_normalization_follows_its_split():
    from mnist_runner.data import DATASETS

    assert DATASETS.get("emnist").stats(split="balanced") == (0.1751, 0.3332)
    assert DATASETS.get("emnist").stats(split="letters") == (0.1722, 0.3309)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "kmnist", "qmnist", "emnist"])
def test_each_datasets_values_are_its_training_splits(name):
    """Measured again wherever the real files are (here MNIST and Fashion-MNIST; the others are cited)."""
    from mnist_runner.data import DATASETS

    source = DATASETS.get(name)
    options = {"split": "balanced"} if name == "emnist" else {}
    paths = [REAL_DATA / source.folder / "raw" / f for f in source.files(True, **options)]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"no {source.folder} training files under {REAL_DATA}: its values are cited, not measured")
    pixels = source.load(REAL_DATA, train=True, download=False, **options).images.numpy() / 255.0
    assert (round(float(pixels.mean()), 4), round(float(pixels.std()), 4)) == source.stats(**options)


def test_registry_wide_checks_see_the_built_in_entries_only(monkeypatch):
    """An installed plugin package (here a stand-in entry point) adds entries, which the registry-wide tests
    leave out: they compare the config files with the built-in entries."""
    from conftest import builtin_entries

    from mnist_runner.registry import MODELS

    MODELS.register("installed_elsewhere")(lambda input_shape, num_classes: None)
    try:
        assert "installed_elsewhere" in MODELS.list() and "installed_elsewhere" not in builtin_entries(MODELS)
    finally:
        MODELS._entries.pop("installed_elsewhere")


def test_numbers_in_the_docs_recompute_for_the_cheap_presets():
    """benchmarks/reproduce.py --check recomputes the cheap rows of docs/reproducing.md (slow test below)."""
    text = (ROOT / "docs" / "reproducing.md").read_text()
    assert "python benchmarks/reproduce.py" in text


@pytest.mark.slow
def test_the_cheap_reproduced_numbers_repeat():
    if not (REAL_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"no real MNIST under {REAL_DATA}: the documented numbers come from it")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "reproduce.py"),
            "--check",
            "--cheap",
            "--data-root",
            str(REAL_DATA),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every number repeats" in result.stdout
