"""Every seed preset composes to exactly its seed notebook's settings and names that notebook; a short
run of each preset, and of every option of every group, lowers its training loss on fixture data."""

import csv
import re
from pathlib import Path

import pytest
from conftest import ROOT, compose_config, run_in_process, write_mnist_layout
from omegaconf import OmegaConf


def sgd(lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> dict:
    """torch.optim.SGD as the seeds call it (no Nesterov)."""
    return {"name": "sgd", "lr": lr, "momentum": momentum, "weight_decay": weight_decay, "nesterov": False}


def mlp(*hidden: int, batch_norm: str = "none") -> dict:
    return {"name": "mlp", "hidden": list(hidden), "activation": "relu", "batch_norm": batch_norm, "dropout": 0.0}


CROSS_ENTROPY = {"name": "cross_entropy", "label_smoothing": 0.0}  # nn.CrossEntropyLoss(), or log_softmax + nll_loss
FOUR_VS_NINE = {"classes": [4, 9], "binary_labels": "pm1"}  # the seed relabels 4 -> -1, 9 -> +1

# preset -> the settings of its seed notebook (../shared/seeds/NNN_*.txt), as the preset must compose them.
# dataset and trainer list only what differs from the defaults (mnist, pixels in [0, 1], eval batch 1000, ...);
# every other part of the config must stay the default. params: the seed's network for 1x28x28 inputs.
# A seed that sets no random seed gets the runner's default, 0.
SEEDS = {
    # 000 Problem 6: LR() = nn.Linear(784, 1); MNIST 4 vs 9, ToTensor; train_model(logistic_loss, 20, 0.01):
    # SGD(lr=0.01), DataLoader(batch_size=64, shuffle=True), 20 epochs.
    "lr_4v9_logistic": dict(
        model={"name": "logistic"},
        params=785,
        loss={"name": "logistic"},
        optimizer=sgd(0.01),
        dataset=FOUR_VS_NINE,
        trainer={"batch_size": 64, "epochs": 20},
        seed=0,
    ),
    # 000 Problem 6: train_model(sum_of_squares_loss, 10, 0.01).
    "lr_4v9_sum_of_squares": dict(
        model={"name": "logistic"},
        params=785,
        loss={"name": "sum_of_squares"},
        optimizer=sgd(0.01),
        dataset=FOUR_VS_NINE,
        trainer={"batch_size": 64, "epochs": 10},
        seed=0,
    ),
    # 000 and 001 Problem 7: LeNet(variety='full'), CrossEntropyLoss, SGD(lr=1e-1), batch_size=100, range(10),
    # ToTensor; "Total number of trainable parameters: 61706".
    "lenet5_full": dict(
        model={"name": "lenet_full"},
        params=61_706,
        loss=CROSS_ENTROPY,
        optimizer=sgd(0.1),
        dataset={},
        trainer={"batch_size": 100, "epochs": 10},
        seed=0,
    ),
    # 000 and 001 Problem 7: LeNet(variety='subset'): "... 60806".
    "lenet5_subset": dict(
        model={"name": "lenet_subset"},
        params=60_806,
        loss=CROSS_ENTROPY,
        optimizer=sgd(0.1),
        dataset={},
        trainer={"batch_size": 100, "epochs": 10},
        seed=0,
    ),
    # 002 question 1: Linear(784, 512)-ReLU, Linear(512, 512)-BatchNorm1d-ReLU, Linear(512, 10); the first 600
    # of each class in both splits; CrossEntropyLoss, SGD(lr=0.01, momentum=0.9), n_epochs = 20, batch_size = 64.
    # The seed fed raw 0-255 pixels; the preset scales them to [0, 1] (normalize none, as its comment says).
    "mlp_bn3_600": dict(
        model=mlp(512, 512, batch_norm="after_first"),
        params=670_730,
        loss=CROSS_ENTROPY,
        optimizer=sgd(0.01, momentum=0.9),
        dataset={"per_class": 600},
        trainer={"batch_size": 64, "epochs": 20},
        seed=0,
    ),
    # 002 question 4: one more Linear(512, 512)-BatchNorm1d-ReLU, the rest as question 1.
    "mlp_bn4_600": dict(
        model=mlp(512, 512, 512, batch_norm="after_first"),
        params=934_410,
        loss=CROSS_ENTROPY,
        optimizer=sgd(0.01, momentum=0.9),
        dataset={"per_class": 600},
        trainer={"batch_size": 64, "epochs": 20},
        seed=0,
    ),
    # 003 part c: CNN3() (Dropout(p=.05)) on FashionMNIST with Normalize((0.1307,), (0.3081,)); F.nll_loss on
    # log_softmax; SGD(lr=0.001, momentum=0.9, weight_decay=0.04); epochs = 1, batch_size = 64.
    "cnn3_fashion": dict(
        model={"name": "cnn3", "dropout": 0.05},
        params=454_250,
        loss=CROSS_ENTROPY,
        optimizer=sgd(0.001, momentum=0.9, weight_decay=0.04),
        dataset={"name": "fashion_mnist", "normalize": "fixed", "mean": 0.1307, "std": 0.3081},
        trainer={"batch_size": 64, "epochs": 1},
        seed=0,
    ),
    # 004 problem 2: fc1 Linear(784, 128)-ReLU, fc2 Linear(128, 10) (101,770 parameters); Normalize with the
    # training split's mean and std; nll_loss on log_softmax; SGD(lr=0.01), max_epochs = 10, batch_size = 64,
    # seed = 1234. gamma = 0.95 is declared but no scheduler is built.
    "mlp_128_normalized": dict(
        model=mlp(128),
        params=101_770,
        loss=CROSS_ENTROPY,
        optimizer=sgd(0.01),
        dataset={"normalize": "auto"},
        trainer={"batch_size": 64, "epochs": 10},
        seed=1234,
    ),
    # 004 problem 3: Conv2d(1, 10, 5), pool, Conv2d(10, 20, 5), pool, Linear(320, 128), Linear(128, 10); the rest
    # as problem 2.
    "cnn_10_20_normalized": dict(
        model={"name": "cnn_10_20"},
        params=47_658,
        loss=CROSS_ENTROPY,
        optimizer=sgd(0.01),
        dataset={"normalize": "auto"},
        trainer={"batch_size": 64, "epochs": 10},
        seed=1234,
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


def settings(cfg) -> dict:
    """A composed config as plain data, without Hydra's own node."""
    data = OmegaConf.to_container(cfg, resolve=False)
    data.pop("hydra", None)
    return data


def assert_training_lowered_the_loss(run: Path) -> None:
    """The second epoch's training loss is below the first's, by more than rounding (a run that does not
    learn repeats its loss to ~1e-7; LeNet, the slowest starter here, gains 0.005 to 0.013)."""
    with open(run / "metrics.csv", newline="") as f:
        first, second = (float(row["train_loss"]) for row in csv.DictReader(f))
    assert first - second > 1e-3, f"training loss {first} -> {second}"


# The classic MNIST results (issue 20, docs/reproducing.md): preset -> (model, parameters, augment, the
# paper's test error in %).
CLASSIC = {
    "lecun1998_lenet5": ("lenet5_1998", 60_850, "none", 0.95),
    "lecun1998_lenet5_distortions": ("lenet5_1998", 60_850, "affine", 0.8),
    "lecun1998_mlp_300_100": ("mlp", 266_610, "none", 3.05),
    "lecun1998_mlp_500_150": ("mlp", 469_160, "none", 2.95),
    "simard2003_mlp800": ("mlp", 636_010, "none", 1.6),
    "simard2003_mlp800_affine": ("mlp", 636_010, "affine", 1.1),
    "simard2003_mlp800_elastic": ("mlp", 636_010, "elastic", 0.7),
    "simard2003_cnn_affine": ("simard2003_cnn", 132_540, "affine", 0.6),
    "simard2003_cnn_elastic": ("simard2003_cnn", 132_540, "elastic", 0.4),
}


def test_every_preset_is_in_a_table():
    others = ["mnist_fast"]  # tests/test_fast.py
    assert options("experiment") == sorted([*SEEDS, *CLASSIC, *others]) and sorted(SEEDS) == sorted(SEED_NUMBERS)


@pytest.mark.parametrize("preset", sorted(CLASSIC))
def test_classic_preset_has_its_papers_network_and_distortions(preset):
    from mnist_runner.models import build_model, count_parameters

    model, params, augment, error = CLASSIC[preset]
    cfg = compose_config(f"experiment={preset}")
    assert (cfg.model.name, cfg.augment.name, cfg.loss.name) == (model, augment, "cross_entropy")
    assert count_parameters(build_model(cfg.model, (1, 28, 28), 10))["total"] == params
    text = (ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text()
    assert f"{error}%" in text  # the preset names the paper's number
    if augment == "elastic":
        assert (cfg.augment.alpha, cfg.augment.sigma, cfg.augment.rotation) == (34, 4.0, 0)  # Simard's, alone


@pytest.mark.parametrize("preset", sorted(SEEDS))
def test_preset_composes_to_exactly_the_seeds_settings(preset):
    notebook = SEEDS[preset]
    default = settings(compose_config())
    expected = {
        **default,
        "seed": notebook["seed"],
        "model": notebook["model"],
        "loss": notebook["loss"],
        "optimizer": notebook["optimizer"],
        "scheduler": {"name": "none"},  # no seed builds a scheduler
        "dataset": {**default["dataset"], **notebook["dataset"]},
        "trainer": {**default["trainer"], **notebook["trainer"]},
    }
    assert settings(compose_config(f"experiment={preset}")) == expected


@pytest.mark.parametrize("preset", sorted(SEEDS))
def test_preset_builds_the_seeds_network(preset):
    from mnist_runner.models import build_model, count_parameters

    model = build_model(compose_config(f"experiment={preset}").model, (1, 28, 28), 10)
    assert count_parameters(model)["total"] == SEEDS[preset]["params"]


@pytest.mark.parametrize("preset", sorted(SEEDS))
def test_preset_comment_names_its_seed_notebook_and_number(preset):
    text = (ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    assert re.search(r"Seeds? 00\d .*\(00\d_[0-9a-f]{16}\.txt", text), "names the seed notebook"
    assert SEED_NUMBERS[preset] in text


def test_an_experiment_is_applied_after_the_root_config_and_command_line_wins():
    cfg = compose_config("experiment=lr_4v9_logistic", "trainer.epochs=1", "optimizer.lr=0.3")
    assert (cfg.trainer.epochs, cfg.optimizer.lr, cfg.trainer.batch_size) == (1, 0.3, 64)
    assert compose_config().get("experiment") is None


# --- Short runs: two epochs on fixture data; the second epoch's training loss must be lower --------


@pytest.fixture(scope="module")
def preset_data(tmp_path_factory) -> Path:
    """MNIST: 320 training images (4 to 5 steps an epoch at the presets' batch sizes), 100 test images;
    Fashion-MNIST: 32 training images (one step) and 10 test images (CNN3 takes 2 s per 64 images on a CPU)."""
    root = tmp_path_factory.mktemp("preset_data")
    write_mnist_layout(root, "MNIST", n_train=320, n_test=100)
    write_mnist_layout(root, "FashionMNIST", n_train=32, n_test=10)
    return root


FIT_PRESET = {"mlp_bn3_600": ["dataset.per_class=10"], "mlp_bn4_600": ["dataset.per_class=10"]}  # 600 > fixtures


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(SEEDS))
def test_a_short_run_of_the_preset_lowers_its_training_loss(tmp_path, preset_data, preset):
    summary = run_in_process(
        tmp_path, preset_data, f"experiment={preset}", "trainer.epochs=2", *FIT_PRESET.get(preset, [])
    )
    assert summary["status"] == "completed" and summary["choices"]["experiment"] == preset
    assert_training_lowered_the_loss(tmp_path)


# Every option of every group. Models train on 20 images in batches of 5 (quick even for VGG-11); the
# other groups' options train the quick MLP (LeNet barely leaves 2.30 in two epochs on fixture data).
# The rest makes each option fit the fixtures and learn: binary losses need two classes and one output,
# 600 per class is more than the fixtures hold, and lr 0.1 (cnn3) or 0.01 (rmsprop) overshoots on them.
BASE = {"model": ["dataset.per_class=2", "trainer.batch_size=5"]}
EXTRA = {
    ("model", "logistic"): ["dataset=mnist_4v9", "loss=logistic"],
    ("model", "cnn3"): [*BASE["model"], "optimizer.lr=0.001"],  # the seed's lr
    ("dataset", "mnist_600"): ["model=mlp_128", "dataset.per_class=5"],
    ("loss", "logistic"): ["dataset=mnist_4v9", "model=logistic"],
    ("loss", "sum_of_squares"): ["dataset=mnist_4v9", "model=logistic"],
    ("optimizer", "rmsprop"): ["model=mlp_128", "optimizer.lr=0.001"],
}
NEEDS_OWN_FILES = {("dataset", "image_folder"), ("dataset", "npz")}  # dataset.path: their own tests make the files
CASES = [
    (group, option)
    for group in ("model", "dataset", "loss", "optimizer", "scheduler")
    for option in options(group)
    if (group, option) not in NEEDS_OWN_FILES
]


@pytest.mark.slow
@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_lowers_the_training_loss(tmp_path, all_data_root, group, option):
    extra = EXTRA.get((group, option), BASE.get(group, ["model=mlp_128"]))
    summary = run_in_process(tmp_path, all_data_root, f"{group}={option}", "trainer.epochs=2", *extra)
    assert summary["status"] == "completed" and summary["choices"][group] == option
    assert_training_lowered_the_loss(tmp_path)
