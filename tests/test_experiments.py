"""Every option of every group runs one epoch on fixture data, and every seed preset has the seed's
settings (issue 3's table), with a comment naming its seed notebook and number."""

import re

import pytest
from conftest import ROOT, compose_config, run_in_process

# preset -> the seed's setup: group choices, then keys
PRESETS = {
    "lr_4v9_logistic": (
        dict(model="logistic", dataset="mnist_4v9", loss="logistic", optimizer="sgd", scheduler="none"),
        {"optimizer.lr": 0.01, "trainer.batch_size": 64, "trainer.epochs": 20, "dataset.normalize": "none"},
    ),
    "lr_4v9_sum_of_squares": (
        dict(model="logistic", dataset="mnist_4v9", loss="sum_of_squares", optimizer="sgd"),
        {"optimizer.lr": 0.01, "trainer.batch_size": 64, "trainer.epochs": 10},
    ),
    "lenet5_full": (
        dict(model="lenet_full", dataset="mnist", loss="cross_entropy", optimizer="sgd"),
        {"optimizer.lr": 0.1, "trainer.batch_size": 100, "trainer.epochs": 10, "dataset.normalize": "none"},
    ),
    "lenet5_subset": (
        dict(model="lenet_subset", dataset="mnist", loss="cross_entropy", optimizer="sgd"),
        {"optimizer.lr": 0.1, "trainer.batch_size": 100, "trainer.epochs": 10},
    ),
    "mlp_bn3_600": (
        dict(model="mlp_bn3", dataset="mnist_600", loss="cross_entropy", optimizer="sgd"),
        {
            "optimizer.lr": 0.01,
            "optimizer.momentum": 0.9,
            "trainer.batch_size": 64,
            "trainer.epochs": 20,
            "dataset.per_class": 600,
        },
    ),
    "mlp_bn4_600": (
        dict(model="mlp_bn4", dataset="mnist_600", loss="cross_entropy", optimizer="sgd"),
        {"optimizer.lr": 0.01, "optimizer.momentum": 0.9, "trainer.batch_size": 64, "trainer.epochs": 20},
    ),
    "cnn3_fashion": (
        dict(model="cnn3", dataset="fashion_mnist", loss="cross_entropy", optimizer="sgd"),
        {
            "optimizer.lr": 0.001,
            "optimizer.momentum": 0.9,
            "optimizer.weight_decay": 0.04,
            "trainer.batch_size": 64,
            "trainer.epochs": 1,
            "dataset.normalize": "fixed",
            "dataset.mean": 0.1307,
            "dataset.std": 0.3081,
        },
    ),
    "mlp_128_normalized": (
        dict(model="mlp_128", dataset="mnist", loss="cross_entropy", optimizer="sgd", scheduler="none"),
        {
            "optimizer.lr": 0.01,
            "optimizer.momentum": 0.0,
            "trainer.batch_size": 64,
            "trainer.epochs": 10,
            "seed": 1234,
            "dataset.normalize": "auto",
        },
    ),
    "cnn_10_20_normalized": (
        dict(model="cnn_10_20", dataset="mnist", loss="cross_entropy", optimizer="sgd", scheduler="none"),
        {
            "optimizer.lr": 0.01,
            "trainer.batch_size": 64,
            "trainer.epochs": 10,
            "seed": 1234,
            "dataset.normalize": "auto",
        },
    ),
}
SEED_NUMBERS = {
    "lr_4v9_logistic": "95.93%",
    "lr_4v9_sum_of_squares": "54.75%",
    "lenet5_full": "98.30%",
    "lenet5_subset": "98.59%",
    "cnn3_fashion": "87%",
    "mlp_128_normalized": "96.4%",
    "cnn_10_20_normalized": "98.46%",
    "mlp_bn3_600": "no accuracy",
    "mlp_bn4_600": "no accuracy",
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


def test_every_preset_is_in_the_table():
    assert options("experiment") == sorted(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_has_the_seeds_settings(preset):
    choices, keys = PRESETS[preset]
    cfg = compose_config(f"experiment={preset}")
    got = {k: v for k, v in cfg.hydra.runtime.choices.items() if k in choices}
    assert got == choices
    for key, value in keys.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert cfg.trainer.eval_batch_size == 1000 and cfg.device.type == "auto"  # the rest stays the default


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_comment_names_its_seed_notebook_and_number(preset):
    text = (ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    assert re.search(r"Seeds? 00\d .*\(00\d_[0-9a-f]{16}\.txt", text), "names the seed notebook"
    assert SEED_NUMBERS[preset] in text


def test_an_experiment_is_applied_after_the_root_config_and_command_line_wins():
    cfg = compose_config("experiment=lr_4v9_logistic", "trainer.epochs=1", "optimizer.lr=0.3")
    assert (cfg.trainer.epochs, cfg.optimizer.lr, cfg.trainer.batch_size) == (1, 0.3, 64)
    assert "experiment" not in compose_config() or compose_config().get("experiment") is None


# Every option of every group, one epoch on tiny fixture data. Extra overrides make each fit the
# fixtures: binary losses need two classes and one output; 600 per class is more than the fixtures hold.
SMALL = ["dataset.per_class=2"]  # 20 training images: enough to run, quick even for VGG-11
EXTRA = {
    ("model", "logistic"): ["dataset=mnist_4v9", "loss=logistic"],
    ("dataset", "mnist_600"): ["dataset.per_class=5"],
    ("loss", "logistic"): ["dataset=mnist_4v9", "model=logistic"],
    ("loss", "sum_of_squares"): ["dataset=mnist_4v9", "model=logistic"],
    ("experiment", "mlp_bn3_600"): ["dataset.per_class=5"],
    ("experiment", "mlp_bn4_600"): ["dataset.per_class=5"],
}
CASES = [(g, o) for g in ("model", "dataset", "loss", "optimizer", "scheduler", "experiment") for o in options(g)]


@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_runs_one_epoch(tmp_path, all_data_root, group, option):
    extra = EXTRA.get((group, option), SMALL if group == "model" else [])
    summary = run_in_process(tmp_path, all_data_root, f"{group}={option}", "trainer.epochs=1", *extra)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 1
    assert summary["choices"][group] == option
    assert 0.0 <= summary["final"]["test_acc"] <= 1.0 and summary["final"]["train_loss"] >= 0
